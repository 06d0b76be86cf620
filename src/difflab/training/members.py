"""Many residual-MLP runs at once on a CPU: each member its own :class:`~difflab.training.trainer.Trainer` (the fast
step of :mod:`difflab.training.fast_step`, one lane), the members trained whole, in turn, on ``lanes`` threads.

Stacking the members' parameters (:class:`~difflab.training.stacked.StackedTrainer`) pays on a GPU, where one
member leaves the card idle. On a CPU one member's step already keeps a core busy with matrix products of
256 × 128 × 128; what pays there is no hand-off at all: each thread trains its members from the first step to the
last, and the threads meet once, at the end. A member is then exactly the run ``train_run`` makes of its config
with one thread (same draws, same arithmetic), every process, parameterization and noise law included.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import torch
from torch import Tensor

from difflab.compute import cpu_threads
from difflab.errors import ConfigError
from difflab.training.trainer import Trainer


class MemberTrainers:
    """Trains ``trainers`` (one per member, all on the CPU, ``cfg.steps`` equal) on ``lanes`` threads; the
    interface :func:`difflab.pipeline.train_many` reads of the batched trainers (``fit``, ``loss_log``,
    ``step_count``, ``member_state``)."""

    def __init__(self, trainers: list[Trainer], lanes: int = 1) -> None:
        if not trainers or len({tr.cfg.steps for tr in trainers}) != 1:
            raise ConfigError("train_many: members must share one step count")
        if any(tr.device.type != "cpu" for tr in trainers):
            raise ConfigError("train_many: MemberTrainers runs on the CPU")
        self.trainers, self.M = trainers, len(trainers)
        self.lanes = max(1, min(int(lanes), self.M))
        self.steps = trainers[0].cfg.steps
        self.threads = trainers[0].threads  # each member's own (what trains it again alone)

    @property
    def step_count(self) -> int:
        return min(tr.step_count for tr in self.trainers)

    @property
    def loss_log(self) -> Tensor:
        """(steps, M): each member's loss per step."""
        return torch.stack([tr.loss_log for tr in self.trainers], dim=1)

    def fit(self, *, progress: bool = False) -> float:
        """Train every member to its ``cfg.steps``; returns wall seconds. ``progress`` is not shown (members run
        at once)."""
        start = time.perf_counter()
        lanes = [self.trainers[k :: self.lanes] for k in range(self.lanes)]

        def lane(members: list[Trainer]) -> None:
            for tr in members:
                tr.fit(progress=False)

        with cpu_threads(1):  # one torch thread per lane, set once here (members' own settings only restore it)
            if self.lanes == 1:
                lane(lanes[0])
            else:
                with ThreadPoolExecutor(self.lanes - 1, thread_name_prefix="difflab-member",
                                        initializer=torch.set_num_threads, initargs=(1,)) as pool:
                    others = [pool.submit(lane, ms) for ms in lanes[1:]]
                    lane(lanes[0])
                    for f in others:
                        f.result()
        return time.perf_counter() - start

    def member_state(self, m: int, names: list[str]) -> dict[str, dict[str, Tensor]]:
        """Member m's tensors on the CPU: ``model`` (trained weights), ``eval`` (EMA when on) and ``checkpoint``
        (:meth:`Trainer.state_tensors`, what ``train_run`` saves)."""
        tr = self.trainers[m]
        params = dict(tr.model.named_parameters())
        model = {n: params[n].detach().cpu().clone() for n in names}
        ema = {n: v.cpu().clone() for n, v in tr.ema.state_dict().items()} if tr.ema is not None else {}
        ckpt = {k: v.cpu() for k, v in tr.state_tensors().items()}
        return {"model": model, "eval": ema or model, "checkpoint": ckpt}
