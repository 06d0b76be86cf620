"""The presets: whole recipes as nested dicts of config sections, each chosen by a measurement cited beside it.

``difflab train --preset NAME`` (and :func:`difflab.config.resolve_config`) starts from one and lays the config file
and the command line's options over it. Every setting a recipe depends on is spelled out, so that changing a default
of :mod:`difflab.config` cannot change a recipe silently.
"""

from __future__ import annotations

from typing import Any

# The tutorial's recipe, exactly (Elflein 2022; shared/tutorial/settings.md). Every setting is spelled out, so a
# change of a default above cannot change it silently.
SEED: dict[str, Any] = {
    "data": {"source": "moons", "n": 1000, "scaler": "minmax"},
    "diffusion": {"time": "discrete", "schedule": "poly", "T": 10, "schedule_options": {"power": 4.0},
                  "parameterization": "eps", "variance": "fixed", "zero_terminal_snr": False},
    "model": {"name": "seed", "options": {}},
    "train": {
        "steps": 5000,
        "batch_size": None,
        "lr": 1e-2,
        "weight_decay": 1e-4,
        "adam_betas": (0.9, 0.999),
        "lr_schedule": "constant",
        "warmup": 0,
        "ema": None,
        "grad_clip": None,
    },
    "sample": {"sampler": "ddpm", "steps": None, "grid": "trailing", "variance": "small", "guard": "none",
               "options": {}},
}

# difflab's recommended recipe, chosen by measurement on all 10 toys (benchmarks/quality.py, docs/quality.md):
# EDM's continuous time, preconditioning and log-normal noise levels (Karras et al. 2022) with ancestral sampling on
# Karras's grid; it beat the previous default (linear schedule, T = 100, ε, ancestral on 100 uniform steps) on every
# toy measured, by most on the thin shapes (circles 2.25 → 0.98, checkerboard 1.85 → 1.32 W1/floor, seed 0).
RECOMMENDED: dict[str, Any] = {
    "data": {"source": "moons", "scaler": "minmax"},
    "diffusion": {"time": "continuous", "schedule": "edm", "T": 200, "parameterization": "edm", "sigma_data": 0.5,
                  "variance": "fixed", "zero_terminal_snr": False},
    "model": {"name": "mlp", "options": {"width": 128, "depth": 3}},
    "train": {
        "steps": 10000,
        "batch_size": 256,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "lr_schedule": "cosine",
        "warmup": 100,
        "ema": 0.995,
        "noise_sampling": "lognormal",
        "p_mean": -1.2,
        "p_std": 1.2,
    },
    "sample": {"sampler": "ddpm", "steps": None, "grid": "karras", "variance": None, "guard": "none", "options": {}},
}

# A slower recipe that goes further (≤ 2 min on 2 cores): the recommended one trained four times as long, with a
# slower EMA, sampled on twice as many steps.
BEST: dict[str, Any] = {
    **RECOMMENDED,
    "diffusion": {**RECOMMENDED["diffusion"], "T": 400},
    "train": {**RECOMMENDED["train"], "steps": 40000, "ema": 0.999, "warmup": 400},
}

# difflab's recipe for tables (issue 11), chosen from measurements on scikit-learn's tables (benchmarks/tables.py,
# docs/tables.md): quantile-normal numbers and few steps: on tables of a few hundred rows longer training (or a wider
# network) copies training rows (distance to closest record below the held-out rows'). Categories are diffused by
# multinomial diffusion beside the numbers (issue 16): on diamonds' three categorical columns the mean total
# variation to held-out rows fell from 0.074 (one-hot) to 0.013 (masked 0.015; floor 0.008), the numbers' mean KS
# from 0.054 to 0.020, and on Ecdat's Housing (six yes/no columns) 0.061 → 0.039 and 0.142 → 0.088 (two seeds).
TABLE: dict[str, Any] = {
    "data": {"scaler": "quantile", "encoding": "multinomial"},
    "diffusion": {"schedule": "linear", "T": 100, "parameterization": "eps"},
    "model": {"name": "mlp", "options": {"width": 128, "depth": 3}},
    "train": {
        "steps": 700,
        "batch_size": 256,
        "lr": 2e-3,
        "weight_decay": 1e-4,
        "lr_schedule": "cosine",
        "warmup": 100,
        "ema": 0.995,
    },
    "sample": {"sampler": "ddpm", "variance": "small"},
}

# One-step models trained from scratch (issue 15): a two-time network of the recommended recipe's size on the
# straight path, sampled in one call (`--steps K`: K jumps), trained for about the recommended recipe's CPU seconds:
# benchmarks/few_calls.py's calibration gave 4432 (moons) and 4573 (8gaussians) MeanFlow steps, 3352 and 5573 shortcut
# steps, for the 45 s the recommended recipe's 10 000 fast steps take (idle 2-core machine). MeanFlow (Geng et al.
# 2025) with the settings measured best on the toys (benchmarks/one_step.py): uniform times, the adaptive weight's
# p = 0.5, the derivative along the network's own velocity.
MEANFLOW: dict[str, Any] = {
    "data": RECOMMENDED["data"],
    "diffusion": {"time": "continuous", "schedule": "rectified", "T": 100, "parameterization": "velocity",
                  "variance": "fixed", "zero_terminal_snr": False},
    "model": {**RECOMMENDED["model"], "name": "jump-mlp"},
    "train": {  # the recommended recipe's optimizer, batch and EMA; its own objective and times
        **{k: v for k, v in RECOMMENDED["train"].items() if k not in ("noise_sampling", "p_mean", "p_std")},
        "steps": 4500,
        "objective": "meanflow",
        "noise_sampling": "uniform",
        "jump_share": 0.25,
        "loss_power": 0.5,
        "meanflow_tangent": "model",
    },
    "sample": {"sampler": "jumps", "steps": 1, "grid": "trailing", "variance": None, "guard": "none", "options": {}},
}

# Shortcut models (Frans et al. 2024) on the same network and path: self-consistency over steps 1, 1/2, ..., 2/128.
SHORTCUT: dict[str, Any] = {
    **MEANFLOW,
    "train": {**{k: v for k, v in MEANFLOW["train"].items() if k != "meanflow_tangent"}, "steps": 4500,
              "objective": "shortcut", "loss_power": 0.0, "shortcut_steps": 128},
}

# One training, few calls (issue 15, item 5): the measured best single-training recipe at 1-4 network calls.
# benchmarks/few_calls.py (docs/few_calls.md) trained every family for the default recipe's CPU seconds: MeanFlow
# with minibatch OT coupling drew W1 / floor 1.27 / 1.05 / 1.02 at 1 / 2 / 4 calls on moons and 1.75 / 1.66 / 1.61
# on 8gaussians, against 2.5 / 1.75 / 1.46 for shortcut models alone, 3.1 / 2.2 / 1.9 for MeanFlow alone and 4.3 /
# 1.05 / 0.99 for the straight path with OT (Euler or DPM-Solver++). Its step costs ~2.5x the recommended recipe's
# (the JVP and the batch's exact OT plan), so 1700 steps are the recommended recipe's CPU seconds. One call by
# default; `--steps K` takes K jumps.
ONESTEP: dict[str, Any] = {
    **MEANFLOW,
    "train": {**MEANFLOW["train"], "steps": 1700, "coupling": "ot"},
}

PRESETS: dict[str, dict[str, Any]] = {"seed": SEED, "recommended": RECOMMENDED, "best": BEST, "table": TABLE,
                                      "onestep": ONESTEP, "meanflow": MEANFLOW, "shortcut": SHORTCUT}
