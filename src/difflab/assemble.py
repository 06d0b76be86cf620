"""From a run's config to its pieces: the process, the network's shape, the denoiser — and the checks that refuse,
before any data is loaded or file written, a combination that cannot work, saying why.

Names that live in registries (schedule, model, sampler, grid, parameterization) are checked here rather than in
:mod:`difflab.config`, which stays import-light for the command line.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import nn

from difflab.compute import resolve_device
from difflab.config import RunConfig
from difflab.data.layout import Layout
from difflab.diffusion import (
    CONTINUOUS,
    ContinuousDiffusion,
    Denoiser,
    GaussianDiffusion,
    Process,
    get_parameterization,
    make_schedule,
)
from difflab.diffusion.jump_denoiser import JumpDenoiser
from difflab.diffusion.schedules import MAX_BETA, SCHEDULES
from difflab.errors import ConfigError, UnworkableConfig
from difflab.limits import check_run_config
from difflab.models import MODELS, build_model
from difflab.models.mixed import MixedNet
from difflab.sampling import GRIDS, JUMP_SAMPLERS, SAMPLERS, check_options
from difflab.training.coupling import COUPLINGS
from difflab.training.objectives import TWO_TIME

# Samplers that draw the reverse process's noise, and so assume the independent Gaussian forward process q(x_t | x_0)
# (ddim only with eta > 0): a coupled run learns the expected velocity of its coupled interpolant, whose
# probability-flow ODE the deterministic samplers solve, but not that process (training/coupling.py).
STOCHASTIC = ("ddpm", "dpm++-sde", "heun-sde")

# Parameterizations that recover x_0 from the network's output through ε alone: where ᾱ_T = 0 (zero terminal SNR)
# x_T carries no information about x_0, and x̂_0 = (x_T − σ ε̂)/α is 0/0.
NEEDS_SIGNAL = ("eps", "score")


def is_oracle(name: str) -> bool:
    """An exact denoiser built from the data (:mod:`difflab.models.oracles`), not a trained network."""
    return hasattr(MODELS.get(name), "from_data")


def build_process(cfg: RunConfig, *, warn: bool = True) -> Process:
    """The forward process of ``cfg.diffusion``: T discrete steps, or continuous time."""
    d = cfg.diffusion
    if d.time == "continuous":
        if d.schedule not in CONTINUOUS:
            what = (f"schedule '{d.schedule}' has no continuous-time form" if d.schedule in SCHEDULES
                    else f"unknown schedule '{d.schedule}'")
            raise ConfigError(f"{what}; with time = 'continuous' use one of: {', '.join(CONTINUOUS)} (with time = "
                              f"'discrete': {', '.join(SCHEDULES)})")
        return ContinuousDiffusion(d.schedule, d.T, zero_terminal_snr=d.zero_terminal_snr, **d.schedule_options)
    if d.schedule in CONTINUOUS and d.schedule not in SCHEDULES:
        raise ConfigError(f"schedule '{d.schedule}' has no discrete form: use time = 'continuous' (--time continuous)")
    return GaussianDiffusion(make_schedule(d.schedule, d.T, betas=d.betas, warn=warn, zero_snr=d.zero_terminal_snr,
                                           **d.schedule_options))


def network_shape(cfg: RunConfig, process: Process, dim: int) -> dict[str, Any]:
    """``build_model``'s T (0: a continuous-time network, which sees the noise level) and ``out_dim`` (2D with learned
    variances). An oracle keeps the process's T: its tables are indexed by step."""
    T = process.T if process.discrete or is_oracle(cfg.model.name) else 0
    out_dim = 2 * dim if cfg.diffusion.variance == "learned-range" else None
    return {"T": T, "out_dim": out_dim}


def initial_network(cfg: RunConfig, process: Process, dim: int, *, n_classes: int = 0,
                    layout: Layout | None = None) -> nn.Module:
    """The untrained network for D = ``dim`` generated features; ``n_classes`` K > 0: conditional on K classes;
    ``layout``: the features a discrete process diffuses, for a :class:`~difflab.models.mixed.MixedNet`."""
    shape = network_shape(cfg, process, dim)
    return build_network(cfg.model.name, dim, shape["T"], out_dim=shape["out_dim"], options=cfg.model.options,
                         layout=layout, n_classes=n_classes)


def build_network(name: str, dim: int, T: int, *, out_dim: int | None, options: dict[str, Any],
                  layout: Layout | None = None, n_classes: int = 0) -> nn.Module:
    """Network ``name`` for ``dim`` features (:func:`difflab.models.build_model`), or, with a ``layout``, the mixed
    network of a table with discretely diffused columns (the residual MLP with their states in and logits out)."""
    classes = {"n_classes": n_classes} if n_classes else {}
    if layout is None:
        return build_model(name, dim, T, out_dim=out_dim, **options, **classes)
    try:
        return MixedNet(len(layout.gaussian), layout.levels, masked=layout.process == "masked", T=T, **options,
                        **classes)
    except TypeError as e:
        raise ConfigError(f"model 'mlp' with {layout.process} columns: bad options {options} ({e})") from None


def check_mixed(cfg: RunConfig, layout: Layout) -> None:
    """Refuse what a table with discretely diffused columns cannot be trained with, before any file is written."""
    d, what = cfg.diffusion, f"--encoding {layout.process} (columns {', '.join(layout.names)})"
    if cfg.model.name != "mlp":
        raise UnworkableConfig(f"{what}: the categorical states and logits need the residual MLP: use --model mlp")
    if d.time != "discrete":
        raise UnworkableConfig(f"{what}: the discrete processes share the Gaussian process's steps and their ELBO "
                               "terms are per step: use --time discrete (the table preset)")
    if d.variance != "fixed":
        raise UnworkableConfig(f"{what}: learned variances are built for Gaussian runs only: use --variance fixed")


def denoiser(cfg: RunConfig, model: nn.Module, process: Process) -> Denoiser:
    """The network read through the run's parameterization; a two-time network (one-step models) answers jumps too,
    ``denoise(x_t, t, s)`` (:class:`~difflab.diffusion.jump_denoiser.JumpDenoiser`)."""
    d = cfg.diffusion
    if getattr(model, "two_time", False):
        return JumpDenoiser(model.eval(), process, d.parameterization)
    return Denoiser(model.eval(), process, d.parameterization, learned_variance=d.variance == "learned-range",
                    sigma_data=d.sigma_data)


def check_schedule(d: GaussianDiffusion) -> None:
    """Refuse a discrete schedule that clips β_t to MAX_BETA on two or more steps (Ho et al.'s linear schedule
    rescaled to T ≤ 20 asks for β up to 0.02·1000/T ≥ 1): each such step keeps √(1 − β) ≈ 3 % of the signal, so
    x_0 is all but erased several times over, and the reverse steps there divide the model's error by √α ≈ 0.03.
    One clipped step (the cosine schedule's last, or zero terminal SNR's β_T = 1) is how those schedules end."""
    betas = d.schedule.betas[1:]
    clipped = int(np.sum(betas >= MAX_BETA - 1e-12))
    if clipped >= 2:
        raise UnworkableConfig(f"schedule '{d.schedule.name}' with T={d.T} clips β_t to {MAX_BETA} on {clipped} of {d.T} "
                          "steps: each keeps √(1−β) ≈ 3 % of the signal, so x_0 is erased several times over and "
                          "no model can undo it; use a larger T (the linear schedule needs T ≥ 20) or another schedule")


def check_coupled_sampler(coupling: str, sampler: str, eta: float = 0.0) -> None:
    """Refuse an ancestral or SDE sampler (or DDIM with η > 0) for a run trained with a coupling other than none."""
    if coupling == "none" or (sampler not in STOCHASTIC and not (sampler == "ddim" and eta > 0)):
        return
    what = f"ddim with eta {eta:g}" if sampler == "ddim" else f"sampler '{sampler}'"
    raise UnworkableConfig(f"coupling '{coupling}': {what} draws from the independent Gaussian forward process, which a "
                           "coupled run does not learn; use a deterministic --sampler (ddim with eta 0, dpm++, heun, ode)")


def check_coupling(cfg: RunConfig) -> None:
    """The coupling's name, and the run's own sampler where the run is coupled."""
    c = cfg.train.coupling
    if c not in COUPLINGS:
        raise ConfigError(f"unknown coupling '{c}'; choose one of: {', '.join(COUPLINGS)}")
    if c == "none":
        return
    if is_oracle(cfg.model.name):
        raise UnworkableConfig(f"coupling '{c}': model '{cfg.model.name}' is an exact denoiser, it is not trained")
    if cfg.diffusion.variance == "learned-range":
        raise UnworkableConfig(f"coupling '{c}': learned variances are trained on the ELBO of the independent Gaussian "
                               "forward process, which a coupled run does not learn; use --variance fixed")
    check_coupled_sampler(c, cfg.sample.sampler, cfg.sample.eta)


def is_two_time(name: str) -> bool:
    """A network of a time and a jump (:mod:`difflab.models.jump_mlp`), the model of one-step objectives."""
    return bool(getattr(MODELS.get(name), "two_time", False))


def check_jumps(sampler: str, model: str) -> None:
    """Refuse a sampler of whole jumps (``jumps``) for a network that answers one time only."""
    if sampler in JUMP_SAMPLERS and not is_two_time(model):
        raise UnworkableConfig(f"sampler '{sampler}' asks the network for whole jumps t → s; model '{model}' answers one "
                               "time only: it needs a run trained with objective meanflow or shortcut (--model "
                               "jump-mlp)")


def check_objective(cfg: RunConfig, process: Process) -> None:
    """A one-step objective (meanflow, shortcut) needs a two-time network on the straight path, and a two-time
    network needs one of them."""
    d, m, objective = cfg.diffusion, cfg.model, cfg.train.objective
    if objective not in TWO_TIME:
        if is_two_time(m.name):
            raise UnworkableConfig(f"model '{m.name}' takes a jump as its second time: train it with objective meanflow "
                                   "or shortcut (--objective, or --preset meanflow)")
        return
    if not is_two_time(m.name):
        raise UnworkableConfig(f"objective '{objective}' trains an average velocity over jumps t → r: it needs the "
                               "two-time network, --model jump-mlp (or --preset meanflow)")
    if process.discrete or process.path != "straight" or d.parameterization != "velocity":
        raise UnworkableConfig(f"objective '{objective}' trains the straight path's average velocity: it needs "
                               "--time continuous --schedule rectified --parameterization velocity (or --preset "
                               "meanflow)")
    if cfg.train.noise_sampling == "lognormal":
        raise UnworkableConfig(f"objective '{objective}' draws times t in [0, 1]: noise_sampling must be uniform or "
                               "logit-normal, not lognormal (EDM's noise levels)")


def check_config(cfg: RunConfig) -> None:
    """Every name and combination, without loading data: a one-line ConfigError that says why, or nothing."""
    d, m, s = cfg.diffusion, cfg.model, cfg.sample
    check_run_config(cfg)  # sizes, before anything is built (difflab.limits)
    process = build_process(cfg, warn=False)
    if m.name not in MODELS:
        raise ConfigError(f"unknown model '{m.name}'; choose one of: {', '.join(MODELS)}")
    param = get_parameterization(d.parameterization, sigma_data=d.sigma_data)
    if not process.discrete:
        if m.name == "seed":
            raise UnworkableConfig("the tutorial's network ('seed') codes time as one-hot over T steps; continuous time "
                              "needs a network of the noise level: use --model mlp")
        if param.discrete_only:
            raise UnworkableConfig(f"parameterization '{param.name}' is defined per step t → t−1: it needs time = "
                              "'discrete'")
        if d.variance == "learned-range":
            raise UnworkableConfig("learned variances interpolate between the β and β̃ of one step: they need time = "
                              "'discrete'")
    check_objective(cfg, process)
    if cfg.data.condition is not None and (m.name == "seed" or is_oracle(m.name)):
        what = "the tutorial's network ('seed')" if m.name == "seed" else f"the exact denoiser '{m.name}'"
        raise UnworkableConfig(f"--condition {cfg.data.condition}: {what} takes no class label; a conditional run needs "
                          "--model mlp")
    if s.guidance and cfg.data.condition is None:
        raise UnworkableConfig(f"guidance {s.guidance:g}: classifier-free guidance needs a conditional run (train with "
                          "--condition COLUMN)")
    if process.discrete:
        check_schedule(process)
    if is_oracle(m.name) and d.variance != "fixed":
        # (any parameterization: the denoiser asks an oracle for E[ε | x_t] and E[x_0 | x_t] directly)
        raise UnworkableConfig(f"model '{m.name}' is an exact denoiser: it has no variances to learn; use --variance "
                               "fixed")
    if process.alpha_bar(process.t_max) == 0.0 and d.parameterization in NEEDS_SIGNAL:
        why = "zero terminal SNR makes" if d.zero_terminal_snr else f"schedule '{d.schedule}' ends at"
        raise UnworkableConfig(f"{why} ᾱ_T = 0, where '{d.parameterization}'-prediction cannot give x_0 (x_T holds "
                               "nothing of it; x̂_0 = (x_T − σ ε̂)/0): use --parameterization v, x0, edm or velocity "
                               "(Lin et al. 2023, §3.2)")
    if param.path is not None and process.path != param.path:
        raise UnworkableConfig(f"parameterization '{param.name}' predicts dx_t/dt of the {param.path} path x_t = (1 − t) "
                               "x_0 + t ε: it needs --schedule rectified (time = 'continuous')")
    if s.sampler not in SAMPLERS:
        raise ConfigError(f"unknown sampler '{s.sampler}'; choose one of: {', '.join(SAMPLERS)}")
    if s.grid not in GRIDS:
        raise ConfigError(f"unknown time grid '{s.grid}'; choose one of: {', '.join(GRIDS)}")
    check_options(s.sampler, s.options)
    check_jumps(s.sampler, m.name)
    if s.sampler == "ode" and process.alpha_bar(process.t_max) == 0.0:
        raise UnworkableConfig("sampler 'ode' starts the probability-flow ODE at σ = ∞ where ᾱ_T = 0 (zero terminal SNR); "
                          "use heun, dpm++ or ddim")
    if s.variance == "learned" and d.variance != "learned-range":
        raise UnworkableConfig("reverse variance 'learned' needs a model trained with variance = 'learned-range'")
    check_coupling(cfg)
    resolve_device(cfg.train.device)
