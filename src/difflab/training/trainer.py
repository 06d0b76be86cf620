"""The trainer: minimise E_{t, x_0, ε} ||f_θ(x_t, t) − target||² (Ho et al. 2020, eq. 14, the "simple" loss).

The tutorial's loop spends much of its time on per-step overhead, since its network is tiny. The step here computes
the same function with less of it: noise, steps and batch indices are drawn into buffers allocated once; the
schedule's and the target's coefficients are gathered from float32 tables on the device; the tutorial's network
runs a hand-written forward and backward into preallocated buffers (``difflab.models.batched``), and so does the
residual MLP on the CPU, in lanes (``difflab.training.fast_step``; other networks use autograd); AdamW is torch's fused kernel, called directly on the CPU; the loss is logged into a preallocated tensor
without a host sync per step; and the CPU thread count suits the model's size (benchmarks/RESULTS.md). On CUDA,
``fit`` replays the whole step from a CUDA graph (``difflab.training.cuda_graph``).

A conditional run trains on class labels beside the rows, some dropped (:mod:`difflab.training.labels`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from difflab.compute import cpu_threads, default_threads, resolve_device
from difflab.config import TrainConfig
from difflab.diffusion.parameterization import Parameterization, get_parameterization, target_tables
from difflab.diffusion.process import Process
from difflab.errors import ConfigError, DifflabError
from difflab.models.batched import StackedSeedMLP, is_plain_seed
from difflab.progress import progress_bar
from difflab.training.checkpoint import load_optimizer_tensors, model_tensors, optimizer_tensors, strip
from difflab.training.coupling import couple, get_coupling
from difflab.training.cuda_graph import GRAPH_MIN_STEPS, GraphedTrainer, warn_graph_failed
from difflab.training.ema import EMA
from difflab.training.fast_step import FastStep, fast_step_applies
from difflab.training.labels import LabelDropout
from difflab.training.objective import Objective
from difflab.training.objectives import make_objective
from difflab.training.optim import fused_adamw_step, lr_lambda, make_optimizer, plain_fused_adamw


class TrainingDiverged(DifflabError):
    """The loss or the weights stopped being finite; the message names the first such step."""


class Trainer:
    """Trains ``model`` on the scaled data ``x`` (N, D). ``step()`` takes one optimizer step and returns the loss.

    ``diffusion``: the process (discrete steps or continuous time); ``parameterization``: a name or a
    :class:`~difflab.diffusion.parameterization.Parameterization`; ``learned_variance``: the network's second D
    outputs are Nichol & Dhariwal's v, trained with the hybrid loss (:mod:`difflab.training.objective`);
    ``labels``: class codes (N,) in 0..``n_classes``-1 of the rows of ``x``, for a conditional network;
    ``objective``: the loss, if not the Gaussian one (a table with discretely diffused columns,
    :class:`~difflab.training.mixed.MixedObjective`)."""

    def __init__(
        self,
        model: nn.Module,
        diffusion: Process,
        x: Tensor,
        cfg: TrainConfig,
        *,
        parameterization: str | Parameterization = "eps",
        learned_variance: bool = False,
        fused: bool = True,
        labels: Tensor | None = None,
        n_classes: int = 0,
        objective: Objective | None = None,
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.diffusion = diffusion
        self.param = (parameterization if isinstance(parameterization, Parameterization)
                      else get_parameterization(parameterization))
        self.objective = objective or make_objective(cfg.objective, diffusion, self.param, cfg, self.device,
                                                     learned_variance=learned_variance)
        self.x = x.to(self.device, torch.float32).contiguous()
        self.N, self.D = self.x.shape
        self.full_batch = cfg.batch_size is None or cfg.batch_size >= self.N
        self.B = self.N if self.full_batch else int(cfg.batch_size)
        self.T = diffusion.T
        self.generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self.opt = make_optimizer(self.model, cfg, self.device)
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lr_lambda(cfg))
        self.ema = EMA(self.model, cfg.ema) if cfg.ema else None
        self.step_count = 0
        self.loss_log = torch.zeros(cfg.steps, dtype=torch.float32, device=self.device)
        n_params = sum(p.numel() for p in self.model.parameters())
        self.threads = cfg.threads or (default_threads(n_params, self.B) if self.device.type == "cpu" else None)
        # Buffers drawn into every step, allocated once.
        self._t = torch.empty(self.B, dtype=torch.long, device=self.device)
        self._noise = torch.empty(self.B, self.D, dtype=torch.float32, device=self.device)
        self._idx = torch.empty(self.B, dtype=torch.long, device=self.device)
        if labels is not None and len(labels) != self.N:
            raise ConfigError(f"labels: {len(labels)} class codes for {self.N} rows")
        self.labels = (LabelDropout(labels, n_classes, cfg.label_dropout, self.B, self.device)
                       if labels is not None else None)
        self.coupling = get_coupling(cfg.coupling)  # how noise is paired with data (training/coupling.py)
        # The hand-written step of the tutorial's network: discrete steps, and targets in the tables it reads
        fusable = (diffusion.discrete and self.param.name in ("eps", "x0", "v") and not learned_variance
                   and fused and self.labels is None and is_plain_seed(self.model))
        if fusable:
            self._sqrt_ab = diffusion.sqrt_alpha_bars.to(self.device, torch.float32)
            self._sqrt_1mab = diffusion.sqrt_one_minus_alpha_bars.to(self.device, torch.float32)
            self._eps_target = self.param.name == "eps"
            self._target_coef = [c.to(self.device, torch.float32) for c in target_tables(diffusion, self.param.name)]
        self.net = self._fused_net() if fusable else None
        # The residual MLP's hand-written step (difflab.training.fast_step), on the objective's own rows
        self.fast = FastStep(self, self.threads or 1) if fused and not fusable and fast_step_applies(self) else None
        self._direct_adamw = self.device.type == "cpu" and plain_fused_adamw(self.opt)
        self._stepped = False

    def _fused_net(self) -> StackedSeedMLP:
        """The hand-written forward/backward of the tutorial's network, on views of this model's parameters, with
        gradient buffers that stay attached as ``p.grad`` (overwritten each step, so never zeroed)."""
        self._params = list(self.model.parameters())
        self._grads = [torch.zeros_like(p) for p in self._params]
        coef = torch.empty(2, self.B, 1, device=self.device)
        self._a, self._s = coef[0], coef[1]  # √ᾱ_t, √(1 − ᾱ_t) per row, (B, 1)
        self._loss = torch.empty(1, device=self.device)
        net = StackedSeedMLP([p.unsqueeze(0) for p in self._params], [g.unsqueeze(0) for g in self._grads], self.B)
        self._xt, self._t1 = net.xt[0], self._t.unsqueeze(0)
        return net

    # --- one step ---------------------------------------------------------------------------------------------
    def draw(self) -> tuple[Tensor, Tensor, Tensor]:
        """Draw (x_0, t, ε) for one step: t ~ U{1..T} (or the objective's times) then ε ~ N(0, I), as the tutorial
        does; with a coupling (``[train] coupling``) ε is then paired with x_0 (:mod:`difflab.training.coupling`)."""
        if self.full_batch:
            x0 = self.x
        else:
            torch.randint(0, self.N, (self.B,), generator=self.generator, out=self._idx)
            x0 = self.x[self._idx]
        t = self.objective.draw(self.B, self.generator, out=self._t)
        torch.randn(self._noise.shape, generator=self.generator, out=self._noise)
        if self.coupling is not None:
            classes = None if self.labels is None else (
                self.labels.labels if self.full_batch else self.labels.labels[self._idx])
            couple(self.coupling, x0, self._noise, classes, self.generator)
        return x0, t, self._noise

    def draw_labels(self) -> Tensor | None:
        """The labels of the rows :meth:`draw` just picked, some dropped (:class:`~difflab.training.labels.
        LabelDropout`); None for an unconditional run."""
        if self.labels is None:
            return None
        return self.labels.draw(None if self.full_batch else self._idx, self.generator)

    def target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """The parameterization's regression target c_ε[t] ε + c_x0[t] x_0, from float32 tables on the device (no
        host-to-device copy per step, which a CUDA graph could not hold)."""
        if self._eps_target:
            return eps
        c_eps, c_x0 = self._target_coef
        return torch.addcmul(c_eps[t].unsqueeze(1) * eps, c_x0[t].unsqueeze(1), x0)

    def loss(self, x0: Tensor, t: Tensor, eps: Tensor, labels: Tensor | None = None) -> Tensor:
        """The step's loss (:class:`~difflab.training.objective.Objective`): the simple loss, hybrid with learned
        variances; ``labels`` for a conditional network."""
        return self.objective.loss(self.model, x0, eps, t, labels)

    def step(self) -> Tensor:
        """One optimizer step; returns the step's loss (before the update) as a 0-d tensor."""
        loss = self.compute_grads()
        self.apply_update()
        return loss

    def compute_grads(self) -> Tensor:
        """Draw, forward and backward: the gradients of this step's loss in ``p.grad``; returns the loss."""
        if self.fast is not None:
            return self.fast.compute_grads()
        if self.net is None:
            x0, t, eps = self.draw()
            loss = self.loss(x0, t, eps, self.draw_labels())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            return loss.detach()
        x0, t, eps = self.draw()
        for p, g in zip(self._params, self._grads, strict=True):
            if p.grad is not g:  # e.g. after opt.zero_grad(set_to_none=True)
                p.grad = g
        torch.index_select(self._sqrt_ab, 0, t, out=self._a.view(-1))
        torch.index_select(self._sqrt_1mab, 0, t, out=self._s.view(-1))
        torch.mul(x0, self._a, out=self._xt)
        self._xt.addcmul_(self._s, eps)
        self.net.forward(self._t1)
        self.net.backward(self.target(x0, eps, t).unsqueeze(0), self._loss)
        return self._loss[0].clone()

    def apply_update(self, *, schedule: bool = True) -> None:
        """Clip, AdamW, then the LR schedule (``schedule=False``: the caller sets the LR) and EMA."""
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        if self._direct_adamw and self._stepped and isinstance(self.opt.param_groups[0]["lr"], float):
            fused_adamw_step(self.opt)
        else:  # the first step goes through opt.step(), which creates the state the direct call uses
            self.opt.step()
            self._stepped = True
        if schedule:
            self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model)

    # --- loop ---------------------------------------------------------------------------------------------------
    def fit(
        self,
        *,
        progress: bool = True,
        on_checkpoint: Callable[[Trainer], None] | None = None,
        log_every: int = 50,
        graph: bool | None = None,
    ) -> float:
        """Run from the current step to ``cfg.steps``; returns the wall seconds spent. Checkpoints every
        ``cfg.checkpoint_every`` steps and at the end through ``on_checkpoint``. ``graph``: replay each step from
        a CUDA graph (default: on CUDA unless ``cfg.cuda_graph`` is off; True on a CPU runs the graphed step's
        warm-up and undo and then its steps eagerly, for tests). A graph that cannot be built, warmed up or
        captured costs one warning: the run continues eagerly, as if it had not been tried."""
        self.model.train()
        start = time.perf_counter()
        graphed = self._graphed(graph)
        bar = progress_bar(self.cfg.steps, initial=self.step_count, desc="train", enabled=progress)
        checked = self.step_count
        with cpu_threads(1 if self.fast is not None else self.threads):  # the fast step's lanes: 1 torch thread each
            while self.step_count < self.cfg.steps:
                if graphed is not None:
                    graphed.replay()
                else:
                    self.loss_log[self.step_count] = self.step()
                    self.step_count += 1
                if self.step_count % log_every == 0:
                    lo = max(checked, self.step_count - log_every)
                    window = self.loss_log[lo : self.step_count]
                    self._check_finite(window, lo)
                    checked = self.step_count
                    if progress:
                        bar.set_postfix(loss=f"{window.mean().item():.4f}")
                        bar.update(log_every)
                if on_checkpoint and self.step_count % self.cfg.checkpoint_every == 0:
                    if graphed is not None:
                        graphed.sync()
                    self._check_finite(self.loss_log[checked : self.step_count], checked, weights=True)
                    on_checkpoint(self)
        bar.close()
        self._check_finite(self.loss_log[checked : self.step_count], checked, weights=True)
        if graphed is not None:
            graphed.release()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if on_checkpoint and self.step_count % self.cfg.checkpoint_every != 0:
            on_checkpoint(self)
        return seconds

    def _graphed(self, graph: bool | None = None) -> GraphedTrainer | None:
        """The CUDA-graph runner of this trainer's step: on CUDA unless the config turns it off (``graph``
        overrides), and only for enough remaining steps to repay the capture. None if building, warming up or
        capturing it fails: then the Trainer is as it was before the attempt, and one warning says why."""
        remaining = self.cfg.steps - self.step_count
        if graph is None:
            graph = self.device.type == "cuda" and self.cfg.cuda_graph
        # (importance sampling's history: dynamic shapes; a coupling solves its OT problem on the host)
        if not graph or remaining < GRAPH_MIN_STEPS or self.objective.importance or self.coupling is not None:
            return None
        stepped = self._stepped
        try:
            return GraphedTrainer(self, warmup=min(3, remaining), capture=self.device.type == "cuda")
        except Exception as e:  # whatever the card or driver raised; the attempt undid its own changes
            self._stepped = stepped
            warn_graph_failed("the training step", e)
            return None

    def _check_finite(self, window: Tensor, first: int, *, weights: bool = False) -> None:
        """Stop with :class:`TrainingDiverged` if a logged loss (steps first+1..) or, with ``weights``, a weight is
        not finite: nothing non-finite reaches a checkpoint or a model file (one host sync per call)."""
        bad = ~torch.isfinite(window)
        if bool(bad.any()):
            step = first + int(torch.nonzero(bad)[0, 0]) + 1
            raise TrainingDiverged(f"training diverged: the loss is {float(window[step - first - 1])} at step {step} "
                                   f"(lr {self.cfg.lr:g}); stopped there, the last checkpoint before it is kept. Try a "
                                   "smaller --lr, grad_clip in [train], or another schedule")
        if weights and not all(bool(torch.isfinite(p).all()) for p in self.model.parameters()):
            raise TrainingDiverged(f"training diverged: a weight is not finite after step {self.step_count} "
                                   f"(lr {self.cfg.lr:g}); the last checkpoint before it is kept. Try a smaller --lr")

    def losses(self) -> list[float]:
        return self.loss_log[: self.step_count].tolist()

    # --- state for checkpoints ------------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, Tensor]:
        out = model_tensors(self.model, "model.")
        if self.ema is not None:
            out.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        out.update(optimizer_tensors(self.opt))
        out["rng"] = self.generator.get_state()
        out["loss_log"] = self.loss_log[: self.step_count]
        out.update(self.objective.state_tensors())
        return out

    def load_state_tensors(self, tensors: dict[str, Tensor], step: int) -> None:
        rng, mine = tensors["rng"], self.generator.get_state()
        if rng.numel() != mine.numel():  # a CUDA generator's state is 16 bytes (Philox), a CPU one's 5056 (MT19937)
            other = "cuda" if rng.numel() < mine.numel() else "cpu"
            raise ConfigError(f"the checkpoint's random draws come from a {other} generator; resume it with "
                              f"--device {other} (this run is on {self.device.type})")
        self.model.load_state_dict(strip(tensors, "model."))
        if self.ema is not None:
            ema = strip(tensors, "ema.")
            self.ema.load_state_dict(ema if ema else strip(tensors, "model."))
        load_optimizer_tensors(self.opt, tensors)
        self.objective.load_state_tensors(tensors)
        self.generator.set_state(tensors["rng"])
        self.step_count = step
        n = min(step, self.cfg.steps)
        self.loss_log[:n] = tensors["loss_log"][:n].to(self.device)
        # The LR schedule is a pure function of the step: set it there rather than replaying `step` calls.
        lrs = [base * lr_lambda(self.cfg)(step) for base in self.sched.base_lrs]
        for group, lr in zip(self.opt.param_groups, lrs, strict=True):
            group["lr"] = lr
        self.sched.load_state_dict({**self.sched.state_dict(), "last_epoch": step, "_last_lr": lrs})

    def eval_model(self) -> nn.Module:
        """The weights to sample with: the EMA copy when EMA is on."""
        if self.ema is None:
            return self.model
        import copy

        m = copy.deepcopy(self.model)
        self.ema.copy_to(m)
        return m
