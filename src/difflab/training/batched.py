"""Many models at once: the tutorial's network's hand-written batched step, and :func:`train_many`, which trains
a sweep's compatible cells together and writes each one's run directory.

:class:`difflab.training.stacked.StackedTrainer` trains M networks of any architecture with stacked parameters
(``torch.func``); :class:`BatchedSeedTrainer` is the same trainer with the tutorial's network's forward and backward
written out (``difflab.models.batched``), which on a CPU runs the members on threads of their own.
"""

from __future__ import annotations

from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from torch import Tensor

from difflab.compute import cpu_threads
from difflab.config import RunConfig
from difflab.errors import ConfigError, DataError
from difflab.io import write_json
from difflab.models import build_model
from difflab.models.batched import StackedSeedMLP, is_plain_seed
from difflab.models.oracles import ORACLES
from difflab.run import (
    FILES,
    Run,
    _arch,
    _check_out,
    _save_data,
    _write_loss,
    build_diffusion,
    check_names,
    prepare_data,
)
from difflab.training.checkpoint import save_weights
from difflab.training.stacked import StackedTrainer


def batch_key(cfg: RunConfig) -> Hashable | None:
    """A key equal for configs that :func:`train_many` can train together; None for models that are not trained
    (the oracles). Conservative: configs with different keys might still fit together (e.g. two toys of equal
    size)."""
    d, t = cfg.data, cfg.train
    if cfg.model.name in ORACLES:
        return None
    data = (d.source, tuple(d.columns) if d.columns else None, d.n, d.holdout)
    model = (cfg.model.name, tuple(sorted((k, repr(v)) for k, v in cfg.model.options.items())))
    return (model, cfg.diffusion.T, t.steps, t.batch_size, t.device, t.threads, t.cuda_graph, t.ema is None, data)


def sweep_key(cfg: RunConfig) -> Hashable | None:
    """:func:`batch_key` where batching pays, which is what ``difflab sweep`` groups by; else None.

    It pays for the tutorial's network everywhere (its hand-written step) and for other networks on a GPU. On a
    CPU torch.func's batched step (vmapped matrix products, a decomposed LayerNorm backward) ran slower than runs in
    turn below ~16 members (benchmarks/RESULTS.md), so there those cells run in parallel processes instead."""
    t = cfg.train
    on_cpu = t.device == "cpu" or (t.device == "auto" and not torch.cuda.is_available())
    return None if cfg.model.name != "seed" and on_cpu else batch_key(cfg)


class BatchedSeedTrainer(StackedTrainer):
    """M tutorial networks (``SeedMLP``) trained with stacked parameters and the hand-written step of
    :class:`difflab.models.batched.StackedSeedMLP` (no autograd); the arguments are :class:`StackedTrainer`'s."""

    def _setup_compute(self, models: list[torch.nn.Module]) -> None:
        if not all(is_plain_seed(m) for m in models):
            raise ConfigError("BatchedSeedTrainer: every member must be the tutorial's network ('seed')")
        self._pool = None
        if self.device.type == "cpu":
            self._cpu_nets(min(self.threads or 1, self.M))
        else:
            self.nets = [StackedSeedMLP(self.params, self.grads, self.B)]

    def _cpu_nets(self, lanes: int) -> None:
        """On the CPU: one network per model, run model after model so that each one's buffers stay in cache
        (see ``difflab.models.batched._addmm``), in ``lanes`` groups computed at the same time on threads of their
        own (members are independent: no hand-off inside a step), each with one torch thread."""
        self.nets, self._lanes = [], [list(range(i, self.M, lanes)) for i in range(lanes)]
        for lane in self._lanes:
            first = None
            for m in lane:
                net = StackedSeedMLP([p[m : m + 1] for p in self.params], [g[m : m + 1] for g in self.grads], self.B,
                                     share=first)
                first = first or net
                self.nets.append(net)
        self._net_of = {m: net for m, net in zip([m for lane in self._lanes for m in lane], self.nets, strict=True)}
        if lanes > 1:
            self.threads = 1
            self._pool = ThreadPoolExecutor(max_workers=lanes - 1, thread_name_prefix="difflab-lane")

    def compute_grads(self, x0: Tensor, t: Tensor, eps: Tensor) -> None:
        """Loss per member into :attr:`loss` and its gradients into :attr:`grads` for the given draws."""
        a, s, target = self.coefficients(x0, t, eps)
        if self.device.type != "cpu":
            self._members(self.nets[0], slice(None), x0, t, eps, target)
            return

        def lane(members: list[int]) -> None:
            for m in members:
                self._members(self._net_of[m], slice(m, m + 1), x0, t, eps, target)

        if self._pool is None:
            lane(list(range(self.M)))
            return
        with cpu_threads(1):
            others = [self._pool.submit(lane, ms) for ms in self._lanes[1:]]
            lane(self._lanes[0])
            for f in others:
                f.result()

    def _members(self, net: StackedSeedMLP, rows: slice, x0: Tensor, t: Tensor, eps: Tensor, target: Tensor) -> None:
        a, s = self._coef[0], self._coef[1]
        torch.mul(x0[rows], a[rows], out=net.xt)
        net.xt.addcmul_(s[rows], eps[rows])
        net.forward(t[rows])
        net.backward(target[rows], self.loss[rows])


def make_trainer(models: list[torch.nn.Module], *args, **kwargs) -> StackedTrainer:  # noqa: ANN002, ANN003
    """The batched trainer for ``models``: the hand-written one for the tutorial's network, else torch.func's."""
    cls = BatchedSeedTrainer if all(is_plain_seed(m) for m in models) else StackedTrainer
    return cls(models, *args, **kwargs)


def initial_model(cfg: RunConfig, dim: int, T: int) -> torch.nn.Module:
    """The network ``train_run`` starts from: built under ``torch.manual_seed(cfg.train.seed)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return build_model(cfg.model.name, dim, T, **cfg.model.options)


def train_many(
    cfgs: list[RunConfig], out_dirs: list[Path], *, progress: bool = False, checkpoint: bool = True
) -> list[Run]:
    """Train ``cfgs`` (all with one :func:`batch_key`) together and write each run directory as ``train_run`` does
    (config.json, data.json, schedule.json, train.npy, model.safetensors, loss.csv, and checkpoint.safetensors
    unless ``checkpoint`` is False). Returns the runs; each run's ``seconds`` is its share (wall seconds / M)."""
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
        _check_out(o, False)
        check_names(c)
    datas = [prepare_data(c) for c in cfgs]
    diffusions = [build_diffusion(c) for c in cfgs]
    xs = [d.scaled for d in datas]
    if len({tuple(x.shape) for x in xs}) != 1:
        raise DataError(f"train_many: members' training data differ in shape ({sorted({tuple(x.shape) for x in xs})})")
    dim, T, M = xs[0].shape[1], diffusions[0].T, len(cfgs)
    models = [initial_model(c, dim, T) for c in cfgs]
    names = [n for n, _ in models[0].named_parameters()]
    trainer = make_trainer(models, diffusions, torch.stack(xs), [c.train for c in cfgs],
                                 [c.diffusion.parameterization for c in cfgs])
    share = trainer.fit(progress=progress) / M
    losses = trainer.loss_log.cpu()
    runs = []
    for m, (c, o, data, d) in enumerate(zip(cfgs, outs, datas, diffusions, strict=True)):
        o.mkdir(parents=True, exist_ok=True)
        write_json(o / FILES["config"], c.model_dump(mode="json"))
        write_json(o / FILES["schedule"], d.schedule.to_dict())
        _save_data(o, c, data)
        meta = {**_arch(c, dim, T, data.columns), "step": trainer.step_count, "seconds": share, "batched": M}
        state = trainer.member_state(m, names)
        if checkpoint:
            save_weights(o / FILES["checkpoint"], state["checkpoint"], {**meta, "planned_steps": c.train.steps})
        save_weights(o / FILES["model"], state["eval"], meta)
        _write_loss(o / FILES["loss"], losses[:, m].tolist())
        model = build_model(c.model.name, dim, T, **c.model.options)
        model.load_state_dict(state["eval"])
        runs.append(Run(o, c, data.columns, data.scaler, d, model.eval(), data.toy, data.train, data.heldout, share))
    return runs
