"""Distance to closest record (DCR): do generated rows sit closer to the training rows than new real rows do?

For every generated row, the Euclidean distance to its nearest training row; the same for held-out real rows, which
the model never saw. Two numbers summarise the comparison (as in the synthetic-data literature, e.g. Zhao et al.
2021, "CTAB-GAN"):

- ``ratio``: median DCR of generated rows / median DCR of held-out rows. About 1: generated rows are as new as fresh
  data; well below 1: the model reproduces training rows.
- ``share_closer``: the fraction of generated rows closer to a training row than the 5th percentile of the held-out
  rows' DCRs. Fresh data put 5 % there by construction; a copying model puts many more.
- ``nearer_train``: the fraction of generated rows whose nearest training row is nearer than their nearest held-out
  row, with as many training rows as held-out rows (a random subset), so that fresh rows of the same distribution
  score ½ (SDMetrics' DCROverfittingProtection asks the same question). Above ½: the samples lean toward the rows
  the model was trained on. Ties count half.

Distances are taken in whatever units the caller passes; ``difflab evaluate`` passes columns standardised by the
reference's mean and sd (categorical columns one-hot), so that no column dominates by its units alone.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from difflab.errors import ConfigError, DataError

CLOSE_QUANTILE = 0.05


def _points(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or len(a) == 0:
        raise DataError(f"{name} must be a non-empty 2-D array (rows, columns); got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name} contain non-finite values")
    return a


def nearest_distances(points: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Euclidean distance from each row of ``points`` to its nearest row of ``records`` (a k-d tree query)."""
    return cKDTree(records).query(points, k=1)[0]


def distance_to_closest_record(
    synthetic: np.ndarray, train: np.ndarray, heldout: np.ndarray, *, n: int = 2000, seed: int = 0,
    quantile: float = CLOSE_QUANTILE,
) -> dict[str, float | int]:
    """DCR of up to ``n`` generated rows and up to ``n`` held-out rows (random subsets chosen with ``seed``) to the
    training rows.

    Returns ``generated_to_train`` and ``heldout_to_train`` (the two medians), ``ratio`` (their quotient; 1.0 when
    both are 0, inf when only the held-out one is), ``share_closer`` (generated rows below the held-out rows'
    ``quantile``-th DCR quantile), ``heldout_quantile`` (that distance), ``expected_share`` (= ``quantile``),
    ``nearer_train`` (generated rows nearer to one of ``nearer_train_rows`` random training rows than to the as many
    held-out rows; ½ for fresh data), and ``n_generated``, ``n_heldout``.
    """
    if n < 1:
        raise ConfigError(f"n={n}; expected at least 1")
    if not 0.0 < quantile < 1.0:
        raise ConfigError(f"quantile={quantile}; expected a number between 0 and 1")
    synthetic, train = _points("samples", synthetic), _points("training rows", train)
    heldout = _points("held-out rows", heldout)
    if not synthetic.shape[1] == train.shape[1] == heldout.shape[1]:
        raise DataError(f"samples, training rows and held-out rows have {synthetic.shape[1]}, {train.shape[1]} and "
                        f"{heldout.shape[1]} columns")
    rng = np.random.default_rng(seed)

    def subset(a: np.ndarray) -> np.ndarray:
        return a[rng.choice(len(a), size=n, replace=False)] if len(a) > n else a

    synthetic, heldout = subset(synthetic), subset(heldout)
    d_gen, d_held = nearest_distances(synthetic, train), nearest_distances(heldout, train)
    peers = train[rng.choice(len(train), size=len(heldout), replace=False)] if len(train) > len(heldout) else train
    to_train, to_held = nearest_distances(synthetic, peers), nearest_distances(synthetic, heldout)
    nearer = float(np.mean((to_train < to_held) + 0.5 * (to_train == to_held)))
    gen_med, held_med = float(np.median(d_gen)), float(np.median(d_held))
    ratio = gen_med / held_med if held_med > 0 else (1.0 if gen_med == 0 else float("inf"))
    # Strictly closer than the held-out quantile: fresh rows then fall below it in about `quantile` of cases.
    cut = float(np.quantile(d_held, quantile))
    return {
        "generated_to_train": gen_med,
        "heldout_to_train": held_med,
        "ratio": ratio,
        "share_closer": float(np.mean(d_gen < cut)),
        "heldout_quantile": cut,
        "expected_share": quantile,
        "nearer_train": nearer,
        "nearer_train_rows": len(peers),
        "n_generated": len(synthetic),
        "n_heldout": len(heldout),
    }
