"""The families of benchmarks/few_calls.py: how each trains (and distils) its run directories for one toy and seed,
and which (sampler, grid, steps) it may sample with for a budget of c network calls.

A family is :class:`Family`: ``build(ctx)`` makes its runs under ``ctx.folder`` (``ctx.budget``: the CPU seconds the
default recipe spent training on this toy and seed, which single-training families match; ``ctx.built(name)``: another
family's runs, e.g. a teacher) and returns :class:`Built`; ``candidates(built, calls)`` lists (run key, sampling
options) whose network calls are at most ``calls``. Adding a family is one :func:`register` call (the one-step
families of issue 15, item 4 go here too).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difflab.config import resolve_config
from difflab.distill import distill_run, make_settings
from difflab.io import read_json
from difflab.pipeline import train_run
from difflab.rundir import load_run
from difflab.sampling.budgets import BUDGETS, calls_for_steps, steps_for_calls

Sampling = tuple[str, dict[str, Any]]  # (key of the run in Built.runs, sample_run options)


@dataclass
class Built:
    """A family's runs for one toy and seed, and what they cost (CPU seconds of this process)."""

    runs: dict[str, str]
    train_cpu_s: float
    distill_cpu_s: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    toy: str
    seed: int
    folder: Path
    budget: float | None  # CPU seconds of the default recipe's training here (None while it is being measured)
    built: Callable[[str], Built]


@dataclass
class Family:
    name: str
    build: Callable[[Context], Built]
    candidates: Callable[[Built, int], list[Sampling]]
    single: bool  # one training, no distillation: the targets apply
    about: str


FAMILIES: dict[str, Family] = {}


def register(name: str, build: Callable[[Context], Built], candidates: Callable[[Built, int], list[Sampling]], *,
             single: bool, about: str) -> None:
    FAMILIES[name] = Family(name, build, candidates, single, about)


def fits(sampler: str, steps: int, calls: int) -> bool:
    return calls_for_steps(sampler, steps) <= calls


def pairs(run: str, calls: int, choices: list[tuple[str, str]]) -> list[Sampling]:
    """Each (sampler, grid) with as many jumps as ``calls`` buys."""
    out = []
    for sampler, grid in choices:
        steps = steps_for_calls(sampler, calls)
        if fits(sampler, steps, calls):
            out.append((run, {"sampler": sampler, "grid": grid, "steps": steps}))
    return out


def timed_train(overrides: dict[str, Any], out: Path, preset: str = "recommended") -> tuple[str, float]:
    """Train ``preset`` with ``overrides`` into ``out`` (kept if already there); its CPU seconds."""
    if (out / "model.safetensors").exists():
        return str(out), float(read_json(out / "cpu.json")["cpu_s"])
    cfg = resolve_config(preset, overrides=overrides)
    start = time.process_time()
    train_run(cfg, out, progress=False)
    cpu = time.process_time() - start
    (out / "cpu.json").write_text(f'{{"cpu_s": {cpu}}}')
    return str(out), cpu


def data(ctx: Context) -> dict[str, Any]:
    return {"data": {"source": ctx.toy}}


# --- the default recipe (EDM) and its budgets ------------------------------------------------------------------
def build_edm(ctx: Context) -> Built:
    run, cpu = timed_train({**data(ctx), "train": {"seed": ctx.seed}}, ctx.folder / "run")
    return Built({"run": run}, cpu)


def edm_candidates(built: Built, calls: int) -> list[Sampling]:
    """The measured few-step pairs (sampling/budgets.py) of the largest budget ≤ calls; at 100 calls also the
    recipe's own ancestral sampler and Heun (EDM's)."""
    table = BUDGETS[max(b for b in BUDGETS if b <= calls)]
    out = pairs("run", calls, [(c.sampler, c.grid) for c in table])
    if calls >= 100:
        out += pairs("run", calls, [("ddpm", "karras"), ("heun", "karras"), ("dpm++", "logsnr")])
    return out


register("edm", build_edm, edm_candidates, single=True,
         about="difflab's default recipe (EDM, `--preset recommended`), sampled with the few-step budgets")


# --- the straight path -------------------------------------------------------------------------------------------
STRAIGHT_CHOICES = [("ddim", "trailing"), ("dpm++", "trailing"), ("dpm++", "logsnr"), ("heun", "trailing")]
CALIBRATION = (100, 400)  # steps of the two timed runs that give a family's CPU seconds per step and overhead


def straight_overrides(noise: str, coupling: str) -> dict[str, Any]:
    return {"diffusion": {"schedule": "rectified", "parameterization": "velocity"},
            "train": {"noise_sampling": noise, "coupling": coupling},
            "sample": {"sampler": "ddim", "grid": "trailing"}}


def steps_for_budget(over: dict[str, Any], folder: Path, budget: float, preset: str = "recommended") -> int:
    """Optimizer steps of ``preset`` with ``over`` whose training costs ``budget`` CPU seconds in all: the CPU seconds
    per step and the fixed overhead (data, model, files) from two timed runs of CALIBRATION steps."""
    cpu = [timed_train({**over, "train": {**over["train"], "steps": n, "warmup": 0}}, folder / f"calibration-{n}",
                       preset)[1] for n in CALIBRATION]
    per_step = max((cpu[1] - cpu[0]) / (CALIBRATION[1] - CALIBRATION[0]), 1e-6)
    overhead = max(cpu[0] - CALIBRATION[0] * per_step, 0.0)
    return max(CALIBRATION[1], int((budget - overhead) / per_step))


def straight_family(noise: str, coupling: str) -> Callable[[Context], Built]:
    def build(ctx: Context) -> Built:
        over = {**straight_overrides(noise, coupling), **data(ctx)}
        over["train"] = {**over["train"], "seed": ctx.seed}
        steps = steps_for_budget(over, ctx.folder, ctx.budget or 0.0)
        run, cpu = timed_train({**over, "train": {**over["train"], "steps": steps}}, ctx.folder / "run")
        return Built({"run": run}, cpu, info={"steps": steps})

    return build


def straight_candidates(built: Built, calls: int) -> list[Sampling]:
    return pairs("run", calls, STRAIGHT_CHOICES)


for _noise in ("logit-normal", "uniform"):
    for _coupling in ("none", "ot"):
        register(f"rectified{'+ot' if _coupling == 'ot' else ''} ({_noise})", straight_family(_noise, _coupling),
                 straight_candidates, single=True,
                 about=f"straight path, velocity, {_noise} time{', minibatch OT coupling' if _coupling == 'ot' else ''}"
                       ", trained for the default recipe's CPU seconds")

REFLOW_TEACHER = "rectified (logit-normal)"


# --- one-step models trained from scratch (issue 15, item 4) ---------------------------------------------------
def one_step_family(preset: str, coupling: str = "none") -> Callable[[Context], Built]:
    """``--preset meanflow`` or ``shortcut`` on the toy (with ``coupling``), for the default recipe's CPU seconds (at
    most its own steps), sampled with K jumps for K calls."""

    def build(ctx: Context) -> Built:
        over = {**data(ctx), "train": {"seed": ctx.seed, "coupling": coupling}}
        own = resolve_config(preset, overrides=over).train.steps
        steps = min(own, steps_for_budget(over, ctx.folder, ctx.budget or 0.0, preset))
        run, cpu = timed_train({**over, "train": {**over["train"], "steps": steps}}, ctx.folder / "run", preset)
        return Built({"run": run}, cpu, info={"steps": steps})

    return build


def jumps_candidates(built: Built, calls: int) -> list[Sampling]:
    return [("run", {"sampler": "jumps", "grid": "trailing", "steps": calls})]


for _preset, _paper in (("meanflow", "MeanFlow, Geng et al. 2025"), ("shortcut", "shortcut model, Frans et al. 2024")):
    for _coupling in ("none", "ot"):
        register(_preset + ("+ot" if _coupling == "ot" else ""), one_step_family(_preset, _coupling),
                 jumps_candidates, single=True,
                 about=f"`--preset {_preset}` ({_paper}){' with minibatch OT coupling' if _coupling == 'ot' else ''}: "
                       "a two-time network trained from scratch for at most the default recipe's CPU seconds, K jumps "
                       "for K calls")


# --- reflow -----------------------------------------------------------------------------------------------------
def reflow_family(rounds: int) -> Callable[[Context], Built]:
    def build(ctx: Context) -> Built:
        teacher = ctx.built(REFLOW_TEACHER)
        out = ctx.folder / "student"
        if not (out / "model.safetensors").exists():
            distill_run(teacher.runs["run"], out, make_settings({"method": "reflow", "rounds": rounds, "steps": 1,
                                                                 "seed": ctx.seed}), progress=False)
        record = read_json(out / "distill.json")
        return Built({"run": str(out)}, teacher.train_cpu_s, float(record["seconds"]),
                     info={"straightness": record["straightness"], "pair_error": record["pairs"]["rms_error"]})

    return build


for _rounds in (1, 2):
    register(f"reflow {_rounds}", reflow_family(_rounds), straight_candidates, single=False,
             about=f"{_rounds}-rectified flow of the {REFLOW_TEACHER} run (`difflab distill --method reflow "
                   f"--rounds {_rounds}`)")


# --- distillation of the default recipe ---------------------------------------------------------------------------
PD_STEPS = (1, 2, 4)


def build_progressive(ctx: Context) -> Built:
    teacher = ctx.built("edm")
    runs, cpu = {}, 0.0
    for k in PD_STEPS:
        out = ctx.folder / f"student-{k}"
        if not (out / "model.safetensors").exists():
            distill_run(teacher.runs["run"], out, make_settings({"method": "progressive", "steps": k, "seed": ctx.seed}),
                        progress=False)
        runs[str(k)] = str(out)
        cpu = max(cpu, float(read_json(out / "distill.json")["seconds"]))  # the longest chain (to 1 step)
    return Built(runs, teacher.train_cpu_s, cpu)


def progressive_candidates(built: Built, calls: int) -> list[Sampling]:
    k = max(s for s in PD_STEPS if s <= calls)
    return [(str(k), {})]


def build_consistency(ctx: Context) -> Built:
    teacher = ctx.built("edm")
    out = ctx.folder / "student"
    if not (out / "model.safetensors").exists():
        distill_run(teacher.runs["run"], out, make_settings({"method": "consistency", "steps": 1, "seed": ctx.seed}),
                    progress=False)
    return Built({"run": str(out)}, teacher.train_cpu_s, float(read_json(out / "distill.json")["seconds"]))


def consistency_candidates(built: Built, calls: int) -> list[Sampling]:
    return [("run", {"steps": calls})]


register("progressive", build_progressive, progressive_candidates, single=False,
         about="progressive distillation of the edm run (students of 1, 2, 4 steps; the largest ≤ the calls)")
register("consistency", build_consistency, consistency_candidates, single=False,
         about="consistency distillation of the edm run, multistep consistency sampling")


def loaded(path: str) -> Any:
    return load_run(path)
