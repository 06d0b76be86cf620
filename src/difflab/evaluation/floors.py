"""Metrics next to their noise floor, each ratio with its standard error, and the memorisation measure.

A metric between n generated points and n true points is never 0, even for a perfect model: two independent
true samples of size n already differ. :func:`evaluate_samples` therefore reports, for every metric, the value
(generated vs true, averaged over repeats), the floor (true vs independent true, same n, averaged over pairs and
cached), their ratio and its standard error; 1.0 means the generated sample is as close to the truth as another
true sample of the same size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.spatial import cKDTree

from difflab.errors import ConfigError, DataError
from difflab.evaluation.draws import WORKERS, Points, floor_values, value_draws
from difflab.evaluation.metrics import METRICS
from difflab.evaluation.uncertainty import format_ratio, mean_se, ratio_se, relative_se

Reference = Callable[[int, int], np.ndarray] | np.ndarray
"""True data: an i.i.d. sampler ``(n, seed) -> (n, D)`` or a finite array of true points (N, D)."""

TARGET_RSE = 0.03  # what automatic repeats aim at: the W1 ratio's relative standard error
MIN_REPEATS = 5
MAX_REPEATS = 64
OTHER_REPEATS = 10  # automatic repeats: the metrics not watched (_watched) score the first 10 draws only


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


def _watched(names: list[str]) -> list[str]:
    """The metrics whose ratio's precision decides how many repeats an automatic evaluation draws: W1 when asked
    for, else the distances asked for (c2st's excess over chance is clipped, so its relative error is not one)."""
    if "w1" in names:
        return ["w1"]
    return [m for m in names if METRICS[m].null_sd is None] or names


def evaluate_samples(
    samples: Points,
    reference: Reference,
    *,
    n: int = 2000,
    repeats: int | None = None,
    metrics: Sequence[str] | None = None,
    seed: int = 0,
    reference_key: str | None = None,
    floor_pairs: int | None = None,
    target_rse: float = TARGET_RSE,
) -> dict[str, dict[str, float]]:
    """Every metric of ``samples`` against the truth, next to its noise floor, each ratio with its standard error.

    The floor of a metric is its mean over independent pairs of true samples B, A of n points (metric(B, A)); it
    never sees the samples, so it is estimated once per (reference, n, metric, seed) and cached
    (:mod:`.floor_cache`, :mod:`.draws` for the rule that picks the number of pairs). The value is the mean over
    ``repeats`` independent repeats of metric(gen, A'), each with n generated points (a random subset of an array,
    or a fresh sampler call) and a fresh true sample A'. ratio = value / floor (for c2st, excess over chance /
    excess over chance, each at least the null sd of one comparison's n scored points), and ratio_se its
    delta-method standard error (:mod:`.uncertainty`).

    Args:
        samples: generated points (N, D), all finite, or a sampler ``(n, seed) -> (n, D)`` of them.
        reference: an i.i.d. sampler ``(n, seed) -> (n, D)`` or an array of true points (N_ref, D) with
            N_ref >= 2n.
        n: points per sample in every comparison (the floor depends on n, so compare ratios at equal n).
        repeats: sample-side repeats averaged; None: at least :data:`MIN_REPEATS`, then more until the ratio of
            W1 (else of every distance asked for) has a relative standard error ≤ ``target_rse``, at most
            :data:`MAX_REPEATS`; the other metrics score the first :data:`OTHER_REPEATS` of those draws.
        metrics: names from :data:`METRICS` (default: all), reported in registry order.
        seed: seeds every random choice.
        reference_key: names a sampler ``reference`` for the floor cache (e.g. ``"toy:moons:std"``); without
            it a sampler's floor is computed each time. An array is keyed by its values.
        floor_pairs: pairs of true samples the floor averages; None: the rule of :mod:`.draws` (≥ 20).
        target_rse: the relative standard error automatic repeats aim at.

    Returns:
        ``{name: {"value", "value_se", "floor", "floor_se", "ratio", "ratio_se", "repeats", "floor_pairs"}}`` in
        :data:`METRICS` order (plain floats, JSON-able; the ratio is ``inf`` only if the floor is exactly 0, and an
        se is NaN with a single repeat).

    Raises:
        ConfigError: unknown metric name, n < 2, repeats < 1, or n larger than the points available.
        DataError: arrays that are not 2-D, contain non-finite values, or differ in width.
    """
    names = _resolve_metrics(metrics)
    if n < 2:
        raise ConfigError(f"n={n} is too small; every metric needs at least 2 points per sample")
    if repeats is not None and repeats < 1:
        raise ConfigError(f"repeats={repeats}; expected at least 1")
    if floor_pairs is not None and floor_pairs < 2:
        raise ConfigError(f"floor_pairs={floor_pairs}; expected at least 2")
    if not callable(samples):
        samples = _as_points("samples", samples)
        if len(samples) < n:
            raise ConfigError(f"samples have {len(samples)} points, fewer than n={n} — "
                              f"use --n {len(samples)} or fewer")
        width = samples.shape[1]
    elif not callable(reference):
        width = _as_points("reference points", reference).shape[1]
    else:  # two samplers: the (cheap) reference tells the width, a wrong-width sampler fails at its first draw
        width = _as_points("reference sampler outputs", reference(2, seed)).shape[1]
    if not callable(reference):
        reference = _as_points("reference points", reference)
        if reference.shape[1] != width:
            raise DataError(f"samples have {width} columns, reference has {reference.shape[1]}")
        if len(reference) < 2 * n:
            raise ConfigError(
                f"reference has {len(reference)} points; n={n} needs 2 × n disjoint points — "
                f"use --n {len(reference) // 2} or fewer"
            )

    floors = floor_values(reference, n, names, seed=seed, width=width, reference_key=reference_key,
                          pairs=floor_pairs)
    watched = _watched(names) if repeats is None else names
    others = [m for m in names if m not in watched]
    values: dict[str, list[float]] = {name: [] for name in names}
    target = repeats if repeats is not None else MIN_REPEATS
    while True:
        done = len(values[watched[0]])
        plan = {k: watched + [m for m in others if k < OTHER_REPEATS] for k in range(done, target)}
        for name, more in value_draws(samples, reference, n, plan, seed=seed, width=width).items():
            values[name] += more
        results = {name: _summary(name, values[name], floors[name], n) for name in names}
        if repeats is not None or target >= MAX_REPEATS:
            return results
        worst = max(relative_se(results[m]["ratio"], results[m]["ratio_se"]) for m in watched)
        if not worst > target_rse:  # also stops on NaN (a zero floor)
            return results
        target = min(MAX_REPEATS, target + 2 * WORKERS)


def _summary(name: str, values: list[float], floors: list[float], n: int) -> dict[str, float]:
    metric = METRICS[name]
    value, value_se = mean_se(values)
    floor, floor_se = mean_se(floors)
    # c2st scores about n held-out points per comparison; both excesses are clipped at the null sd of one
    # comparison, so the ratio does not grow with the number of repeats. Distances ignore n_test.
    ratio, se = ratio_se(metric.excess(value, n_test=n), value_se, metric.excess(floor, n_test=n), floor_se)
    return {"value": value, "value_se": value_se, "floor": floor, "floor_se": floor_se, "ratio": float(ratio),
            "ratio_se": float(se), "repeats": len(values), "floor_pairs": len(floors)}


def format_table(results: dict[str, dict[str, float]], n: int) -> str:
    """An aligned text table: metric | value | floor | ratio ± se | draws | pairs (the sample draws and floor pairs
    each metric averaged), with a header naming n and what the ± is."""
    rows = [("metric", "value", "floor", "ratio ± se", "draws", "pairs")]
    rows += [(name, f"{r['value']:.4g}", f"{r['floor']:.4g}", format_ratio(r["ratio"], r.get("ratio_se")),
              str(r.get("repeats", "")), str(r.get("floor_pairs", ""))) for name, r in results.items()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

    header = (f"n = {n} per sample; floor = same metric between two independent true samples; ratio 1 = at floor\n"
              "± = standard error of the ratio (delta method over the sample draws and the floor's pairs)")
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
