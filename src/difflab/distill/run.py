"""Distil a trained run into a few-step student run directory: teacher run → checks → student → files.

Methods: progressive and consistency distillation, and reflow (:mod:`difflab.distill.reflow`: a straight-path
velocity student on the teacher's ODE pairs; its distill.json also keeps the straightness S of the teacher and of
each round).

The student's directory is an ordinary run (``difflab sample``, ``evaluate``, ``plot`` and ``report`` read it): the
teacher's data files and process, a config whose ``[sample]`` section is the student's own sampler (``ddim`` on the
grid of K steps it was trained on for progressive distillation, ``consistency`` for consistency distillation) and whose
parameterization is the student's, ``model.safetensors``, ``loss.csv``, and ``distill.json``: the teacher's path and
config, the method, the settings and the time spent. ``distill-checkpoint.safetensors`` (student, optimizer, RNG,
round and step; the round's teacher or the EMA target) is written every ``checkpoint_every`` steps and at the end of
every round, so ``resume=True`` continues an interrupted distillation to the same weights as an uninterrupted one.
Every input is checked before the first file is written.
"""

from __future__ import annotations

import copy
import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from difflab.assemble import build_process, is_oracle, network_shape
from difflab.compute import resolve_device
from difflab.config import RunConfig
from difflab.diffusion import Process, get_parameterization
from difflab.distill.consistency import Consistency
from difflab.distill.loop import LoopSettings, RoundLoop, loop_threads
from difflab.distill.progressive import Progressive, default_teacher_steps, levels, student_grid
from difflab.distill.reflow import Reflow
from difflab.distill.rows import network_rows
from difflab.distill.settings import CONSISTENCY_GRID, DEFAULT_PAIR_STEPS, DEVICES, DistillSettings, make_settings
from difflab.errors import ConfigError, DifflabError, RunDirError
from difflab.io import atomic_path, read_json, write_json
from difflab.lock import LOCK_FILE, writing
from difflab.models import build_model
from difflab.presets import RECOMMENDED
from difflab.rundir import FILES, Run, arch_meta, load_run, save_model, write_loss
from difflab.sampling.output import check_writable
from difflab.training.lanes import fused_or_module
from difflab.weights import load_weights, save_weights

DISTILL_FILE = FILES["distill"]
CHECKPOINT = "distill-checkpoint.safetensors"
COPIED = ("data", "train", "heldout")  # the teacher's files the student shares as they are
# Parameterizations a student keeps from its teacher; any other (ε, the score, the posterior mean) cannot give x̂_0
# where α_t ≈ 0, which a few-step sampler asks for at its first step (Salimans & Ho 2022, §4): the student predicts v.
KEEPS = ("x0", "v", "edm")
# What a reflow student is: a velocity model on the straight path (Liu et al. 2022), sampled by Euler's method
# (DDIM on this path) on the uniform grid.
REFLOW_DIFFUSION = {"time": "continuous", "schedule": "rectified", "schedule_options": {}, "betas": None,
                    "parameterization": "velocity", "variance": "fixed", "zero_terminal_snr": False}
REFLOW_SAMPLE = {"sampler": "ddim", "grid": "trailing"}


def teacher_steps_of(run: Run) -> int:
    """The teacher's own sampling steps: its config's, or T."""
    return run.config.sample.steps or run.diffusion.T


def check_teacher(run: Run, settings: DistillSettings) -> int:
    """The progressive teacher's steps N (or the teacher's steps, for consistency), after checking that ``run`` can
    teach ``settings``; a one-line error says why not."""
    name = run.config.model.name
    if settings.method == "reflow":  # any teacher with a deterministic sampler, an exact denoiser too
        if getattr(run, "condition", None) is not None:
            raise DifflabError(f"{run.path}: a conditional run (--condition) cannot be distilled yet")
        return settings.teacher_steps or DEFAULT_PAIR_STEPS
    if is_oracle(name):
        raise DifflabError(f"{run.path}: its model '{name}' is an exact denoiser (an oracle), not a trained network: "
                           "there is nothing to distill")
    if getattr(run, "condition", None) is not None:
        raise DifflabError(f"{run.path}: a conditional run (--condition) cannot be distilled yet")
    if getattr(run, "layout", None) is not None:
        raise DifflabError(f"{run.path}: its categorical columns are diffused by {run.layout.process} diffusion; "
                           "distillation is built for Gaussian runs only")
    if run.config.train.objective != "denoising":
        raise DifflabError(f"{run.path}: a one-step model (objective {run.config.train.objective}) samples in few calls "
                           "itself (sampler jumps, --steps K); it cannot be distilled")
    own, K = teacher_steps_of(run), settings.steps
    if K > own:
        raise ConfigError(f"--steps {K} is more than the teacher's own {own} steps; a student takes fewer")
    if settings.method == "consistency":
        return own
    limit = run.diffusion.T if run.diffusion.discrete else own
    n = settings.teacher_steps or default_teacher_steps(min(own, limit), K)
    if n > limit:
        raise ConfigError(f"--teacher-steps {n} is more than the teacher's T={limit} steps")
    levels(n, K)  # K a power of two, N = K·2^r
    return n


def student_config(teacher: Run, settings: DistillSettings) -> RunConfig:
    """The teacher's config with the student's parameterization, fixed variances and its own sampler."""
    d = teacher.config.diffusion
    if settings.method == "reflow":
        model = (teacher.config.model if teacher.config.model.name == "mlp" and not is_oracle(teacher.config.model.name)
                 else teacher.config.model.model_copy(update=RECOMMENDED["model"]))
        T = d.T if not teacher.diffusion.discrete else 100
        return teacher.config.model_copy(update={
            "model": model,
            "diffusion": d.model_copy(update={**REFLOW_DIFFUSION, "T": T}),
            "train": teacher.config.train.model_copy(update={"coupling": "none"}),
            "sample": teacher.config.sample.model_copy(update={**REFLOW_SAMPLE, "steps": settings.steps, "eta": 0.0,
                                                               "variance": None, "options": {}}),
        })
    if settings.method == "consistency":
        param, sample = "edm", {"sampler": "consistency", "grid": CONSISTENCY_GRID[teacher.diffusion.discrete]}
    else:
        param = d.parameterization if d.parameterization in KEEPS else "v"
        sample = {"sampler": "ddim", "grid": student_grid(teacher.diffusion)}
    return teacher.config.model_copy(update={
        "diffusion": d.model_copy(update={"parameterization": param, "variance": "fixed"}),
        "sample": teacher.config.sample.model_copy(update={**sample, "steps": settings.steps, "eta": 0.0, "variance": None,
                                                    "options": {}}),
    })


def student_process(teacher: Run, cfg: RunConfig) -> Process:
    """The student's process: the teacher's, or the straight path for reflow."""
    return build_process(cfg) if cfg.diffusion.parameterization == "velocity" and teacher.diffusion.path != "straight" \
        else teacher.diffusion


def is_straight_velocity(run: Run) -> bool:
    """A velocity model on the straight path (a reflow student starts from its weights)."""
    return (run.diffusion.path == "straight" and run.config.diffusion.parameterization == "velocity"
            and not is_oracle(run.config.model.name))


def student_network(teacher: Run, cfg: RunConfig, seed: int = 0) -> nn.Module:
    """The teacher's network with its weights, as the student starts (Salimans & Ho 2022; Song et al. 2023); a
    teacher with learned variances gives the rows of its output layer that predict the mean. A reflow student of a
    teacher that is not a straight-path velocity model starts from a fresh network (seeded by ``seed``)."""
    if cfg.diffusion.parameterization == "velocity" and not is_straight_velocity(teacher):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_model(cfg.model.name, teacher.dim, 0, **cfg.model.options)
    shape = network_shape(cfg, teacher.diffusion, teacher.dim)
    if shape["out_dim"] is None and teacher.config.diffusion.variance == "fixed":
        return copy.deepcopy(teacher.model)
    net = build_model(cfg.model.name, teacher.dim, shape["T"], out_dim=shape["out_dim"], **cfg.model.options)
    mine = net.state_dict()
    net.load_state_dict({k: v[: mine[k].shape[0]] if v.shape != mine[k].shape else v
                         for k, v in teacher.model.state_dict().items()})
    return net


def make_loop(teacher: Run, student: nn.Module, cfg: RunConfig, settings: DistillSettings, n_teacher: int,
              device: torch.device) -> RoundLoop:
    """The method's loop on the teacher's training rows (scaled), with the teacher's network as its teacher."""
    t_cfg = teacher.config.diffusion
    t_param = get_parameterization(t_cfg.parameterization, sigma_data=t_cfg.sigma_data)
    student = student.to(device)
    teacher_net = teacher.model.to(device).eval()
    teach = network_rows(fused_or_module(teacher_net, loop_threads(student, settings.batch_size) or 1),
                         teacher.diffusion, t_param, learned_variance=t_cfg.variance == "learned-range")
    s_param = get_parameterization(cfg.diffusion.parameterization, sigma_data=cfg.diffusion.sigma_data)
    x = torch.as_tensor(teacher.scaler.transform(teacher.train), dtype=torch.float32)
    loop_settings = LoopSettings(round_steps=settings.steps_per_round, batch_size=settings.batch_size, lr=settings.lr,
                                 seed=settings.seed, checkpoint_every=settings.checkpoint_every)
    if settings.method == "reflow":
        return Reflow(teacher.denoiser(), teacher.diffusion, student, student_process(teacher, cfg), s_param, x,
                      loop_settings, rounds=settings.rounds, pairs=settings.pairs, solver=settings.solver,
                      pair_steps=n_teacher, teacher_grid=teacher.config.sample.grid, student_grid=cfg.sample.grid)
    if settings.method == "progressive":
        return Progressive(teach, student, teacher.diffusion, s_param, x, loop_settings, steps=settings.steps,
                           teacher_steps=n_teacher)
    return Consistency(teach, student, teacher.diffusion, s_param, x, loop_settings, intervals=settings.intervals,
                       solver=settings.solver, ema=settings.ema)


def final_network(loop: RoundLoop) -> nn.Module:
    """The weights to sample with: the EMA target of consistency distillation, the last student otherwise."""
    return loop.target if isinstance(loop, Consistency) else loop.student


def check_out(out: Path, resume: bool) -> None:
    """A new or empty --out, or (``resume``) one that holds a distillation checkpoint."""
    if out.exists() and not out.is_dir():
        raise DifflabError(f"{out}: exists and is not a folder")
    if resume:
        if not (out / CHECKPOINT).exists() or not (out / DISTILL_FILE).exists():
            raise RunDirError(f"{out}: no {CHECKPOINT} to resume from")
        return
    if out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise DifflabError(f"{out}: folder is not empty; choose a new or empty --out (or --resume a distillation)")
    check_writable(out)


def saved_settings(out: Path) -> tuple[str, DistillSettings]:
    """(teacher path, settings) from an interrupted distillation's distill.json."""
    try:
        raw = read_json(out / DISTILL_FILE)
        return str(raw["teacher"]), DistillSettings.model_validate(raw["settings"])
    except (KeyError, TypeError, ValueError) as e:
        raise RunDirError(f"{out / DISTILL_FILE}: corrupt ({type(e).__name__})") from None


def settings_for(out: Path, values: dict[str, Any], *, resume: bool) -> DistillSettings:
    """The settings of ``values`` (None: the default); with ``resume``, those saved in ``out`` with any given value
    on top (a value that differs from the saved one is refused by :func:`distill_run`)."""
    if resume and (Path(out) / DISTILL_FILE).exists():
        _, saved = saved_settings(Path(out))
        return make_settings({**saved.model_dump(), **{k: v for k, v in values.items() if v is not None}})
    return make_settings(values)


def distill_run(teacher_dir: str | Path, out: str | Path, settings: DistillSettings, *, resume: bool = False,
                progress: bool = True, device: str = "cpu",
                on_round: Callable[[int, nn.Module], None] | None = None) -> Run:
    """Distil the run in ``teacher_dir`` into a student run directory ``out`` (see the module's docstring);
    ``resume``: continue the checkpoint in ``out`` (the same teacher and settings). ``on_round(steps, network)`` is
    called when a round's student is done (``steps``: the network calls it samples with)."""
    out = Path(out)
    if device not in DEVICES:
        raise ConfigError(f"device {device!r}: choose one of: {' | '.join(DEVICES)}")
    check_out(out, resume)
    with writing(out):  # one writer at a time (difflab.lock)
        check_out(out, resume)
        return _distill_locked(teacher_dir, out, settings, resume=resume, progress=progress, device=device,
                               on_round=on_round)


def _distill_locked(teacher_dir: str | Path, out: Path, settings: DistillSettings, *, resume: bool, progress: bool,
                    device: str, on_round: Callable[[int, nn.Module], None] | None) -> Run:
    teacher = load_run(teacher_dir)
    if resume:
        was, saved = saved_settings(out)
        if Path(was).resolve() != teacher.path.resolve() or saved != settings:
            raise ConfigError(f"{out}: was distilled from {was} with other settings; resume with the same teacher and "
                              "options")
    n_teacher = check_teacher(teacher, settings)
    cfg = student_config(teacher, settings)
    dev = resolve_device(device)
    with torch.random.fork_rng(devices=[]):
        loop = make_loop(teacher, student_network(teacher, cfg, settings.seed), cfg, settings, n_teacher, dev)
    if resume:
        tensors, meta = load_weights(out / CHECKPOINT)
        try:
            loop.load_state(tensors, meta)
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise RunDirError(f"{out / CHECKPOINT}: does not fit this distillation ({str(e).splitlines()[0][:100]})"
                              ) from None
    else:
        _write_files(teacher, out, cfg, settings, n_teacher)
    levels_done = _level_reporter(loop, settings, on_round)

    def checkpoint(lp: RoundLoop) -> None:
        save_weights(out / CHECKPOINT, lp.state_tensors(), lp.state_meta())
        levels_done(lp)

    start = time.perf_counter()
    seconds = loop.fit(progress=progress, on_checkpoint=checkpoint)
    if isinstance(loop, Reflow):
        loop.end()
    net = final_network(loop).cpu().eval()
    dim = teacher.dim
    meta = arch_meta(cfg, dim, network_shape(cfg, student_process(teacher, cfg), dim)["T"], teacher.columns)
    record = {"teacher": str(teacher.path.resolve()), "method": settings.method, "steps": settings.steps}
    save_model(out, net.state_dict(), {**meta, "step": loop.done_steps(), "seconds": seconds, "distill": record})
    write_loss(out / FILES["loss"], loop.losses)
    _write_record(teacher, out, settings, n_teacher, seconds=seconds, wall=time.perf_counter() - start,
                  extra=loop.record() if isinstance(loop, Reflow) else None)
    return load_run(out)


def _level_reporter(loop: RoundLoop, settings: DistillSettings,
                    on_round: Callable[[int, nn.Module], None] | None) -> Callable[[RoundLoop], None]:
    """Calls ``on_round`` once per finished round (a checkpoint at step 0 of the next round, or the end)."""
    reported = {loop.round}

    def fn(lp: RoundLoop) -> None:
        if on_round is None or lp.step != 0 or lp.round in reported:
            return
        reported.add(lp.round)
        if isinstance(lp, Progressive):
            on_round(lp.levels[lp.round], lp.student)
        else:
            on_round(settings.steps, final_network(lp))

    return fn


def _write_files(teacher: Run, out: Path, cfg: RunConfig, settings: DistillSettings, n_teacher: int) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DifflabError(f"{out}: cannot create the run directory ({e.strerror})") from None
    for key in COPIED:
        src = teacher.path / FILES[key]
        if src.exists():
            with atomic_path(out / FILES[key]) as tmp:
                shutil.copyfile(src, tmp)
    write_json(out / FILES["schedule"], student_process(teacher, cfg).to_dict())
    write_json(out / FILES["config"], cfg.model_dump(mode="json"))
    _write_record(teacher, out, settings, n_teacher)


def _write_record(teacher: Run, out: Path, settings: DistillSettings, n_teacher: int,
                  extra: dict[str, Any] | None = None, **times: float) -> None:
    """distill.json: where the student comes from and how it was made (``extra``: what the method adds)."""
    record: dict[str, Any] = {
        "teacher": str(teacher.path.resolve()),
        "method": settings.method,
        "steps": settings.steps,
        "teacher_steps": n_teacher,
        "settings": settings.model_dump(mode="json"),
        "teacher_config": teacher.config.model_dump(mode="json"),
        "teacher_seconds": teacher.seconds if math.isfinite(teacher.seconds) else None,
        **({"seconds": times["seconds"], "wall_seconds": times["wall"]} if times else {}),
        **(extra or {}),
    }
    write_json(out / DISTILL_FILE, record)
