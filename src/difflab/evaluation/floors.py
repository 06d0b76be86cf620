"""Metrics next to their noise floor, and the memorisation (nearest-neighbour) measure.

A metric between n generated points and n true points is never 0, even for a perfect model: two independent
true samples of size n already differ. :func:`evaluate_samples` therefore reports, for every metric, the value
(generated vs true), the floor (true vs independent true, same n) and their ratio; 1.0 means the generated
sample is as close to the truth as another true sample of the same size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.spatial import cKDTree

from difflab.errors import ConfigError, DataError
from difflab.evaluation.metrics import METRICS

Reference = Callable[[int, int], np.ndarray] | np.ndarray
"""True data: an i.i.d. sampler ``(n, seed) -> (n, D)`` or a finite array of true points (N, D)."""


def _as_points(name: str, a: np.ndarray) -> np.ndarray:
    """Check a (rows, D) array of finite numbers and return it as float64."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 1:
        raise DataError(f"{name} must be a 2-D array of shape (rows, D); got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        raise DataError(
            f"{name} contain {int(bad.sum())} non-finite values (NaN or inf) in {int(bad.any(axis=1).sum())} "
            f"of {len(a)} rows"
        )
    return a


def _check_widths(name: str, a: np.ndarray, ref_name: str, ref: np.ndarray) -> None:
    if a.shape[1] != ref.shape[1]:
        raise DataError(f"{name} have {a.shape[1]} columns, {ref_name} has {ref.shape[1]}")


def _resolve_metrics(metrics: Sequence[str] | None) -> list[str]:
    if metrics is None:
        return list(METRICS)
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; available: {', '.join(METRICS)}")
    return [m for m in METRICS if m in set(metrics)]  # registry order, duplicates dropped


def _true_pair(reference: Reference, n: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Two independent true samples of n points: disjoint subsets of an array, or two sampler calls."""
    if callable(reference):
        seed_a, seed_b = (int(s) for s in rng.choice(2**31, size=2, replace=False))
        pair = []
        for seed in (seed_a, seed_b):
            points = _as_points("reference sampler outputs", reference(n, seed))
            if points.shape[1] != width:
                raise DataError(f"samples have {width} columns, reference has {points.shape[1]}")
            if len(points) != n:
                raise DataError(f"reference sampler returned {len(points)} points when asked for n={n}")
            pair.append(points)
        return tuple(pair)
    perm = rng.permutation(len(reference))
    return reference[perm[:n]], reference[perm[n : 2 * n]]


def evaluate_samples(
    samples: np.ndarray,
    reference: Reference,
    *,
    n: int = 2000,
    repeats: int = 3,
    metrics: Sequence[str] | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Every metric of ``samples`` against the truth, next to its noise floor.

    Each repeat draws n generated points (a subset of ``samples`` without replacement) and two independent true
    samples A and B of n points (two sampler calls with distinct seeds derived from ``seed``, or two disjoint
    random subsets of the reference array). value = metric(gen, A) and floor = metric(B, A): both use A as the
    reference, and both calls get a generator seeded alike (same random directions, same train/test split),
    so the comparison differs only in gen versus B. Values and floors are averaged over the repeats; the ratio
    is :meth:`Metric.ratio` of the two means (mean value / mean floor for distances).

    Args:
        samples: generated points (N, D), all finite.
        reference: an i.i.d. sampler ``(n, seed) -> (n, D)`` or an array of true points (N_ref, D) with
            N_ref >= 2n.
        n: points per sample in every comparison (the floor depends on n, so compare ratios at equal n).
        repeats: independent repeats averaged.
        metrics: names from :data:`METRICS` (default: all), reported in registry order.
        seed: seeds every random choice.

    Returns:
        ``{name: {"value": v, "floor": f, "ratio": r}}`` in :data:`METRICS` order (plain floats, JSON-able;
        the ratio is ``inf`` only if a floor is exactly 0, i.e. the two true samples were identical multisets).

    Raises:
        ConfigError: unknown metric name, n < 2, repeats < 1, or n larger than the points available.
        DataError: arrays that are not 2-D, contain non-finite values, or differ in width.
    """
    names = _resolve_metrics(metrics)
    if n < 2:
        raise ConfigError(f"n={n} is too small; every metric needs at least 2 points per sample")
    if repeats < 1:
        raise ConfigError(f"repeats={repeats}; expected at least 1")
    samples = _as_points("samples", samples)
    if len(samples) < n:
        raise ConfigError(f"samples have {len(samples)} points, fewer than n={n} — use --n {len(samples)} or fewer")
    if not callable(reference):
        reference = _as_points("reference points", reference)
        _check_widths("samples", samples, "reference", reference)
        if len(reference) < 2 * n:
            raise ConfigError(
                f"reference has {len(reference)} points; n={n} needs 2 × n disjoint points — "
                f"use --n {len(reference) // 2} or fewer"
            )

    rng = np.random.default_rng(seed)
    sums = {name: [0.0, 0.0] for name in names}
    for _ in range(repeats):
        gen = samples[rng.choice(len(samples), size=n, replace=False)]
        true_a, true_b = _true_pair(reference, n, samples.shape[1], rng)
        for name in names:
            metric_seed = int(rng.integers(2**63))
            sums[name][0] += METRICS[name](gen, true_a, rng=np.random.default_rng(metric_seed))
            sums[name][1] += METRICS[name](true_b, true_a, rng=np.random.default_rng(metric_seed))

    results: dict[str, dict[str, float]] = {}
    for name in names:
        value, floor = sums[name][0] / repeats, sums[name][1] / repeats
        # c2st scores n held-out points per repeat; the distances ignore n_test
        ratio = METRICS[name].ratio(value, floor, n_test=n * repeats)
        results[name] = {"value": float(value), "floor": float(floor), "ratio": float(ratio)}
    return results


def format_table(results: dict[str, dict[str, float]], n: int) -> str:
    """An aligned text table: metric | value | floor | ratio, with a header line naming n."""
    rows = [("metric", "value", "floor", "ratio")]
    rows += [(name, f"{r['value']:.4g}", f"{r['floor']:.4g}", f"{r['ratio']:.3g}") for name, r in results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

    header = f"n = {n} per sample; floor = same metric between two independent true samples; ratio 1 = at floor"
    return "\n".join([header, line(rows[0]), "  ".join("-" * w for w in widths), *map(line, rows[1:])])


def nearest_neighbour_ratio(
    samples: np.ndarray, train: np.ndarray, heldout: np.ndarray, *, n: int = 2000, seed: int = 0
) -> dict[str, float | int]:
    """Memorisation check: how much closer generated points lie to the training set than fresh true points do.

    Median Euclidean distance from each of up to n generated points to its nearest training point, divided by
    the same median for up to n held-out true points (random subsets without replacement when more are given).
    ~1 means the model generalises like new data; much less than 1 means it copies training points.

    Returns:
        ``{"generated_to_train": median, "heldout_to_train": median, "ratio": generated / heldout,
        "n_generated": count used, "n_heldout": count used}``. A held-out median of 0 (held-out points that are
        also training points) gives ratio 1.0 if the generated median is 0 too, else inf.
    """
    if n < 1:
        raise ConfigError(f"n={n}; expected at least 1")
    samples = _as_points("samples", samples)
    train = _as_points("training points", train)
    heldout = _as_points("held-out points", heldout)
    _check_widths("samples", samples, "training data", train)
    _check_widths("held-out points", heldout, "training data", train)
    rng = np.random.default_rng(seed)
    tree = cKDTree(train)

    def median_nn(points: np.ndarray) -> tuple[float, int]:
        if len(points) > n:
            points = points[rng.choice(len(points), size=n, replace=False)]
        return float(np.median(tree.query(points, k=1)[0])), len(points)

    gen_med, n_gen = median_nn(samples)
    held_med, n_held = median_nn(heldout)
    ratio = gen_med / held_med if held_med > 0 else (1.0 if gen_med == 0 else float("inf"))
    return {
        "generated_to_train": gen_med,
        "heldout_to_train": held_med,
        "ratio": ratio,
        "n_generated": n_gen,
        "n_heldout": n_held,
    }
