"""Which of a table run's features the Gaussian process diffuses and which a discrete one does.

With ``encoding`` multinomial or masked (:mod:`difflab.data.encodings`) every categorical and boolean column keeps its
one-hot block in the feature matrix (so rows encode, scale and decode as with ``onehot``; the table scaler maps the
block to ±1), but the block is not a Gaussian feature: the column is one cell of a discrete process, its state the
level code. Numbers and missing-value flags stay Gaussian. A :class:`Layout` names the two parts in the features the
network generates (a condition column's features left out), and moves between the scaled feature rows and the pair
(Gaussian features, level codes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from difflab.data.encodings import get_encoding


@dataclass(frozen=True)
class Layout:
    """``gaussian``: indices of the Gaussian features among the D generated ones; ``groups``: (start, K) of each
    discretely diffused column's one-hot block there; ``names`` those columns; ``process`` the discrete process."""

    process: str
    dim: int
    gaussian: tuple[int, ...]
    groups: tuple[tuple[int, int], ...]
    names: tuple[str, ...]

    @property
    def levels(self) -> list[int]:
        return [k for _, k in self.groups]

    def split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Scaled feature rows (B, D) → (Gaussian features (B, G), level codes (B, C) int64: each block's argmax)."""
        codes = [x[:, a : a + k].argmax(dim=1) for a, k in self.groups]
        xg = x[:, list(self.gaussian)] if len(self.gaussian) != self.dim else x
        return xg, (torch.stack(codes, 1) if codes else torch.zeros(len(x), 0, dtype=torch.long, device=x.device))

    def join(self, xg: Tensor, codes: Tensor) -> Tensor:
        """(Gaussian features, codes) → scaled feature rows (…, B, D): each block ±1 one-hot (the table scaler's
        image of a level), 0 for a code outside 0..K−1 (the mask, in a trajectory)."""
        out = torch.empty(*xg.shape[:-1], self.dim, dtype=xg.dtype, device=xg.device)
        out[..., list(self.gaussian)] = xg
        for c, (a, k) in enumerate(self.groups):
            code = codes[..., c : c + 1]
            hot = (torch.arange(k, device=xg.device) == code).to(xg.dtype) * 2.0 - 1.0
            out[..., a : a + k] = torch.where(code < k, hot, torch.zeros_like(hot))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"process": self.process, "gaussian": len(self.gaussian), "columns": list(self.names),
                "levels": self.levels}


def layout_of(spec: Any, condition: Any = None) -> Layout | None:
    """The layout of a table spec (:class:`~difflab.data.table.TableSpec`) whose encoding names a discrete process,
    the features of ``condition`` (a :class:`~difflab.data.condition.Condition`) left out; None for any other run."""
    if spec is None or get_encoding(spec.encoding).process is None:
        return None
    gaussian, groups, names, j = [], [], [], 0
    for c in spec.columns:
        w = c.width(spec.encoding)
        if c.role == "condition" or w == 0:  # not generated: not among the network's features
            continue
        if c.numeric:
            gaussian += range(j, j + w)
        else:
            groups.append((j, w))
            names.append(c.name)
        j += w
    if not groups:
        return None
    return Layout(get_encoding(spec.encoding).process, j, tuple(gaussian), tuple(groups), tuple(names))
