"""Sample metrics, always reported next to their noise floor (the same metric between two true samples)."""

from difflab.evaluation.floors import Reference, evaluate_samples, format_table, nearest_neighbour_ratio
from difflab.evaluation.metrics import METRICS, Metric

__all__ = ["METRICS", "Metric", "Reference", "evaluate_samples", "format_table", "nearest_neighbour_ratio"]

from difflab.evaluation.likelihood import elbo  # noqa: E402

__all__ += ["elbo"]
