"""The trainer: minimise E_{t, x_0, ε} ||f_θ(x_t, t) − target||² (Ho et al. 2020, eq. 14, the "simple" loss).

The tutorial's loop spends most of its time on per-step overhead, since its network is tiny. The step here computes
the same function with less of it: noise, steps and batch indices are drawn into buffers allocated once; the
schedule's coefficients are gathered from float32 tables on the device; the optimizer is AdamW's fused/foreach
kernel; the loss is logged into a preallocated tensor without a host sync per step; and the CPU thread count suits
the model's size. On CUDA the whole step can be captured in a CUDA graph (``difflab.training.cuda_graph``).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from difflab.config import TrainConfig
from difflab.diffusion.parameterization import get_parameterization
from difflab.diffusion.process import GaussianDiffusion
from difflab.training.checkpoint import load_optimizer_tensors, model_tensors, optimizer_tensors, strip
from difflab.training.ema import EMA


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from difflab.errors import ConfigError

        raise ConfigError("device 'cuda' requested but no CUDA device is available; use --device cpu")
    return torch.device(name)


def default_threads(n_params: int, batch: int) -> int:
    """Threads for a CPU step: below ~10⁸ multiply-adds per step, thread start-up costs more than it saves."""
    work = n_params * batch
    return 1 if work < 100_000_000 else max(1, torch.get_num_threads())


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

    def loss(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """Simple loss: MSE between the network's output and the parameterization's target."""
        xt = self._sqrt_ab[t].unsqueeze(1) * x0 + self._sqrt_1mab[t].unsqueeze(1) * eps
        target = self.param.target(self.diffusion, x0, eps, t)
        return F.mse_loss(self.model(xt, t), target)

    def step(self) -> Tensor:
        loss = self.loss(*self.draw())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip, foreach=True)
        self.opt.step()
        self.sched.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss.detach()

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
        bar = tqdm(total=self.cfg.steps, initial=self.step_count, disable=not progress, desc="train", leave=False)
        with cpu_threads(self.threads):
            while self.step_count < self.cfg.steps:
                self.loss_log[self.step_count] = self.step()
                self.step_count += 1
                if progress and self.step_count % log_every == 0:
                    lo = max(0, self.step_count - log_every)
                    bar.set_postfix(loss=f"{self.loss_log[lo : self.step_count].mean().item():.4f}")
                    bar.update(log_every)
                if on_checkpoint and self.step_count % self.cfg.checkpoint_every == 0:
                    on_checkpoint(self)
        bar.close()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if on_checkpoint and self.step_count % self.cfg.checkpoint_every != 0:
            on_checkpoint(self)
        return seconds

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
