"""Train one config into a run directory: data → model → :class:`~difflab.training.trainer.Trainer` → files.

Everything that can be checked before training (names, the output folder, the data, the checkpoint's shape) is
checked before the first file is written, so a bad input leaves no run directory behind, or an existing one as it was.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import torch

from difflab.assemble import build_process, check_config, check_mixed, initial_network, is_oracle, network_shape
from difflab.compute import resolve_device
from difflab.config import RunConfig
from difflab.data.layout import Layout
from difflab.data.prepare import PreparedData, prepare_data
from difflab.diffusion import Process, get_parameterization
from difflab.diffusion.categorical import make_categorical
from difflab.errors import ConfigError, DifflabError, RunDirError
from difflab.io import write_json
from difflab.lock import writing
from difflab.models import MODELS
from difflab.rundir import (
    FILES,
    Run,
    arch_meta,
    check_out,
    save_model,
    write_loss,
    write_run_files,
)
from difflab.training.mixed import MixedObjective
from difflab.training.optim import lr_lambda
from difflab.training.trainer import Trainer
from difflab.weights import load_weights, save_weights


def initial_model(cfg: RunConfig, process: Process, dim: int, *, n_classes: int = 0,
                  layout: Layout | None = None) -> torch.nn.Module:
    """The network a run starts from (conditional on ``n_classes`` classes when > 0; mixed for a ``layout``): built
    under ``torch.manual_seed(cfg.train.seed)``, the global RNG left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return initial_network(cfg, process, dim, n_classes=n_classes, layout=layout)


def make_trainer(cfg: RunConfig, model: torch.nn.Module, process: Process, x: torch.Tensor, *,
                 labels: torch.Tensor | None = None, n_classes: int = 0, layout: Layout | None = None) -> Trainer:
    """The trainer of ``cfg`` for ``model`` on the scaled rows ``x`` (with their class codes ``labels`` for a
    conditional run; with the discrete processes' loss for a ``layout``)."""
    d = cfg.diffusion
    param = get_parameterization(d.parameterization, sigma_data=d.sigma_data)
    objective = None
    if layout is not None:
        objective = MixedObjective(process, make_categorical(layout.process, process), layout, param, cfg.train,
                                   resolve_device(cfg.train.device))
    return Trainer(model, process, x, cfg.train, parameterization=param,
                   learned_variance=d.variance == "learned-range", labels=labels, n_classes=n_classes,
                   objective=objective)


def with_threads(cfg: RunConfig, threads: int | None) -> RunConfig:
    """``cfg`` with the thread count its run used (``train.threads``, when the config left it to the rule), so that
    config.json trains the same model again on another machine (issue 17)."""
    if cfg.train.threads is not None or threads is None:
        return cfg
    return cfg.model_copy(update={"train": cfg.train.model_copy(update={"threads": threads})})


def check_checkpoint(out: Path, saved: Any, meta: dict[str, Any], cfg: RunConfig) -> int:
    """The checkpoint's step, after checking that it was made by this network on data of this width."""
    if not isinstance(saved, dict) or not isinstance(saved.get("step"), int):
        raise RunDirError(f"{out}: {FILES['checkpoint']} has no step count; it is not a difflab checkpoint")
    if saved.get("dim") != meta["dim"]:
        raise RunDirError(f"{out}: the checkpoint was trained on D={saved.get('dim')} columns, the data has "
                          f"D={meta['dim']} ({cfg.data.source})")
    if saved.get("classes", 0) != meta.get("classes", 0):
        raise RunDirError(f"{out}: the checkpoint's network has {saved.get('classes', 0)} classes, the config's "
                          f"{meta.get('classes', 0)} (--condition {cfg.data.condition}); resume with the run's own "
                          "settings")
    for key in ("model", "T", "options", "parameterization", "time", "variance"):
        if saved.get(key, meta[key] if key in ("time", "variance") else None) != meta[key]:
            raise RunDirError(f"{out}: the checkpoint's {key} is {saved.get(key)!r}, the config's {meta[key]!r}; "
                              "resume with the run's own settings")
    if saved["step"] > cfg.train.steps:
        raise ConfigError(f"--steps {cfg.train.steps} is less than the {saved['step']} steps {out} already has; "
                          "give --steps at least that to resume")
    planned = saved.get("planned_steps", saved["step"])
    if isinstance(planned, int) and planned != cfg.train.steps:
        # A learning rate that depends on the total (cosine after the warm-up) took other values so far than
        # it would have on the way to the new total.
        before, now = lr_lambda(cfg.train.model_copy(update={"steps": planned})), lr_lambda(cfg.train)
        if any(before(i) != now(i) for i in range(saved["step"])):
            warnings.warn(f"{out}: the {cfg.train.lr_schedule} learning-rate schedule was planned for {planned} "
                          f"steps; continuing it on the curve for {cfg.train.steps} steps is not the same as "
                          "training that long straight", stacklevel=3)
    return saved["step"]


def _oracle_run(cfg: RunConfig, out: Path, data: PreparedData, diffusion: Process) -> Run:
    """Write a run whose model is an exact denoiser computed from the data; loss.csv holds its one measured loss."""
    model = MODELS[cfg.model.name].from_data(data, diffusion)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"options": model.options})})
    out.mkdir(parents=True, exist_ok=True)
    write_run_files(out, cfg, data, diffusion)
    meta = arch_meta(cfg, len(data.columns), diffusion.T, data.columns)
    save_model(out, model.state_dict(), {**meta, "step": 0, "seconds": 0.0})
    write_loss(out / FILES["loss"], [model.denoising_loss(data.scaled, seed=cfg.train.seed)])
    return Run(out, cfg, data.columns, data.scaler, diffusion, model.eval(), data.toy, data.train, data.heldout, 0.0,
               table=data.table)


def train_run(cfg: RunConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
              data: PreparedData | None = None) -> Run:
    """Train ``cfg`` into the run directory ``out`` (``resume``: continue the checkpoint there to cfg.train.steps).
    ``data``: rows already prepared (e.g. from a DataFrame in memory) instead of loading ``cfg.data.source``.

    Continuing a run gives the same weights as training to the same step count straight, as long as the learning
    rate does not depend on the total (constant schedule, or a warm-up not yet finished). The run directory is
    locked while it is written (:func:`difflab.lock.writing`): a second writer, or a reader, is refused in one line.
    """
    out = Path(out)
    check_out(out, resume)  # before the folder is made: an --out that can never be a run leaves nothing
    with writing(out):
        return _train_locked(cfg, out, resume=resume, progress=progress, data=data)


def _train_locked(cfg: RunConfig, out: Path, *, resume: bool, progress: bool, data: PreparedData | None) -> Run:
    check_out(out, resume)  # again, under the lock: another process may have finished a run here meanwhile
    check_config(cfg)
    data = prepare_data(cfg.data) if data is None else data
    diffusion = build_process(cfg)
    dim, classes, layout = data.model_dim, data.condition.n_classes if data.condition else 0, data.layout
    if layout is not None:
        check_mixed(cfg, layout)
    if is_oracle(cfg.model.name):  # an exact denoiser (difflab.models.oracles): nothing to train
        return _oracle_run(cfg, out, data, diffusion)
    meta = arch_meta(cfg, dim, network_shape(cfg, diffusion, dim)["T"], data.columns, classes=classes)
    if resume:
        tensors, saved = load_weights(out / FILES["checkpoint"])
        step = check_checkpoint(out, saved, meta, cfg)
    selector = None
    if cfg.train.select == "heldout":
        # on use: the held-out scores need difflab.evaluation (scipy, sklearn: ~1 s of every `difflab train`)
        from difflab.pipeline.select import HeldoutSelector, every

        selector = HeldoutSelector(cfg, data, diffusion, out)
    model = initial_model(cfg, diffusion, dim, n_classes=classes, layout=layout)
    cadence = cfg if selector is None else cfg.model_copy(update={"train": cfg.train.model_copy(
        update={"checkpoint_every": min(cfg.train.checkpoint_every, every(cfg.train.steps))})})
    trainer = make_trainer(cadence, model, diffusion, data.model_input, labels=data.labels, n_classes=classes,
                           layout=layout)
    cfg = with_threads(cfg, trainer.threads)
    earlier = 0.0
    if resume:
        try:
            trainer.load_state_tensors(tensors, step)
        except (KeyError, RuntimeError, ValueError) as e:
            raise RunDirError(f"{out}: checkpoint does not fit the model ({str(e).splitlines()[0][:100]})") from None
        earlier = float(saved.get("seconds", 0.0))
    else:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise DifflabError(f"{out}: cannot create the run directory ({e.strerror})") from None
    write_run_files(out, cfg, data, diffusion)

    def checkpoint(tr: Trainer) -> None:
        elapsed = earlier + time.perf_counter() - start
        save_weights(out / FILES["checkpoint"], tr.state_tensors(),
                     {**meta, "step": tr.step_count, "planned_steps": cfg.train.steps, "seconds": elapsed})
        if selector is not None:
            selector.consider(tr.step_count, tr.eval_model())

    start = time.perf_counter()
    seconds = earlier + trainer.fit(progress=progress, on_checkpoint=checkpoint)
    eval_model, kept = trainer.eval_model().cpu().eval(), trainer.step_count
    if selector is not None:  # the weights of the step chosen from the held-out rows
        chosen = selector.pick()
        eval_model.load_state_dict(chosen.state)
        kept = chosen.step
        write_json(out / FILES["select"], selector.report(chosen))
    save_model(out, eval_model.state_dict(), {**meta, "step": kept, "seconds": seconds})
    write_loss(out / FILES["loss"], trainer.losses())
    return Run(out, cfg, data.columns, data.scaler, diffusion, eval_model, data.toy, data.train, data.heldout, seconds,
               table=data.table, condition=data.condition)
