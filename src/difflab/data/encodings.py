"""How a categorical column of K levels becomes indicator features in {0, 1} for a Gaussian diffusion, and back.

Both encodings keep every feature an indicator, so the table scaler maps it to {-1, +1} and the diffusion runs on
the corners of a cube; decoding picks the level whose code is nearest to the generated point.

- ``onehot``: K features, level k is the k-th unit vector; decoded by argmax (the nearest unit vector).
- ``multinomial`` / ``masked``: the features are one-hot as for ``onehot``, but a table run does not push them
  through the Gaussian diffusion: each such column is diffused by a discrete process of its own
  (:mod:`difflab.diffusion.categorical`; ``process`` names it), in the same network as the numbers.
- ``bits``: ceil(log2 K) features (at least 1), level k is k in binary, most significant bit first ("analog bits",
  Chen, Zhang & Hinton 2022). Thresholding each bit at ½ gives the nearest corner of the cube, but when K is not a
  power of 2 that corner may be no level's code; decoding therefore picks the nearest *valid* code, argmin_k
  |f - c_k|², which equals thresholding whenever the thresholded code is valid.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from difflab.errors import ConfigError


@dataclass(frozen=True)
class Encoding:
    """``width(K)`` features per column; ``codes(K)`` the (K, width) matrix of every level's code in {0, 1}."""

    name: str
    description: str
    width: Callable[[int], int]
    codes: Callable[[int], np.ndarray]
    process: str | None = None  # a discrete process diffuses the column (its features are one-hot)

    @property
    def one_hot(self) -> bool:
        return self.codes is _onehot_codes

    def encode(self, levels: np.ndarray, k: int) -> np.ndarray:
        """Level indices (N,) in 0..K-1 → (N, width) float64 indicators."""
        return self.codes(k)[levels].astype(np.float64)

    def decode(self, features: np.ndarray, k: int) -> np.ndarray:
        """(N, width) features in data units → level indices (N,): the level with the nearest code.

        |f - c|² = |f|² - 2 f·c + |c|²; with f fixed that is argmax_k (2 f·c_k - |c_k|²)."""
        c = self.codes(k).astype(np.float64)
        return np.argmax(2.0 * features @ c.T - (c * c).sum(axis=1), axis=1)


def _onehot_codes(k: int) -> np.ndarray:
    return np.eye(k, dtype=np.int64)


def _bits_width(k: int) -> int:
    return max(1, int(np.ceil(np.log2(k))))


def _bits_codes(k: int) -> np.ndarray:
    w = _bits_width(k)
    return (np.arange(k)[:, None] >> np.arange(w - 1, -1, -1)[None, :]) & 1


ENCODINGS: dict[str, Encoding] = {
    e.name: e
    for e in (
        Encoding("onehot", "one feature per level (argmax decodes)", lambda k: k, _onehot_codes),
        Encoding("bits", "ceil(log2 K) analog bits (nearest valid code decodes)", _bits_width, _bits_codes),
        Encoding("multinomial", "one-hot, diffused by multinomial diffusion (Hoogeboom et al. 2021)", lambda k: k,
                 _onehot_codes, "multinomial"),
        Encoding("masked", "one-hot, diffused by masked (absorbing-state) diffusion (Austin et al. 2021)",
                 lambda k: k, _onehot_codes, "masked"),
    )
}


def get_encoding(name: str) -> Encoding:
    try:
        return ENCODINGS[name]
    except KeyError:
        raise ConfigError(f"unknown encoding {name!r}; choose one of: {', '.join(ENCODINGS)}") from None
