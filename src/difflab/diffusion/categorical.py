"""Discrete diffusion of a categorical column of K levels: multinomial (uniform) and masked (absorbing state).

Both processes are indexed by the same time as the Gaussian process of the table's numbers and keep a level with
the same probability ᾱ_t that the Gaussian process keeps of its signal (TabDDPM shares the schedule the same way,
Kotelnikov et al. 2023); ᾱ_{t|s} = ᾱ_t / ᾱ_s is the keep rate of a jump s → t.

- ``multinomial`` (Hoogeboom et al. 2021): a level is kept or redrawn uniformly,
  q(x_t | x_0) = Cat(ᾱ_t e_{x_0} + (1 − ᾱ_t)/K)                                           (Hoogeboom eq. 12)
  q(x_s | x_t, x_0) ∝ [ᾱ_{t|s} e_{x_t} + (1 − ᾱ_{t|s})/K] ⊙ [ᾱ_s e_{x_0} + (1 − ᾱ_s)/K]       (Hoogeboom eq. 13)
  and the model's step p_θ(x_s | x_t) is that posterior with x_0 replaced by the network's probabilities x̂_0.
- ``masked`` (Austin et al. 2021, absorbing state; Sahoo et al. 2024; Shi et al. 2024): a level is kept or replaced
  by a mask token (state K),
  q(x_t | x_0) = ᾱ_t e_{x_0} + (1 − ᾱ_t) e_mask,
  q(x_s | x_t = mask, x_0) = (ᾱ_s − ᾱ_t)/(1 − ᾱ_t) e_{x_0} + (1 − ᾱ_s)/(1 − ᾱ_t) e_mask, and x_s = x_t once unmasked.
  The network's x̂_0 has no mass on the mask and unmasked levels carry over (MDLM's "SUBS" parameterisation), so
  the step's KL is (ᾱ_{t−1} − ᾱ_t)/(1 − ᾱ_t) · (−log x̂_0[x_0]) on masked cells and 0 elsewhere (Sahoo eq. 8-10).

The loss of a column at step t is the ELBO's L_t = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) for t ≥ 2 and
−log p_θ(x_0 | x_1) at t = 1, in nats (:meth:`CategoricalProcess.loss_terms`). States are level codes (B,) int64;
the mask is code K. Probabilities are computed in float64 from the float64 keep rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F

from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError

TINY = 1e-30  # floor under probabilities before a log


def _rows(values: Tensor | Time, like: Tensor) -> Tensor:
    """A per-row float64 tensor (B, 1) from a number or a (B,) tensor."""
    if isinstance(values, Tensor):
        return values.to(device=like.device, dtype=torch.float64).reshape(-1, 1)
    return torch.full((like.shape[0], 1), float(values), dtype=torch.float64, device=like.device)


class CategoricalProcess:
    """A discrete forward process over K levels (plus a mask state for ``masked``), keeping ᾱ_t of ``process``."""

    name: str = ""
    masked: bool = False

    def __init__(self, process: Process) -> None:
        self.process = process
        self.T = process.T

    def states(self, k: int) -> int:
        """How many states a cell of a K-level column can be in (K, or K + 1 with the mask)."""
        return k + int(self.masked)

    # --- keep rates -------------------------------------------------------------------------------------------
    def keep(self, t: Time | Tensor, like: Tensor) -> Tensor:
        """ᾱ_t per row, float64 (B, 1)."""
        if isinstance(t, Tensor):
            return torch.exp(self.process.log_alpha_bar_rows(t.to(like.device))).to(torch.float64).reshape(-1, 1)
        return _rows(self.process.alpha_bar(t), like)

    # --- to implement -----------------------------------------------------------------------------------------
    def q_probs(self, x0: Tensor, t: Time | Tensor, k: int) -> Tensor:
        """q(x_t | x_0) as (B, states) probabilities; ``x0`` codes (B,) or probabilities (B, K)."""
        raise NotImplementedError

    def q_sample_u(self, x0: Tensor, t: Time | Tensor, u: Tensor, k: int) -> Tensor:
        """A draw of x_t ~ q(x_t | x_0) from one uniform u ∈ [0, 1) per row (inverse CDF)."""
        raise NotImplementedError

    def q_forward_u(self, xs: Tensor, s: Time, t: Time, u: Tensor, k: int) -> Tensor:
        """A draw of x_t ~ q(x_t | x_s), s < t, from one uniform per row (for RePaint's jumps back)."""
        raise NotImplementedError

    def posterior(self, x0: Tensor, xt: Tensor, t: Time | Tensor, s: Time | Tensor, k: int) -> Tensor:
        """q(x_s | x_t, x_0) as (B, states) probabilities, s < t; ``x0`` codes (B,) or probabilities (B, K) (then
        it is the model's step p_θ(x_s | x_t))."""
        raise NotImplementedError

    def prior_sample(self, n: int, k: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
        """x_T for ``n`` rows."""
        raise NotImplementedError

    def prior(self, k: int) -> Tensor:
        """The distribution that sampling starts from, (states,)."""
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------------------------
    def q_sample(self, x0: Tensor, t: Time | Tensor, generator: torch.Generator | None, k: int) -> Tensor:
        """x_t ~ q(x_t | x_0) for level codes ``x0`` (B,) at time ``t`` (a number or (B,) times)."""
        return self.q_sample_u(x0, t, torch.rand(x0.shape, generator=generator, device=x0.device,
                                                 dtype=torch.float64), k)

    def q_forward(self, xs: Tensor, s: Time, t: Time, generator: torch.Generator | None, k: int) -> Tensor:
        """x_t ~ q(x_t | x_s) for states ``xs`` at time s < t."""
        return self.q_forward_u(xs, s, t, torch.rand(xs.shape, generator=generator, device=xs.device,
                                                     dtype=torch.float64), k)

    def step(self, log_x0: Tensor, xt: Tensor, t: Time, s: Time, generator: torch.Generator | None) -> Tensor:
        """One reverse jump t → s: x_s ~ p_θ(x_s | x_t), with x̂_0 = softmax(``log_x0``) (B, K)."""
        probs = self.posterior(torch.softmax(log_x0.to(torch.float64), dim=1), xt, t, s, log_x0.shape[1])
        return draw(probs, generator)

    def loss_terms(self, logits: Tensor, x0: Tensor, xt: Tensor, t: Tensor) -> Tensor:
        """L_t per row in nats: KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) for t ≥ 2, −log p_θ(x_0 | x_1) at
        t = 1 (``t`` (B,) whole steps; ``logits`` (B, K) of x̂_0)."""
        k = logits.shape[1]
        p_model = self.posterior(torch.softmax(logits.to(torch.float64), dim=1), xt, t, t - 1, k)
        q_true = self.posterior(x0, xt, t, t - 1, k)
        log_pm = torch.log(p_model.clamp_min(TINY))
        kl = (q_true * (torch.log(q_true.clamp_min(TINY)) - log_pm)).sum(dim=1)
        nll = -log_pm.gather(1, x0.reshape(-1, 1)).squeeze(1)
        return torch.where(t == 1, nll, kl)

    def prior_kl(self, x0: Tensor, k: int) -> Tensor:
        """KL(q(x_T | x_0) ‖ prior) per row, nats: the ELBO's L_T (no parameters)."""
        q = self.q_probs(x0, self.T, k)
        p = self.prior(k).to(q)
        return (q * (torch.log(q.clamp_min(TINY)) - torch.log(p.clamp_min(TINY)))).sum(dim=1)


def draw(probs: Tensor, generator: torch.Generator | None) -> Tensor:
    """One state per row of (B, S) probabilities, by the inverse CDF of one uniform per row."""
    u = torch.rand(len(probs), 1, generator=generator, device=probs.device, dtype=probs.dtype)
    cdf = probs.cumsum(dim=1)
    return (cdf < u * cdf[:, -1:]).sum(dim=1).clamp(max=probs.shape[1] - 1)


def _onehot(x0: Tensor, k: int, states: int) -> Tensor:
    """Codes (B,) → one-hot (B, states) float64; probabilities (B, K) → padded to ``states`` columns."""
    if x0.dim() == 2:
        p = x0.to(torch.float64)
        return F.pad(p, (0, states - p.shape[1])) if states > p.shape[1] else p
    return F.one_hot(x0.long(), states).to(torch.float64)


class MultinomialDiffusion(CategoricalProcess):
    """Uniform-noise multinomial diffusion (Hoogeboom et al. 2021)."""

    name = "multinomial"
    masked = False

    def q_probs(self, x0: Tensor, t: Time | Tensor, k: int) -> Tensor:
        a = self.keep(t, x0)
        return a * _onehot(x0, k, k) + (1.0 - a) / k

    def q_sample_u(self, x0: Tensor, t: Time | Tensor, u: Tensor, k: int) -> Tensor:
        a = self.keep(t, x0).squeeze(1)
        u = u.to(torch.float64)
        # u < ᾱ: keep; else the rest of [0, 1) split into K equal parts, one per level
        redraw = ((u - a) / (1.0 - a).clamp_min(TINY) * k).floor().long().clamp(0, k - 1)
        return torch.where(u < a, x0.long(), redraw)

    def q_forward_u(self, xs: Tensor, s: Time, t: Time, u: Tensor, k: int) -> Tensor:
        r = math.exp(self.process.log_alpha_bar(t) - self.process.log_alpha_bar(s))
        u = u.to(torch.float64)
        redraw = ((u - r) / max(1.0 - r, TINY) * k).floor().long().clamp(0, k - 1)
        return torch.where(u < r, xs.long(), redraw)

    def posterior(self, x0: Tensor, xt: Tensor, t: Time | Tensor, s: Time | Tensor, k: int) -> Tensor:
        a_t, a_s = self.keep(t, xt), self.keep(s, xt)
        r = a_t / a_s.clamp_min(TINY)  # ᾱ_{t|s}
        from_t = r * _onehot(xt, k, k) + (1.0 - r) / k  # q(x_t | x_s) as a function of x_s
        from_0 = a_s * _onehot(x0, k, k) + (1.0 - a_s) / k  # q(x_s | x_0)
        joint = from_t * from_0
        return joint / joint.sum(dim=1, keepdim=True)

    def prior_sample(self, n: int, k: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
        return torch.randint(0, k, (n,), generator=generator, device=device)

    def prior(self, k: int) -> Tensor:
        return torch.full((k,), 1.0 / k, dtype=torch.float64)


class MaskedDiffusion(CategoricalProcess):
    """Absorbing-state (masked) diffusion (Austin et al. 2021; Sahoo et al. 2024; Shi et al. 2024)."""

    name = "masked"
    masked = True

    def q_probs(self, x0: Tensor, t: Time | Tensor, k: int) -> Tensor:
        a = self.keep(t, x0)
        out = a * _onehot(x0, k, k + 1)
        out[:, k] += (1.0 - a).squeeze(1)
        return out

    def q_sample_u(self, x0: Tensor, t: Time | Tensor, u: Tensor, k: int) -> Tensor:
        a = self.keep(t, x0).squeeze(1)
        return torch.where(u.to(torch.float64) < a, x0.long(), torch.full_like(x0.long(), k))

    def q_forward_u(self, xs: Tensor, s: Time, t: Time, u: Tensor, k: int) -> Tensor:
        r = math.exp(self.process.log_alpha_bar(t) - self.process.log_alpha_bar(s))
        return torch.where(u.to(torch.float64) < r, xs.long(), torch.full_like(xs.long(), k))

    def posterior(self, x0: Tensor, xt: Tensor, t: Time | Tensor, s: Time | Tensor, k: int) -> Tensor:
        a_t, a_s = self.keep(t, xt), self.keep(s, xt)
        unmask = (a_s - a_t) / (1.0 - a_t).clamp_min(TINY)  # the share of masked cells that get their level
        masked = (xt == k).reshape(-1, 1)
        from_mask = unmask * _onehot(x0, k, k + 1)
        from_mask[:, k] += (1.0 - unmask).squeeze(1)
        return torch.where(masked, from_mask, _onehot(xt.clamp(max=k), k + 1, k + 1))

    def prior_sample(self, n: int, k: int, generator: torch.Generator | None, device: torch.device | str) -> Tensor:
        return torch.full((n,), k, dtype=torch.long, device=device)

    def prior(self, k: int) -> Tensor:
        return F.one_hot(torch.tensor(k), k + 1).to(torch.float64)


CATEGORICAL: dict[str, type[CategoricalProcess]] = {"multinomial": MultinomialDiffusion, "masked": MaskedDiffusion}


def make_categorical(name: str, process: Process) -> CategoricalProcess:
    """The categorical process ``name`` sharing the keep rates ᾱ_t of ``process``."""
    try:
        return CATEGORICAL[name](process)
    except KeyError:
        raise ConfigError(f"unknown categorical process {name!r}; choose one of: {', '.join(CATEGORICAL)}") from None


@dataclass
class Chains:
    """The categorical cells of B rows during sampling: every column's state (``codes`` (B, C), the mask = K_c)
    at time ``t``, and the network's x̂_0 logits there (``logits``: one (B, K_c) per column, per class label that
    asked; None = no label). ``guidance`` (label, w) mixes a label's logits with the unlabelled ones as classifier-free
    guidance does (Ho & Salimans 2022, applied to log-probabilities)."""

    process: CategoricalProcess
    levels: list[int]
    codes: Tensor
    t: Time
    guidance: tuple[int | None, float] = (None, 0.0)
    logits: dict[int | None, list[Tensor]] = field(default_factory=dict)

    @classmethod
    def start(cls, process: CategoricalProcess, levels: list[int], n: int, generator: torch.Generator | None,
              device: torch.device | str, t: Time) -> Chains:
        codes = [process.prior_sample(n, k, generator, device) for k in levels]
        return cls(process, list(levels), torch.stack(codes, 1) if codes else torch.zeros(n, 0, dtype=torch.long), t)

    def record(self, label: int | None, logits: list[Tensor]) -> None:
        self.logits[label] = logits

    def log_x0(self, c: int | list[int]) -> Tensor:
        """log x̂_0 of column c at the current time, guided if asked; for columns [c, …] of equal K, theirs stacked
        as one (B·C, K) batch, row-major (row 0's columns first)."""
        label, w = self.guidance

        def logits(key: int | None) -> Tensor:
            own = self.logits[key]
            x = own[c] if isinstance(c, int) else torch.stack([own[j] for j in c], 1).reshape(-1, own[c[0]].shape[1])
            return torch.log_softmax(x.to(torch.float64), dim=1)

        cond = logits(label)
        if not w or None not in self.logits or label is None:
            return cond
        return cond + w * (cond - logits(None))

    def advance(self, s: Time, generator: torch.Generator | None) -> None:
        """Every column one reverse jump from the current time to s < t, from the logits recorded at t (columns of
        equal K as one batch)."""
        if s >= self.t:
            return
        if self.codes.shape[1]:
            if not self.logits:
                raise RuntimeError(f"no network prediction at t={self.t} to step the categorical columns from")
            by_k: dict[int, list[int]] = {}
            for c, k in enumerate(self.levels):
                by_k.setdefault(k, []).append(c)
            codes = torch.empty_like(self.codes)
            for cols in by_k.values():
                step = self.process.step(self.log_x0(cols), self.codes[:, cols].reshape(-1), self.t, s, generator)
                codes[:, cols] = step.reshape(-1, len(cols))
            self.codes = codes
        self.t, self.logits = s, {}

    def onehot(self, dtype: torch.dtype = torch.float32) -> Tensor:
        """The states as the network sees them: each column's one-hot over its states, side by side."""
        return torch.cat([F.one_hot(self.codes[:, c], self.process.states(k)).to(dtype)
                          for c, k in enumerate(self.levels)], 1) if self.levels else self.codes.new_zeros(
            len(self.codes), 0).to(dtype)

