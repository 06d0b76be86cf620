"""The trainer: minimise E_{t, x_0, ε} ||f_θ(x_t, t) − target||² (Ho et al. 2020, eq. 14, the "simple" loss).

The tutorial's loop spends much of its time on per-step overhead, since its network is tiny. The step here computes
the same function with less of it: noise, steps and batch indices are drawn into buffers allocated once; the
schedule's and the target's coefficients are gathered from float32 tables on the device; the tutorial's network
runs a hand-written forward and backward into preallocated buffers (``difflab.models.batched``; other networks use
autograd); AdamW is torch's fused kernel, called directly on the CPU; the loss is logged into a preallocated tensor
without a host sync per step; and the CPU thread count suits the model's size (benchmarks/RESULTS.md). On CUDA,
``fit`` replays the whole step from a CUDA graph (``difflab.training.cuda_graph``).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from difflab.config import TrainConfig
from difflab.diffusion.parameterization import get_parameterization
from difflab.diffusion.process import GaussianDiffusion
from difflab.models.batched import StackedSeedMLP, is_plain_seed
from difflab.training.checkpoint import load_optimizer_tensors, model_tensors, optimizer_tensors, strip
from difflab.training.ema import EMA

GRAPH_MIN_STEPS = 10  # fewer remaining steps than this run eagerly: a capture costs about as much


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from difflab.errors import ConfigError

        raise ConfigError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return torch.device(name)


_IDLE_CACHE: list[float] = []  # [time measured, idle cores]


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all cores since boot, from /proc/stat (Linux); None elsewhere."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return fields[3] + fields[4], sum(fields[:8])  # idle + iowait; user..steal


def idle_cores(window: float = 0.05) -> float:
    """Cores that other processes leave free now: idle CPU time over a ``window`` of seconds times the core count
    (Linux; elsewhere the core count minus the 1-minute load average). Reused for 2 s after a measurement."""
    now = time.monotonic()
    if _IDLE_CACHE and now - _IDLE_CACHE[0] < 2.0:
        return _IDLE_CACHE[1]
    cores = os.cpu_count() or 1
    before = _cpu_times()
    if before is not None:
        time.sleep(window)
        after = _cpu_times()
        total = after[1] - before[1] if after else 0
        idle = cores * (after[0] - before[0]) / total if after and total > 0 else float(cores)
    else:
        try:
            idle = cores - os.getloadavg()[0]
        except (OSError, AttributeError):
            idle = float(cores)
    _IDLE_CACHE[:] = [now, idle]
    return idle


def default_threads(n_params: int, batch: int) -> int:
    """Torch threads for a CPU step of ``n_params`` × ``batch`` multiply-adds: one, unless the work is large enough
    to share and other processes leave cores idle (:func:`idle_cores`); then the idle cores, at most torch's own
    thread count.

    Measured on a 2-core AMD EPYC shared with other processes (benchmarks/RESULTS.md): for the tutorial's network
    (2·10⁷ multiply-adds per step) two threads made a step ~1.5x faster while the other core was idle, and 5-20x
    slower while another process used it: every matrix product ends in a barrier where one thread waits for the
    other to be scheduled again. Below ~10⁷ the barriers cost more than the second core gives even on an idle
    machine."""
    if n_params * batch < 10_000_000:
        return 1
    return max(1, min(torch.get_num_threads(), int(idle_cores() + 0.5)))  # round: 1.6 idle cores -> 2


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Set torch's intra-op thread count for the block, then restore it."""
    if n is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up over ``cfg.warmup`` steps, then constant or a cosine decay to 0 at ``cfg.steps``."""

    def factor(step: int) -> float:
        if cfg.warmup and step < cfg.warmup:
            return (step + 1) / cfg.warmup
        if cfg.lr_schedule == "constant":
            return 1.0
        span = max(cfg.steps - cfg.warmup, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(step - cfg.warmup, span) / span))

    return factor


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    # fused AdamW runs on CPU and CUDA in torch ≥ 2.4 and is one kernel for all parameters.
    return torch.optim.AdamW(
        model.parameters(), lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay, fused=True
    )


def target_tables(d: GaussianDiffusion, parameterization: str) -> tuple[Tensor, Tensor]:
    """(c_ε, c_x0), float64 (T+1,): the training target is c_ε[t] ε + c_x0[t] x_0 (v: Salimans & Ho 2022)."""
    get_parameterization(parameterization)  # a one-line ConfigError for unknown names
    one, zero = torch.ones(d.T + 1, dtype=torch.float64), torch.zeros(d.T + 1, dtype=torch.float64)
    tables = {"eps": (one, zero), "x0": (zero, one), "v": (d.sqrt_alpha_bars, -d.sqrt_one_minus_alpha_bars)}
    return tables[parameterization]


def _plain_fused_adamw(opt: torch.optim.Optimizer) -> bool:
    """True for a one-group fused AdamW with float LR and no amsgrad/maximize/grad scaling: the settings under
    which :func:`_fused_adamw_step` does exactly what ``opt.step()`` does."""
    if not isinstance(opt, torch.optim.AdamW) or len(opt.param_groups) != 1 or not hasattr(torch, "_fused_adamw_"):
        return False
    g = opt.param_groups[0]
    return bool(g["fused"]) and not (g["amsgrad"] or g["maximize"] or g["capturable"]) and isinstance(g["lr"], float)


def _fused_adamw_step(opt: torch.optim.Optimizer) -> None:
    """``opt.step()`` of a plain fused AdamW (see :func:`_plain_fused_adamw`) as the one kernel call it makes.

    ``Optimizer.step`` spends ~0.2 ms per call on hooks, grouping tensors by device and dtype and state checks,
    a fifth of a whole step for the tutorial's network; the arithmetic is the same kernel either way."""
    g = opt.param_groups[0]
    params = [p for p in g["params"] if p.grad is not None]
    states = [opt.state[p] for p in params]
    steps = [s["step"] for s in states]
    torch._foreach_add_(steps, 1)
    beta1, beta2 = g["betas"]
    torch._fused_adamw_(
        params, [p.grad for p in params], [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
        steps, lr=g["lr"], beta1=beta1, beta2=beta2, weight_decay=g["weight_decay"], eps=g["eps"],
        amsgrad=False, maximize=False, grad_scale=None, found_inf=None,
    )


class Trainer:
    """Trains ``model`` on the scaled data ``x`` (N, D). ``step()`` takes one optimizer step and returns the loss."""

    def __init__(
        self,
        model: nn.Module,
        diffusion: GaussianDiffusion,
        x: Tensor,
        cfg: TrainConfig,
        *,
        parameterization: str = "eps",
        fused: bool = True,
    ) -> None:
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.diffusion = diffusion
        self.param = get_parameterization(parameterization)
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
        self._sqrt_ab = diffusion.sqrt_alpha_bars.to(self.device, torch.float32)
        self._sqrt_1mab = diffusion.sqrt_one_minus_alpha_bars.to(self.device, torch.float32)
        self._eps_target = parameterization == "eps"
        self._target_coef = [c.to(self.device, torch.float32) for c in target_tables(diffusion, parameterization)]
        self.net = self._fused_net() if fused and is_plain_seed(self.model) else None
        self._direct_adamw = self.device.type == "cpu" and _plain_fused_adamw(self.opt)
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
        """Draw (x_0, t, ε) for one step: t ~ U{1..T} then ε ~ N(0, I), as the tutorial does."""
        if self.full_batch:
            x0 = self.x
        else:
            torch.randint(0, self.N, (self.B,), generator=self.generator, out=self._idx)
            x0 = self.x[self._idx]
        torch.randint(1, self.T + 1, (self.B,), generator=self.generator, out=self._t)
        torch.randn(self._noise.shape, generator=self.generator, out=self._noise)
        return x0, self._t, self._noise

    def target(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """The parameterization's regression target c_ε[t] ε + c_x0[t] x_0, from float32 tables on the device (no
        host-to-device copy per step, which a CUDA graph could not hold)."""
        if self._eps_target:
            return eps
        c_eps, c_x0 = self._target_coef
        return torch.addcmul(c_eps[t].unsqueeze(1) * eps, c_x0[t].unsqueeze(1), x0)

    def loss(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """Simple loss: MSE between the network's output and the parameterization's target."""
        xt = self._sqrt_ab[t].unsqueeze(1) * x0 + self._sqrt_1mab[t].unsqueeze(1) * eps
        target = self.target(x0, eps, t)
        return F.mse_loss(self.model(xt, t), target)

    def step(self) -> Tensor:
        """One optimizer step; returns the step's loss (before the update) as a 0-d tensor."""
        loss = self.compute_grads()
        self.apply_update()
        return loss

    def compute_grads(self) -> Tensor:
        """Draw, forward and backward: the gradients of this step's loss in ``p.grad``; returns the loss."""
        if self.net is None:
            loss = self.loss(*self.draw())
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
            _fused_adamw_step(self.opt)
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
    ) -> float:
        """Run from the current step to ``cfg.steps``; returns the wall seconds spent. Checkpoints every
        ``cfg.checkpoint_every`` steps and at the end through ``on_checkpoint``."""
        from tqdm.auto import tqdm

        self.model.train()
        start = time.perf_counter()
        graphed = self._graphed()
        bar = tqdm(total=self.cfg.steps, initial=self.step_count, disable=not progress, desc="train", leave=False)
        with cpu_threads(self.threads):
            while self.step_count < self.cfg.steps:
                if graphed is not None:
                    graphed.replay()
                else:
                    self.loss_log[self.step_count] = self.step()
                    self.step_count += 1
                if progress and self.step_count % log_every == 0:
                    lo = max(0, self.step_count - log_every)
                    bar.set_postfix(loss=f"{self.loss_log[lo : self.step_count].mean().item():.4f}")
                    bar.update(log_every)
                if on_checkpoint and self.step_count % self.cfg.checkpoint_every == 0:
                    if graphed is not None:
                        graphed.sync()
                    on_checkpoint(self)
        bar.close()
        if graphed is not None:
            graphed.release()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if on_checkpoint and self.step_count % self.cfg.checkpoint_every != 0:
            on_checkpoint(self)
        return seconds

    def _graphed(self):  # noqa: ANN202 - GraphedTrainer | None, imported lazily (it imports this module)
        """The CUDA-graph runner of this trainer's step: on CUDA unless the config turns it off, and only for
        enough remaining steps to repay the capture."""
        remaining = self.cfg.steps - self.step_count
        if self.device.type != "cuda" or not getattr(self.cfg, "cuda_graph", True) or remaining < GRAPH_MIN_STEPS:
            return None
        from difflab.training.cuda_graph import GraphedTrainer

        return GraphedTrainer(self, warmup=min(3, remaining))

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
        return out

    def load_state_tensors(self, tensors: dict[str, Tensor], step: int) -> None:
        self.model.load_state_dict(strip(tensors, "model."))
        if self.ema is not None:
            ema = strip(tensors, "ema.")
            self.ema.load_state_dict(ema if ema else strip(tensors, "model."))
        load_optimizer_tensors(self.opt, tensors)
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
