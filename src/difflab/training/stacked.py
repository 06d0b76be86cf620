"""M independent runs of one architecture trained as one computation: stacked parameters, one step for all.

A sweep over seeds, learning rates or schedules trains M small networks that each leave the hardware mostly idle.
Stacking their parameters along a leading model axis turns M small matrix products into one batched product: on a
GPU the whole sweep then costs little more than its largest member. Each member keeps everything that is per run:
initial weights and draws (its seed), learning rate, LR schedule and warm-up, weight decay, Adam betas, EMA decay,
gradient clipping, noise schedule (its ᾱ table), parameterization and data (its own sample and scaler). Members
share the network, T, the step count, the batch size and the data's shape (N, D).

A member computes what :class:`difflab.training.trainer.Trainer` computes for its config: the same initial
weights, the same draws (on CPU one generator per member, seeded and used as the Trainer uses its own; on CUDA one
shared generator, so draws differ from a single run's but have the same law), the same loss and gradients, and
AdamW (Loshchilov & Hutter 2019) with its own constants; rounding may differ in the last bits.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import Tensor
from torch.func import functional_call, grad_and_value, vmap
from torch.nn import functional as F

from difflab.compute import cpu_threads, default_threads, resolve_device
from difflab.config import TrainConfig
from difflab.diffusion.parameterization import target_tables
from difflab.diffusion.process import GaussianDiffusion
from difflab.errors import ConfigError
from difflab.progress import progress_bar
from difflab.training.cuda_graph import GRAPH_MIN_STEPS, CapturedStep, warn_graph_failed
from difflab.training.optim import lr_lambda

ADAM_EPS = 1e-8  # torch.optim.AdamW's default, which the Trainer uses


def _per_member(values: list[float], device: torch.device) -> Tensor:
    return torch.tensor(values, dtype=torch.float32, device=device)


def _check_same_architecture(models: list[torch.nn.Module]) -> None:
    first = models[0]
    shapes = [(n, tuple(p.shape)) for n, p in first.named_parameters()]
    if not shapes:
        raise ConfigError(f"train_many: {type(first).__name__} has no parameters to train")
    for m in models[1:]:
        if type(m) is not type(first) or [(n, tuple(p.shape)) for n, p in m.named_parameters()] != shapes:
            raise ConfigError("train_many: members must share one network architecture (class, names and shapes)")


class StackedTrainer:
    """Trains M networks of one architecture with stacked parameters; ``step()`` advances all of them.

    ``models``: the initial networks (one class, the same parameter names and shapes); ``xs``: scaled data
    (M, N, D); one TrainConfig, diffusion and parameterization per member. ``rng``: "member" (one generator per
    member, draws as in a single run; default on CPU) or "shared" (one generator, (M, B) draws at once; default on
    CUDA, where M small draws would cost M launches each). Every per-step quantity lives on the device and the step
    counter is a device tensor, so a step can be captured in a CUDA graph as it is.

    Gradients come from ``torch.func``: ``vmap(grad(loss))`` over the members' parameters, one call for all M, for
    any network without state of its own (no batch-norm statistics). :class:`difflab.training.batched.
    BatchedSeedTrainer` replaces that with a hand-written step for the tutorial's network.
    """

    def __init__(
        self,
        models: list[torch.nn.Module],
        diffusions: list[GaussianDiffusion],
        xs: Tensor,
        cfgs: list[TrainConfig],
        parameterizations: list[str],
        *,
        rng: str | None = None,
    ) -> None:
        if not (len(models) == len(diffusions) == len(xs) == len(cfgs) == len(parameterizations)) or not models:
            raise ConfigError("train_many: give one model, diffusion, data set, config and parameterization each")
        _check_same_architecture(models)
        c0 = cfgs[0]
        self.cfgs, self.M, self.steps = cfgs, len(models), c0.steps
        self.device = dev = resolve_device(c0.device)
        self.x = xs.to(dev, torch.float32).contiguous()
        _, self.N, self.D = self.x.shape
        self.B = self.N if c0.batch_size is None or c0.batch_size >= self.N else int(c0.batch_size)
        self.T = diffusions[0].T
        # Weights, gradients and Adam's moments each live in one (M, P) buffer; the per-parameter tensors are views
        # (M, *shape) into it, so the optimizer is a handful of elementwise kernels on (M, P), not a dozen per
        # parameter (which on a GPU is what a small model's step would wait for).
        stacked = [torch.stack([p.detach() for p in ps]).to(dev) for ps in zip(*(m.parameters() for m in models))]
        self._shapes = [tuple(p.shape[1:]) for p in stacked]
        self._flat = {"params": torch.cat([p.reshape(self.M, -1) for p in stacked], dim=1)}
        for name in ("grads", "exp_avg", "exp_avg_sq"):
            self._flat[name] = torch.zeros_like(self._flat["params"])
        self.params, self.grads, self.exp_avg, self.exp_avg_sq = (
            self._views(self._flat[k]) for k in ("params", "grads", "exp_avg", "exp_avg_sq"))
        n_params = self._flat["params"].shape[1]
        self.threads = c0.threads or (default_threads(n_params * self.M, self.B) if dev.type == "cpu" else None)
        self.names = [n for n, _ in models[0].named_parameters()]
        self._setup_compute(models)
        f32 = dict(dtype=torch.float32, device=dev)
        self.sqrt_ab = torch.stack([d.sqrt_alpha_bars for d in diffusions]).to(**f32)
        self.sqrt_1mab = torch.stack([d.sqrt_one_minus_alpha_bars for d in diffusions]).to(**f32)
        tables = [target_tables(d, p) for d, p in zip(diffusions, parameterizations, strict=True)]
        self.target_is_eps = all(p == "eps" for p in parameterizations)
        self.c_eps = torch.stack([a for a, _ in tables]).to(**f32)
        self.c_x0 = torch.stack([b for _, b in tables]).to(**f32)
        self.lr_table = self._lr_table(cfgs).to(dev)
        f64 = dict(dtype=torch.float64, device=dev)
        self.wd = torch.tensor([c.weight_decay for c in cfgs], **f64)
        self.beta1 = torch.tensor([c.adam_betas[0] for c in cfgs], **f64)
        self.beta2 = torch.tensor([c.adam_betas[1] for c in cfgs], **f64)
        self._adam_consts = [x.float() for x in (self.beta1, 1 - self.beta1, self.beta2, 1 - self.beta2)]
        self.clip = _per_member([c.grad_clip or float("inf") for c in cfgs], dev) if any(
            c.grad_clip for c in cfgs) else None
        self.ema_keep = _per_member([c.ema for c in cfgs], dev) if c0.ema is not None else None
        if self.ema_keep is not None:
            self._flat["ema"] = self._flat["params"].clone()
        self.ema = self._views(self._flat["ema"]) if self.ema_keep is not None else []
        self.step_t = torch.zeros(1, dtype=torch.long, device=dev)
        self._adam_step = torch.zeros((), dtype=torch.float32, device=dev)  # AdamW's step count for the fused kernel
        self._adamw = self._fused_adamw if dev.type == "cpu" else self._stacked_adamw
        # (beta1, beta2, weight decay) per member, as Python floats once: the fused kernel takes scalars
        self._fixed_hparams = list(zip(self.beta1.tolist(), self.beta2.tolist(), self.wd.tolist(), strict=True))
        self.loss_log = torch.zeros(self.steps, self.M, **f32)
        self.loss = torch.empty(self.M, **f32)
        self.rng = rng or ("member" if dev.type == "cpu" else "shared")
        if self.rng not in ("member", "shared"):
            raise ConfigError(f"train_many: rng must be 'member' or 'shared', got {self.rng!r}")
        seeds = [c.seed for c in cfgs]
        if self.rng == "member":
            self.generators = [torch.Generator(device=dev).manual_seed(s) for s in seeds]
        else:
            shared = int(np.random.SeedSequence(seeds).generate_state(1, dtype=np.uint64)[0] >> 1)
            self.generators = [torch.Generator(device=dev).manual_seed(shared)]
        self._t = torch.empty(self.M, self.B, dtype=torch.long, device=dev)
        self._idx = torch.empty(self.M, self.B, dtype=torch.long, device=dev)
        self._noise = torch.empty(self.M, self.B, self.D, **f32)
        self._x0 = torch.empty(self.M, self.B, self.D, **f32)
        self._target = torch.empty(self.M, self.B, self.D, **f32)
        self._coef = torch.empty(2, self.M, self.B, 1, **f32)
        self.step_count = 0

    def _setup_compute(self, models: list[torch.nn.Module]) -> None:
        """One function for all members: the loss's gradient, vmapped over the stacked parameters (and buffers)."""
        net = copy.deepcopy(models[0]).to(self.device)  # a template: its own weights are never read
        self._buffers = {n: torch.stack([dict(m.named_buffers())[n] for m in models]).to(self.device)
                         for n, _ in net.named_buffers()}

        def loss(params: dict[str, Tensor], buffers: dict[str, Tensor], xt: Tensor, t: Tensor,
                 target: Tensor) -> Tensor:
            return F.mse_loss(functional_call(net, (params, buffers), (xt, t)), target)

        self._grad_fn = vmap(grad_and_value(loss))

    def _views(self, flat: Tensor) -> list[Tensor]:
        """The per-parameter views (M, *shape) into one (M, P) buffer, in ``model.parameters()`` order."""
        views, start = [], 0
        for shape in self._shapes:
            size = int(np.prod(shape, dtype=np.int64))
            views.append(flat[:, start : start + size].view(self.M, *shape))
            start += size
        return views

    @staticmethod
    def _lr_table(cfgs: list[TrainConfig]) -> Tensor:
        """(steps, M) float64: member m's learning rate at step s, lr_m · factor_m(s); each schedule computed once."""
        factors: dict[tuple, list[float]] = {}
        cols = []
        for c in cfgs:
            key = (c.lr_schedule, c.warmup, c.steps)
            if key not in factors:
                f = lr_lambda(c)
                factors[key] = [f(s) for s in range(c.steps)]
            cols.append(torch.tensor(factors[key], dtype=torch.float64) * c.lr)
        return torch.stack(cols, dim=1)

    # --- one step ---------------------------------------------------------------------------------------------
    def draw(self) -> tuple[Tensor, Tensor, Tensor]:
        """(x_0 (M, B, D), t (M, B), ε (M, B, D)) for one step, in the order the Trainer draws them."""
        full = self.B == self.N
        if self.rng == "member":
            for m, g in enumerate(self.generators):
                if not full:
                    torch.randint(0, self.N, (self.B,), generator=g, out=self._idx[m])
                torch.randint(1, self.T + 1, (self.B,), generator=g, out=self._t[m])
                torch.randn((self.B, self.D), generator=g, out=self._noise[m])
        else:
            g = self.generators[0]
            if not full:
                torch.randint(0, self.N, (self.M, self.B), generator=g, out=self._idx)
            torch.randint(1, self.T + 1, (self.M, self.B), generator=g, out=self._t)
            torch.randn((self.M, self.B, self.D), generator=g, out=self._noise)
        if full:
            return self.x, self._t, self._noise
        torch.gather(self.x, 1, self._idx.unsqueeze(-1).expand(-1, -1, self.D), out=self._x0)
        return self._x0, self._t, self._noise

    def coefficients(self, x0: Tensor, t: Tensor, eps: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(√ᾱ_t, √(1 − ᾱ_t), target) per member and row: the first two (M, B, 1), the target (M, B, D)."""
        a, s = self._coef[0], self._coef[1]
        target = eps
        if not self.target_is_eps:
            torch.gather(self.c_eps, 1, t, out=a[..., 0])
            torch.gather(self.c_x0, 1, t, out=s[..., 0])
            torch.mul(eps, a, out=self._target)
            target = self._target.addcmul_(s, x0)
        torch.gather(self.sqrt_ab, 1, t, out=a[..., 0])
        torch.gather(self.sqrt_1mab, 1, t, out=s[..., 0])
        return a, s, target

    def compute_grads(self, x0: Tensor, t: Tensor, eps: Tensor) -> None:
        """Loss per member into :attr:`loss` and its gradients into :attr:`grads` for the given draws."""
        a, s, target = self.coefficients(x0, t, eps)
        xt = torch.addcmul(a * x0, s, eps)
        grads, loss = self._grad_fn(dict(zip(self.names, self.params, strict=True)), self._buffers, xt, t, target)
        torch._foreach_copy_(self.grads, [grads[n] for n in self.names])
        self.loss.copy_(loss)

    @torch.no_grad()
    def apply_update(self) -> None:
        """Per-member gradient clipping, AdamW with decoupled weight decay, EMA; then the step counter."""
        f = self._flat
        p, g = f["params"], f["grads"]  # (M, P) each
        if self.clip is not None:  # torch.nn.utils.clip_grad_norm_ per member
            coef = (self.clip / (g.square().sum(dim=1).sqrt() + 1e-6)).clamp(max=1.0)
            g.mul_(coef.unsqueeze(1))
        self._adamw()
        if self.ema_keep is not None:
            f["ema"].lerp_(p, (1 - self.ema_keep).unsqueeze(1))
        self.loss_log.index_copy_(0, self.step_t, self.loss.unsqueeze(0))
        self.step_t.add_(1)

    def _fused_adamw(self) -> None:
        """On the CPU: torch's fused AdamW kernel (the single Trainer's), one call per group of members with equal
        learning rate, betas and weight decay at this step: one call for a seed sweep. The kernel is one pass over
        the numbers; the elementwise form below takes ~12 (0.36 against ~0.05 ms per member and step, 2-core EPYC)."""
        f = self._flat
        step = int(self.step_t)
        self._adam_step.fill_(step + 1)
        groups: dict[tuple[float, ...], list[int]] = {}
        for m, (lr, fixed) in enumerate(zip(self.lr_table[step].tolist(), self._fixed_hparams, strict=True)):
            groups.setdefault((lr, *fixed), []).append(m)
        for (lr, beta1, beta2, wd), members in groups.items():
            rows = [slice(None)] if len(members) == self.M else members
            torch._fused_adamw_(
                [f["params"][r] for r in rows], [f["grads"][r] for r in rows], [f["exp_avg"][r] for r in rows],
                [f["exp_avg_sq"][r] for r in rows], [], [self._adam_step] * len(rows), lr=lr, beta1=beta1,
                beta2=beta2, weight_decay=wd, eps=ADAM_EPS, amsgrad=False, maximize=False, grad_scale=None,
                found_inf=None,
            )

    def _stacked_adamw(self) -> None:
        """Elsewhere (a GPU): a few elementwise kernels on the (M, P) buffers with per-member constants, which a
        CUDA graph captures as they are."""
        f = self._flat
        p, g, m, v = f["params"], f["grads"], f["exp_avg"], f["exp_avg_sq"]
        # Scalars in float64, elementwise work in float32, in the order of torch's fused AdamW kernel.
        lr = torch.index_select(self.lr_table, 0, self.step_t).view(self.M)
        n = (self.step_t + 1).to(torch.float64)
        step_size = (lr / (1 - self.beta1.pow(n))).float().unsqueeze(1)
        bc2_sqrt = (1 - self.beta2.pow(n)).sqrt().float().unsqueeze(1)
        decay = (1 - lr * self.wd).float().unsqueeze(1)
        b1, c1, b2, c2 = (c.unsqueeze(1) for c in self._adam_consts)
        p.mul_(decay)
        m.mul_(b1).add_(g * c1)
        v.mul_(b2).add_(g * g * c2)
        p.sub_(step_size * m / (v.sqrt() / bc2_sqrt).add_(ADAM_EPS))

    def step(self) -> None:
        self.compute_grads(*self.draw())
        self.apply_update()

    # --- loop ---------------------------------------------------------------------------------------------------
    def fit(self, *, progress: bool = False, graph: bool | None = None) -> float:
        """Train every member to ``steps``; returns wall seconds. ``graph`` (default: on CUDA unless the config's
        ``cuda_graph`` is off) replays the step as a CUDA graph (``difflab.training.cuda_graph``); True on a CPU
        runs its warm-up and undo and then the steps eagerly (for tests). A graph that cannot be warmed up or
        captured costs one warning: training continues eagerly, as if it had not been tried."""
        start = time.perf_counter()
        step = self.step
        remaining = self.steps - self.step_count
        if graph is None:
            graph = self.device.type == "cuda" and self.cfgs[0].cuda_graph and remaining >= GRAPH_MIN_STEPS
        if graph and remaining:
            try:
                step = CapturedStep(self.step, generators=self.generators, save=self.snapshot, restore=self.restore,
                                    warmup=min(3, remaining), capture=self.device.type == "cuda").replay
            except Exception as e:  # CapturedStep has put the state back
                warn_graph_failed("the batched training step", e)
        bar = progress_bar(remaining, desc="train", enabled=progress)
        with cpu_threads(self.threads):
            for _ in range(remaining):
                step()
                self.step_count += 1
                bar.update()
        bar.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    def snapshot(self) -> dict[str, list[Tensor]]:
        """Copies of everything a step changes (restore with :meth:`restore`; the CUDA graph's warm-up uses both)."""
        tensors = [*self._flat.values(), self.step_t, self.loss_log]
        return {"tensors": [x.clone() for x in tensors], "rng": [g.get_state() for g in self.generators]}

    def restore(self, snap: dict[str, list[Tensor]]) -> None:
        tensors = [*self._flat.values(), self.step_t, self.loss_log]
        for x, saved in zip(tensors, snap["tensors"], strict=True):
            x.copy_(saved)
        for g, state in zip(self.generators, snap["rng"], strict=True):
            g.set_state(state)

    # --- members out --------------------------------------------------------------------------------------------
    def member_state(self, m: int, names: list[str]) -> dict[str, dict[str, Tensor]]:
        """Member m's tensors on the CPU: ``model`` (trained weights), ``eval`` (EMA when on) and ``checkpoint``
        in the layout of :meth:`Trainer.state_tensors` (so ``train_run(..., resume=True)`` can continue it)."""
        model = {n: p[m].cpu().clone() for n, p in zip(names, self.params, strict=True)}
        ema = {n: e[m].cpu().clone() for n, e in zip(names, self.ema, strict=False)}  # empty without EMA
        ckpt = {f"model.{n}": v for n, v in model.items()}
        ckpt.update({f"ema.{n}": v for n, v in ema.items()})
        for i, (a, b) in enumerate(zip(self.exp_avg, self.exp_avg_sq, strict=True)):
            ckpt[f"optim.{i}.step"] = torch.tensor(float(self.step_count), dtype=torch.float32)
            ckpt[f"optim.{i}.exp_avg"], ckpt[f"optim.{i}.exp_avg_sq"] = a[m].cpu().clone(), b[m].cpu().clone()
        g = self.generators[m if self.rng == "member" else 0]
        ckpt["rng"] = g.get_state()
        ckpt["loss_log"] = self.loss_log[: self.step_count, m].cpu()
        return {"model": model, "eval": ema or model, "checkpoint": ckpt}
