"""difflab's figures: pure plotting from numpy arrays and callables to PNG/GIF files, written atomically.

Every function works for data of any width D (D = 1: histograms, D = 2: scatter, D > 2: pairwise panels of
the first 4 columns), except :func:`plot_vector_field`, which needs D = 2.
"""

from difflab.viz.animate import animate_reverse
from difflab.viz.conditional import plot_conditional
from difflab.viz.noise import forward_at, plot_forward_levels
from difflab.viz.points import plot_data, plot_samples
from difflab.viz.process import (
    forward_points,
    plot_forward,
    plot_trajectories,
    plot_vector_field,
    reverse_field,
)
from difflab.viz.schedules import plot_log_snr, plot_schedules, schedule_curves
from difflab.viz.style import figure, save
from difflab.viz.training import ema, plot_loss

__all__ = [
    "animate_reverse",
    "ema",
    "figure",
    "forward_at",
    "forward_points",
    "plot_conditional",
    "plot_data",
    "plot_forward",
    "plot_forward_levels",
    "plot_log_snr",
    "plot_loss",
    "plot_samples",
    "plot_schedules",
    "plot_trajectories",
    "plot_vector_field",
    "reverse_field",
    "save",
    "schedule_curves",
]
