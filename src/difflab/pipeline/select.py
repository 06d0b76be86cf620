"""The training length chosen from the held-out rows: keep the weights whose samples are no nearer to the training
rows than held-out rows are (``[train] select = "heldout"``, ``difflab train --select heldout``).

On a table of a few hundred rows a diffusion model first learns the distribution and then, trained on, the rows
themselves: its samples drift toward the training rows (docs/tables.md). Every tenth of training (at least every 50
steps) the weights the run would keep (EMA when on) draw 4 rows per held-out row with the run's own sampler, and two
numbers are taken against the held-out rows, which no step has seen:

- ``nearer``: the share of samples whose nearest training row is nearer than their nearest held-out row, with as
  many training rows as held-out rows (5 random subsets, averaged), on the evaluation matrix standardised by the
  held-out rows (:mod:`difflab.evaluation.privacy`); fresh rows score ½.
- ``fidelity``: the mean per-column KS / TV distance of the samples to the held-out rows
  (:mod:`difflab.evaluation.marginals`).

The run keeps the candidate of best fidelity among those with ``nearer`` ≤ :data:`NEARER_LIMIT`, or the one with the
least ``nearer`` if none qualifies; its step and every candidate's numbers go to ``select.json``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from difflab.config import RunConfig
from difflab.data.prepare import PreparedData
from difflab.diffusion import Process
from difflab.errors import ConfigError
from difflab.evaluation.marginals import column_distances
from difflab.evaluation.privacy import nearest_distances
from difflab.evaluation.tables import Standardiser, evaluation_matrix, numeric_spec
from difflab.rundir import Run

NEARER_LIMIT = 0.55  # issue 16: no more than 55 % of samples nearer to a training row than to a held-out row
PER_HELDOUT = 4  # samples drawn per held-out row at each candidate
SUBSETS = 5  # random training subsets the share is averaged over
MAX_HELDOUT = 1000  # held-out rows used at most (a random subset)


def every(steps: int) -> int:
    """Steps between candidates: a tenth of training, at least 50."""
    return max(50, steps // 10)


@dataclass
class Candidate:
    step: int
    nearer: float
    fidelity: float
    state: dict[str, Tensor] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        return {"step": self.step, "nearer": self.nearer, "fidelity": self.fidelity}


class HeldoutSelector:
    """Scores candidate weights on the held-out rows of ``data`` and picks one (see the module's docstring)."""

    def __init__(self, cfg: RunConfig, data: PreparedData, diffusion: Process, out: Path) -> None:
        if data.heldout is None or len(data.heldout) < 2:
            raise ConfigError("--select heldout chooses the training length from held-out rows; this run keeps none "
                              "(give --holdout, e.g. 0.2, or data from a file)")
        self.cfg, self.data, self.diffusion, self.out = cfg, data, diffusion, out
        self.spec = data.table if data.table is not None else numeric_spec(data.columns)
        rng = np.random.default_rng(cfg.train.seed)
        held = data.heldout
        if len(held) > MAX_HELDOUT:
            held = held[np.sort(rng.choice(len(held), MAX_HELDOUT, replace=False))]
        self.held_frame = self.spec.decode(held)
        m_held = evaluation_matrix(self.held_frame, self.spec)
        self.scale = Standardiser(m_held)
        self.m_held = self.scale(m_held)
        m_train = self.scale(evaluation_matrix(self.spec.decode(data.train), self.spec))
        size = min(len(held), len(m_train))
        self.subsets = [m_train[rng.choice(len(m_train), size, replace=False)] for _ in range(SUBSETS)]
        self.kinds = {c.name: c.kind for c in self.spec.columns}
        self.candidates: list[Candidate] = []

    def consider(self, step: int, model: nn.Module) -> Candidate:
        """Score the weights of ``model`` (those the run would keep at ``step``) and remember them."""
        from difflab.sample import sample_run

        model = model.cpu().eval()
        run = Run(self.out, self.cfg, self.data.columns, self.data.scaler, self.diffusion, model, None,
                  self.data.train, self.data.heldout, table=self.data.table, condition=self.data.condition)
        x, _ = sample_run(run, PER_HELDOUT * len(self.held_frame), seed=step, device="cpu")
        frame = self.spec.decode(x)
        m = self.scale(evaluation_matrix(frame, self.spec))
        to_held = nearest_distances(m, self.m_held)
        shares = [np.mean((d < to_held) + 0.5 * (d == to_held)) for d in (nearest_distances(m, s) for s in self.subsets)]
        dist = column_distances(frame, self.held_frame, self.kinds)
        fidelity = float(np.mean([v["value"] for v in dist.values()])) if dist else 0.0
        c = Candidate(step, float(np.mean(shares)), fidelity, copy.deepcopy(model.state_dict()))
        self.candidates.append(c)
        return c

    def pick(self) -> Candidate:
        ok = [c for c in self.candidates if c.nearer <= NEARER_LIMIT]
        return min(ok, key=lambda c: c.fidelity) if ok else min(self.candidates, key=lambda c: c.nearer)

    def report(self, chosen: Candidate) -> dict[str, Any]:
        return {"rule": f"best fidelity (mean KS/TV to the held-out rows) among candidates with nearer <= "
                        f"{NEARER_LIMIT}, else the least nearer", "limit": NEARER_LIMIT,
                "heldout_rows": len(self.held_frame), "samples": PER_HELDOUT * len(self.held_frame),
                "chosen": chosen.summary(), "candidates": [c.summary() for c in self.candidates]}
