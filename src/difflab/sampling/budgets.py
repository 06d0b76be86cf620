"""Few-step defaults: for a budget of network calls, the (sampler, grid) pair that measured best without
distillation.

``difflab sample RUN --steps K`` (and ``evaluate``) with no ``--sampler`` or ``--grid`` reads K as a budget of K
network calls and samples with the best pair of the largest budget in :data:`BUDGETS` that is at most K (the next
best where the first cannot make a grid of that many distinct steps on the run's process; the run's own sampler
where none can), taking as many jumps as fit in K calls (Heun's method calls the network twice per jump, once into t = 0, so K calls buy ⌈K/2⌉
jumps). This applies to runs whose config leaves ``[sample] steps`` unset (every preset): a run that records its own
few-step sampler (a distilled student, a config with ``steps``) keeps it.

Where the numbers come from: ``benchmarks/few_step.py`` on the 10 toys with difflab's recommended recipe as the
model (W1 / noise floor of 10 000 samples, mean over toys; the table and plot in docs/quality.md, section
"Few network calls"). Each entry lists the three pairs with the lowest mean W1 ratio at that budget, best first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from difflab.diffusion.process import Process
from difflab.sampling.registry import CALLS_PER_STEP


@dataclass(frozen=True)
class Choice:
    """A sampler and its time grid; ``w1``: the mean W1 / floor it measured at that budget (for the docs)."""

    sampler: str
    grid: str
    w1: float


# Budget in network calls → the pairs measured best at that budget, best first, with their mean W1 / floor over the
# 10 toys (benchmarks/few_step.py on the default recipe, seed 0; docs/quality.md, "Few network calls"). Every sampler ×
# grid was measured on moons; the nine pairs of dpm++, dpm++-sde and ddim on the karras, karras-trailing and logsnr
# grids, which led there at every budget up to 20 calls, on all 10 toys. At 1 call every pair is the same single jump
# to x̂_0; with so few calls only a distilled student is good (progressive: 1.44 at 4 calls, against 4.67 here).
BUDGETS: dict[int, tuple[Choice, ...]] = {
    1: (Choice("dpm++", "karras-trailing", 13.78),),
    2: (Choice("dpm++", "karras-trailing", 13.67), Choice("ddim", "karras-trailing", 13.67)),
    4: (Choice("dpm++-sde", "karras", 4.67), Choice("dpm++", "karras", 5.00), Choice("dpm++", "karras-trailing", 6.84)),
    10: (Choice("dpm++", "logsnr", 1.69), Choice("dpm++", "karras-trailing", 1.97), Choice("dpm++-sde", "logsnr", 2.22)),
    20: (Choice("dpm++", "logsnr", 1.33), Choice("dpm++", "karras-trailing", 1.40), Choice("dpm++-sde", "logsnr", 1.41)),
}


# The straight path (``--schedule rectified``: velocity models, with or without OT coupling) has its own table, from
# benchmarks/few_calls.py on its best single-training family (velocity, logit-normal time, OT coupling) on moons and
# 8gaussians, seed 0 (a measured subset; docs/few_calls.md): the pairs by their mean proxy W1 over the two toys, with
# the full yardstick's mean W1 / floor of the first (the chosen one; at 2 calls the
# benchmark's pick was dpm++, which drew the same points). Euler (ddim on trailing) ties DPM-Solver++ there (its
# second-order correction needs a finite previous step, and the first starts at λ = −∞); Heun's 10 jumps lead at 20.
NAN = float("nan")  # the full yardstick scored only the first pair of each budget
STRAIGHT: dict[int, tuple[Choice, ...]] = {
    1: (Choice("ddim", "trailing", 5.92),),
    2: (Choice("ddim", "trailing", 1.54), Choice("dpm++", "trailing", NAN)),
    4: (Choice("ddim", "trailing", 1.14), Choice("dpm++", "trailing", NAN), Choice("dpm++", "logsnr", NAN)),
    20: (Choice("heun", "trailing", 1.06), Choice("ddim", "trailing", NAN), Choice("dpm++", "trailing", NAN)),
}

# Budget tables by family of run (:func:`budget_family`); a new family of process adds its own.
FAMILIES: dict[str, dict[int, tuple[Choice, ...]]] = {"diffusion": BUDGETS, "straight": STRAIGHT}


def steps_for_calls(sampler: str, calls: int) -> int:
    """Jumps K that cost at most ``calls`` network calls: K for one call per jump, ⌈calls/2⌉ for Heun's two
    (2K − 1 calls: the jump into t = 0 is one Euler call)."""
    per = CALLS_PER_STEP.get(sampler, 1)
    return max(1, (calls + 1) // 2) if per == 2 else calls


def calls_for_steps(sampler: str, steps: int) -> int:
    """Network calls of ``steps`` jumps (0 for the adaptive ODE solver, whose count depends on its tolerance)."""
    per = CALLS_PER_STEP.get(sampler, 1)
    return 2 * steps - 1 if per == 2 else per * steps


def budget_family(process: Process) -> str:
    """The table of :data:`FAMILIES` a run on ``process`` reads: its path's (``straight``), else ``diffusion``."""
    return process.path if process.path in FAMILIES else "diffusion"


def budget_choice(calls: int, fits: Callable[[str, str, int], bool] = lambda sampler, grid, steps: True, *,
                  family: str = "diffusion") -> tuple[str, str, int] | None:
    """(sampler, grid, steps) for a budget of ``calls`` network calls: the first pair of the largest budget in
    the ``family``'s table (:data:`FAMILIES`) at most ``calls`` for which ``fits(sampler, grid, steps)``, with as
    many jumps as fit; None if no pair fits."""
    if calls < 1:
        raise ValueError(f"a budget of {calls} network calls")
    if family not in FAMILIES:
        raise ValueError(f"no budget table for family '{family}'; known: {', '.join(FAMILIES)}")
    table = FAMILIES[family]
    choices = table[max(b for b in table if b <= calls)]
    picks = [(c.sampler, c.grid, steps_for_calls(c.sampler, calls)) for c in choices]
    return next((p for p in picks if fits(*p)), None)
