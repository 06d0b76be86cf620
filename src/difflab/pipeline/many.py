"""Many runs trained as one batched computation (:mod:`difflab.training.batched`, :mod:`difflab.training.stacked`),
each written to its own run directory exactly as :func:`difflab.pipeline.train_run` writes it."""

from __future__ import annotations

import contextlib
from collections.abc import Hashable
from pathlib import Path

import torch

from difflab.assemble import build_process, check_config, initial_network, is_oracle, network_shape
from difflab.compute import default_threads, warn_fallback
from difflab.config import RunConfig
from difflab.data.prepare import prepare_data
from difflab.diffusion import Process
from difflab.errors import ConfigError, DataError, DifflabError
from difflab.lock import writing
from difflab.pipeline.single import initial_model, train_run, with_threads
from difflab.pipeline.single import make_trainer as make_run_trainer
from difflab.rundir import (
    FILES,
    Run,
    arch_meta,
    check_out,
    save_model,
    write_loss,
    write_run_files,
)
from difflab.training.batched import make_trainer
from difflab.training.members import MemberTrainers
from difflab.training.stacked import StackedTrainer
from difflab.weights import save_weights


def runs_as_members(cfg: RunConfig) -> bool:
    """True where :func:`train_many` trains a config as a member of its own (:class:`~difflab.training.members.
    MemberTrainers`: the residual MLP on the CPU, its fast step), which runs every process and parameterization."""
    t = cfg.train
    on_cpu = t.device == "cpu" or (t.device == "auto" and not torch.cuda.is_available())
    return cfg.model.name == "mlp" and on_cpu


def batch_key(cfg: RunConfig) -> Hashable | None:
    """A key equal for configs that :func:`train_many` can train together; None for models that are not trained
    (the oracles), for class labels, and for what the stacked trainers do not run (continuous time, learned
    variances, parameterizations other than eps, x0, v) unless the config runs as a member of its own
    (:func:`runs_as_members`). Conservative: configs with different keys might still fit together (e.g. two toys
    of equal size)."""
    d, t, p = cfg.data, cfg.train, cfg.diffusion
    if is_oracle(cfg.model.name) or d.condition is not None or d.encoding in ("multinomial", "masked") \
            or t.coupling != "none":
        return None
    members = runs_as_members(cfg)
    if not members and (p.time != "discrete" or p.variance != "fixed" or p.parameterization not in ("eps", "x0", "v")):
        return None
    data = (d.source, tuple(d.columns) if d.columns else None, d.n, d.holdout)
    model = (cfg.model.name, tuple(sorted((k, repr(v)) for k, v in cfg.model.options.items())))
    return (model, cfg.diffusion.T, t.steps, t.batch_size, t.device, t.threads, t.cuda_graph, t.ema is None, data,
            members)


def sweep_key(cfg: RunConfig) -> Hashable | None:
    """:func:`batch_key` where batching pays, which is what ``difflab sweep`` groups by; else None.

    It pays for the tutorial's network everywhere (its hand-written step) and for other networks on a GPU. On a CPU
    the residual MLP's cells run in the sweep's worker processes, each with its fast step: as fast as members in
    threads (:class:`~difflab.training.members.MemberTrainers`), and a process is not slowed by another's Python."""
    return None if cfg.model.name != "seed" and runs_as_members(cfg) else batch_key(cfg)


def train_many(
    cfgs: list[RunConfig], out_dirs: list[Path], *, progress: bool = False, checkpoint: bool = True
) -> list[Run]:
    """Train ``cfgs`` (all with one :func:`batch_key`) together and write each run directory as ``train_run`` does
    (config.json, data.json, schedule.json, train.npy, model.safetensors, loss.csv, and checkpoint.safetensors
    unless ``checkpoint`` is False). Returns the runs; each run's ``seconds`` is its share (wall seconds / M).

    If the batched trainer fails (a kernel, the memory or the driver; not a bad input), one warning says so and the
    members are trained one by one with :func:`train_run`, which writes the same files."""
    outs = [Path(o) for o in out_dirs]
    if not cfgs or len(cfgs) != len(outs):
        raise ConfigError(f"train_many: got {len(cfgs)} configs and {len(outs)} output folders; give one each")
    if len({o.resolve() for o in outs}) != len(outs):
        raise ConfigError("train_many: two members share an output folder")
    keys = [batch_key(c) for c in cfgs]
    if keys[0] is None or any(k != keys[0] for k in keys):
        raise ConfigError("train_many: the configs cannot be trained together (they need one trained model with the "
                          "same options, T, steps, batch size, device, EMA on/off and data shape)")
    for c, o in zip(cfgs, outs, strict=True):
        check_out(o, False)
        check_config(c)
    with contextlib.ExitStack() as locks:  # every member's folder, locked while it is written (difflab.lock)
        for o in outs:
            locks.enter_context(writing(o))
        for o in outs:
            check_out(o, False)
        runs = _train_locked(cfgs, outs, progress=progress, checkpoint=checkpoint)
    return runs if runs is not None else _one_by_one(cfgs, outs, progress=progress, checkpoint=checkpoint)


def _train_locked(cfgs: list[RunConfig], outs: list[Path], *, progress: bool, checkpoint: bool) -> list[Run] | None:
    """The batched training and the files of :func:`train_many`; None if the batched trainer failed (after one
    warning), for the caller to train the members one by one once their locks are released."""
    datas = [prepare_data(c.data) for c in cfgs]
    diffusions = [build_process(c) for c in cfgs]
    xs = [d.scaled for d in datas]
    if len({tuple(x.shape) for x in xs}) != 1:
        raise DataError(f"train_many: members' training data differ in shape ({sorted({tuple(x.shape) for x in xs})})")
    dim, M = xs[0].shape[1], len(cfgs)
    models = [initial_model(c, d, dim) for c, d in zip(cfgs, diffusions, strict=True)]
    names = [n for n, _ in models[0].named_parameters()]
    try:  # everything on the device, before the first file is written
        trainer = _batched_trainer(cfgs, models, diffusions, xs)
        share = trainer.fit(progress=progress) / M
        losses = trainer.loss_log.cpu()
        states = [trainer.member_state(m, names) for m in range(M)]
    except DifflabError:
        raise
    except Exception as e:  # a kernel, the memory or the driver: the same runs one by one still work
        warn_fallback(f"batched training of {M} runs", e, instead="training them one by one instead",
                      skip="Train them with train_run (or a sweep with one cell per group) to skip the attempt.")
        return None
    runs = []
    for m, (c, o, data, d) in enumerate(zip(cfgs, outs, datas, diffusions, strict=True)):
        c = with_threads(c, trainer.threads)
        o.mkdir(parents=True, exist_ok=True)
        write_run_files(o, c, data, d)
        meta = {**arch_meta(c, dim, network_shape(c, d, dim)["T"], data.columns), "step": trainer.step_count, "seconds": share, "batched": M}
        state = states[m]
        if checkpoint:
            save_weights(o / FILES["checkpoint"], state["checkpoint"], {**meta, "planned_steps": c.train.steps})
        save_model(o, state["eval"], meta)
        write_loss(o / FILES["loss"], losses[:, m].tolist())
        model = initial_network(c, d, dim)
        model.load_state_dict(state["eval"])
        runs.append(Run(o, c, data.columns, data.scaler, d, model.eval(), data.toy, data.train, data.heldout, share,
                        table=data.table))
    return runs


def _batched_trainer(cfgs: list[RunConfig], models: list[torch.nn.Module], diffusions: list[Process],
                     xs: list[torch.Tensor]) -> StackedTrainer | MemberTrainers:
    """Members of their own (:func:`runs_as_members`), each trained by the Trainer ``train_run`` builds (one
    thread: the members share the cores), or one stacked trainer for all."""
    if runs_as_members(cfgs[0]):
        one = [c.model_copy(update={"train": c.train.model_copy(update={"threads": 1})}) for c in cfgs]
        trainers = [make_run_trainer(c, m, d, x) for c, m, d, x in zip(one, models, diffusions, xs, strict=True)]
        n_params = sum(p.numel() for p in models[0].parameters())
        return MemberTrainers(trainers, lanes=default_threads(n_params, trainers[0].B))
    return make_trainer(models, diffusions, torch.stack(xs), [c.train for c in cfgs],
                        [c.diffusion.parameterization for c in cfgs])


def _one_by_one(cfgs: list[RunConfig], outs: list[Path], *, progress: bool, checkpoint: bool) -> list[Run]:
    """What :func:`train_many` falls back to: each member trained and written by :func:`train_run`."""
    runs = []
    for c, o in zip(cfgs, outs, strict=True):
        runs.append(train_run(c, o, progress=progress))
        if not checkpoint:
            (o / FILES["checkpoint"]).unlink(missing_ok=True)
    return runs
