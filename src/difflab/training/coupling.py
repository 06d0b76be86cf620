"""How a training batch pairs its noise with its data: independently (``none``, every diffusion paper), or by
minibatch optimal transport (``ot``; Tong et al. 2023, OT-CFM; Pooladian et al. 2023, multisample flow matching).

With ``ot`` the B noise draws ε_j of a step are matched to its B data rows x_i by the assignment that minimises
Σ_i ‖x_i − ε_π(i)‖² (squared Euclidean cost, uniform weights): the exact plan of POT's network simplex ``ot.emd``,
which for B points on each side is a permutation (the vertices of the Birkhoff polytope are permutation matrices),
so ε is only reordered, its law N(0, I) per row unchanged. Interpolants x_t = a_t x_0 + s_t ε of matched pairs cross
less, the velocity the network learns is straighter and an ODE sampler needs fewer steps for the same error. The
learned field is the expected velocity of the *coupled* interpolant, so only deterministic (probability-flow)
samplers draw from the model; ancestral and SDE samplers and the ELBO assume the independent Gaussian forward
process (:func:`difflab.assemble.check_config` refuses them for a coupled run).

Above :data:`EXACT_MAX` rows the entropic plan (Sinkhorn, ``ot.sinkhorn``) is used instead, and
each data row draws its partner from its row of the plan (with the trainer's generator, so the draw is
reproducible); the size where Sinkhorn is faster than the exact solver was measured by
``benchmarks/coupling.py`` (benchmarks/RESULTS.md). A conditional run pairs within each class: a row's noise
partner is one of the noise draws of rows of its own class, so the class-conditional marginals stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from difflab.errors import ConfigError

# Rows per pairing above which Sinkhorn replaces the exact solver (benchmarks/coupling.py; see the module docstring).
EXACT_MAX = 1024
# Entropic regularisation of Sinkhorn, as a share of the mean cost of the batch (the cost is divided by its mean
# first, so one value suits any data scale and dimension): at 0.05 the plan's transport cost was 1.1-1.2x the exact
# optimum's (independent pairs: 2-3x) on N(1, I) against N(0, I), D = 2 and 10, and the solver converged in well
# under the time of the exact one from ~1000 rows on (benchmarks/coupling.py). Smaller values are closer to exact but
# need many more iterations (0.01: 20-60x slower at 1024 rows).
SINKHORN_REG = 0.05
SINKHORN_ITERS = 1000

# (x_0 (B, D), ε (B, D), class codes (B,) or None, generator) -> the indices j(i) of the noise rows paired with the
# rows of x_0, (B,) long; the identity for independent pairing.
Pairing = Callable[[Tensor, Tensor, Tensor | None, torch.Generator], Tensor]
COUPLINGS: dict[str, Pairing | None] = {}
DESCRIPTIONS: dict[str, str] = {}


def register(name: str, description: str) -> Callable[[Pairing | None], Pairing | None]:
    def deco(fn: Pairing | None) -> Pairing | None:
        COUPLINGS[name] = fn
        DESCRIPTIONS[name] = description
        return fn

    return deco


register("none", "independent: each row's noise is its own draw (the diffusion forward process)")(None)


def get_coupling(name: str) -> Pairing | None:
    """The pairing of ``name`` (None: independent pairing, nothing to do)."""
    if name not in COUPLINGS:
        raise ConfigError(f"unknown coupling '{name}'; choose one of: {', '.join(COUPLINGS)}")
    return COUPLINGS[name]


def squared_costs(x0: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """C_ij = ‖x0_i − ε_j‖², float64."""
    return (x0 * x0).sum(1)[:, None] + (eps * eps).sum(1)[None, :] - 2.0 * x0 @ eps.T


def exact_plan(x0: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """The optimal plan (B, B) of uniform weights under squared Euclidean cost (POT's ``ot.emd``)."""
    import ot  # POT: on use, so that commands that never couple do not pay its import

    n = len(x0)
    w = np.full(n, 1.0 / n)
    return ot.emd(w, w, squared_costs(x0, eps), numItermax=max(100_000, 50 * n * n))


def sinkhorn_plan(x0: np.ndarray, eps: np.ndarray, reg: float = SINKHORN_REG) -> np.ndarray:
    """The entropic plan (Cuturi 2013) of the same problem, the cost divided by its mean, regularised by ``reg``."""
    import warnings

    import ot

    n = len(x0)
    w = np.full(n, 1.0 / n)
    cost = squared_costs(x0, eps)
    with warnings.catch_warnings():  # a plan short of full convergence is still a coupling close to the exact one
        warnings.simplefilter("ignore", UserWarning)
        return ot.sinkhorn(w, w, cost / cost.mean(), reg, numItermax=SINKHORN_ITERS, stopThr=1e-6)


def plan_pairs(plan: np.ndarray, generator: torch.Generator) -> Tensor:
    """A partner per row: the row's argmax where the plan is a permutation (the exact solver's), else one draw per
    row from the row's conditional π(j | i) (Sinkhorn's), with ``generator``."""
    perm = plan.argmax(axis=1)
    n = len(plan)
    if np.unique(perm).size == n and np.allclose(plan[np.arange(n), perm], 1.0 / n):
        return torch.from_numpy(perm)
    rows = torch.from_numpy(np.clip(plan, 0.0, None))
    return torch.multinomial(rows / rows.sum(1, keepdim=True), 1, generator=generator).squeeze(1)


def ot_indices(x0: Tensor, eps: Tensor, generator: torch.Generator, exact_max: int = EXACT_MAX) -> Tensor:
    """Indices j(i) into ``eps`` of the partners of the rows of ``x0``: exact OT up to ``exact_max`` rows, Sinkhorn
    above."""
    if len(x0) != len(eps):
        raise ConfigError(f"OT coupling pairs as many noise rows as data rows, got {len(x0)} and {len(eps)}")
    if len(x0) < 2:
        return torch.zeros(len(x0), dtype=torch.long)
    a = x0.detach().to("cpu", torch.float64).numpy()
    b = eps.detach().to("cpu", torch.float64).numpy()
    plan = exact_plan(a, b) if len(a) <= exact_max else sinkhorn_plan(a, b)
    return plan_pairs(plan, generator)


@register("ot", "minibatch optimal transport: the batch's noise reordered to its data by exact OT (Tong et al. 2023; "
          "Pooladian et al. 2023), within each class for a conditional run")
def ot_pairing(x0: Tensor, eps: Tensor, labels: Tensor | None, generator: torch.Generator) -> Tensor:
    """Per-class exact OT (one problem per class present in the batch; rows of a class only meet noise rows drawn
    at positions of that class) or, without labels, one problem for the whole batch."""
    if labels is None:
        return ot_indices(x0, eps, generator).to(eps.device)
    labels = labels.to("cpu")
    out = torch.empty(len(x0), dtype=torch.long)
    for c in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == c).squeeze(1)
        dev_rows = rows.to(x0.device)
        out[rows] = rows[ot_indices(x0[dev_rows], eps[dev_rows], generator)]
    return out.to(eps.device)


def couple(pairing: Pairing, x0: Tensor, eps: Tensor, labels: Tensor | None, generator: torch.Generator) -> Tensor:
    """``eps`` with its rows reordered (or redrawn from the plan) into the partners of the rows of ``x0``, written
    in place (the trainer's noise buffer stays the one tensor a step reads)."""
    idx = pairing(x0, eps, labels, generator)
    eps.copy_(eps[idx])
    return eps
