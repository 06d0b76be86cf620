"""Sweeps: run the product of config options × seeds as cells, in parallel, and tabulate mean ± sd over seeds.

``difflab sweep GRID.toml --out DIR`` (see :mod:`difflab.sweep.grid` for the file, :mod:`difflab.sweep.runner` for
the directory it writes, :mod:`difflab.sweep.report` and :mod:`difflab.sweep.page` for the tables, figures and pages).
"""

from difflab.sweep.grid import Cell, EvaluateSettings, GridSpec, apply_changes, expand, load_grid
from difflab.sweep.runner import SweepSummary, run_sweep

__all__ = ["Cell", "EvaluateSettings", "GridSpec", "SweepSummary", "apply_changes", "expand", "load_grid", "run_sweep"]
