"""The independent draws an evaluation averages: noise-floor pairs (true vs independent true) and sample-side repeats
(a subset of the samples vs a true sample), each from its own random stream.

Every draw is indexed: floor pair i uses the stream (seed, FLOOR, i), sample repeat k the stream (seed, VALUE, k),
and a metric's own randomness (SWD's directions, c2st's split and trees) a stream that adds the metric's code. So a
metric's numbers do not depend on which other metrics were asked for, nor on how many draws run at once, and a floor
(which never sees the samples) is the same in every evaluation with the same reference, n and seed — what lets
:mod:`difflab.evaluation.floor_cache` keep it. Repeat k draws the same points whichever metrics score it.

The floor's pairs are chosen by a rule: at least :data:`FLOOR_MIN_PAIRS`, then more in batches until the floor's
relative standard error is at most :data:`FLOOR_RSE`, at most :data:`FLOOR_MAX_PAIRS` (an accuracy-like metric,
whose floor sits at chance by construction, stops at the minimum). Metric calls run on a few threads: the exact
W1 (POT's network simplex), the distance matrices and the trees release the GIL.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from difflab.errors import DataError
from difflab.evaluation import floor_cache
from difflab.evaluation.metrics import METRICS
from difflab.evaluation.uncertainty import mean_se

Points = Callable[[int, int], np.ndarray] | np.ndarray
"""Points to draw from: a sampler ``(n, seed) -> (n, D)`` or a finite array (N, D)."""

FLOOR_MIN_PAIRS = 20
FLOOR_MAX_PAIRS = 300
# The floor's share of a 3 % budget for the ratio: √(3² − 1.5²) ≈ 2.6 % is left for the samples' side. The floor is
# paid once (cached), the samples' side at every evaluation, so the floor takes the smaller share.
FLOOR_RSE = 0.015
FLOOR_BATCH = 10
WORKERS = max(1, min(4, os.cpu_count() or 1))
# scikit-learn's trees warn when fitted on a thread that joblib did not start: c2st runs on the calling thread
SERIAL = frozenset({"c2st"})
_FLOOR, _VALUE = 1, 2  # stream tags


def metric_code(name: str) -> int:
    """A stable integer per metric name (its CRC-32), to give each metric a stream of its own."""
    return zlib.crc32(name.encode())


def stream(seed: int, tag: int, index: int, metric: str | None = None) -> np.random.Generator:
    keys = [int(seed), tag, int(index)] + ([metric_code(metric)] if metric is not None else [])
    return np.random.default_rng(keys)


def _checked(points: np.ndarray, n: int, width: int, what: str) -> np.ndarray:
    a = np.asarray(points, dtype=np.float64)
    if a.ndim != 2:
        raise DataError(f"{what} returned shape {a.shape}; expected (n, {width})")
    if a.shape[1] != width:
        raise DataError(f"samples have {width} columns, {what.removeprefix('the ')} has {a.shape[1]}")
    if len(a) != n:
        raise DataError(f"{what} returned {len(a)} points when asked for n={n}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise DataError(f"{what} outputs contain {int(bad.sum())} non-finite values (NaN or inf)")
    return a


def draw(points: Points, n: int, width: int, rng: np.random.Generator, what: str) -> np.ndarray:
    """n points: a sampler call with a seed from ``rng``, or a random subset of an array without replacement."""
    if callable(points):
        return _checked(points(n, int(rng.integers(2**31))), n, width, what)
    return points[rng.choice(len(points), size=n, replace=False)]


def true_pair(reference: Points, n: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two independent true samples of n points: two sampler calls, or two disjoint random subsets of an array."""
    if callable(reference):
        return draw(reference, n, width, rng, "the reference"), draw(reference, n, width, rng, "the reference")
    perm = rng.permutation(len(reference))
    return reference[perm[:n]], reference[perm[n : 2 * n]]


def run_jobs(jobs: Sequence[tuple[str, Callable[[], float]]]) -> list[float]:
    """The (metric, job) results in order: on up to :data:`WORKERS` threads, except metrics in :data:`SERIAL`,
    which run on this thread meanwhile."""
    pooled = [k for k, (name, _) in enumerate(jobs) if name not in SERIAL]
    out: list[float] = [0.0] * len(jobs)
    if WORKERS == 1 or len(pooled) < 2:
        return [job() for _, job in jobs]
    futures = {k: _pool().submit(jobs[k][1]) for k in pooled}
    for k, (name, job) in enumerate(jobs):
        if name in SERIAL:
            out[k] = job()
    for k, future in futures.items():
        out[k] = future.result()
    return out


_POOL: list[ThreadPoolExecutor] = []
if hasattr(os, "register_at_fork"):  # a forked child (a sweep's worker) has none of its parent's threads
    os.register_at_fork(after_in_child=_POOL.clear)


def _pool() -> ThreadPoolExecutor:
    """One pool of :data:`WORKERS` threads for the process, started on first use (many evaluations of small samples
    would otherwise spend their time starting threads)."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(WORKERS, thread_name_prefix="difflab-metrics"))
    return _POOL[0]


def _job(name: str, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[str, Callable[[], float]]:
    return name, lambda: METRICS[name](x, y, rng=rng)


def value_draws(samples: Points, reference: Points, n: int, plan: dict[int, Sequence[str]], *, seed: int,
                width: int) -> dict[str, list[float]]:
    """Per metric, metric(generated_k, true_k) for each repeat k of ``plan`` ({k: the metrics it scores}), in k
    order; repeat k always draws the same points, whichever metrics it scores."""
    jobs, keys = [], []
    for k, names in sorted(plan.items()):
        if not names:
            continue
        rng = stream(seed, _VALUE, k)
        gen = draw(samples, n, width, rng, "the samples' sampler")
        true = draw(reference, n, width, rng, "the reference")
        for name in names:
            jobs.append(_job(name, gen, true, stream(seed, _VALUE, k, name)))
            keys.append(name)
    out: dict[str, list[float]] = {name: [] for name in keys}
    for name, v in zip(keys, run_jobs(jobs), strict=True):
        out[name].append(v)
    return out


def _floor_done(name: str, values: list[float], n: int, pairs: int | None) -> bool:
    if pairs is not None:
        return len(values) >= pairs
    metric = METRICS[name]
    if len(values) < FLOOR_MIN_PAIRS:
        return False
    if metric.null_sd is not None or len(values) >= FLOOR_MAX_PAIRS:
        return True
    mean, se = mean_se(values)
    scale = metric.excess(mean, n_test=n * len(values))
    return scale > 0 and se / scale <= FLOOR_RSE


def floor_rule(pairs: int | None) -> str:
    return f"pairs={pairs}" if pairs is not None else (f"auto:{FLOOR_MIN_PAIRS}..{FLOOR_MAX_PAIRS},"
                                                       f"rse<={FLOOR_RSE},batch={FLOOR_BATCH}")


def floor_values(reference: Points, n: int, names: Sequence[str], *, seed: int, width: int,
                 reference_key: str | None, pairs: int | None = None) -> dict[str, list[float]]:
    """Per metric, its floor metric(B_i, A_i) over independent true pairs i = 0, 1, ... (``pairs`` of them, or as
    many as the rule above picks), read from the cache when ``reference_key`` names the reference (an array is
    keyed by its values when no key is given; a sampler without a key is not cached)."""
    if reference_key is None and not callable(reference):
        reference_key = floor_cache.array_key(reference)
    rule = floor_rule(pairs)
    keys = {name: floor_cache.floor_key(reference_key, n, name, seed, rule) for name in names} if reference_key else {}
    out: dict[str, list[float]] = {}
    for name in names:
        cached = floor_cache.load(keys[name]) if keys else None
        out[name] = cached if cached is not None else []
    todo = [name for name in names if not out[name]]
    i = 0
    while todo:
        batch = range(i, i + (FLOOR_BATCH if pairs is None else pairs))
        jobs, owners = [], []
        for j in batch:
            a, b = true_pair(reference, n, width, stream(seed, _FLOOR, j))
            for name in todo:
                if len(out[name]) + sum(o == name for o in owners) < (pairs or FLOOR_MAX_PAIRS):
                    jobs.append(_job(name, b, a, stream(seed, _FLOOR, j, name)))
                    owners.append(name)
        for name, v in zip(owners, run_jobs(jobs), strict=True):
            out[name].append(v)
        i = batch.stop
        for name in list(todo):
            if _floor_done(name, out[name], n, pairs):
                todo.remove(name)
                if keys:
                    floor_cache.store(keys[name], out[name])
    return out
