"""Class labels of a conditional run's training rows, drawn with each step's rows and dropped at rate p_uncond.

Classifier-free guidance trains one network as both the conditional and the unconditional model: each row's label c
is replaced by the null label ∅ with probability p_uncond (Ho & Salimans 2022, Alg. 1). Here ∅ is the code K after the
classes 0..K-1. The draw writes into buffers allocated once, with the trainer's generator, so a CUDA graph of the
training step replays it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from difflab.config import DEFAULT_LABEL_DROPOUT
from difflab.errors import ConfigError


class LabelDropout:
    """``labels`` (N,): class codes in 0..``n_classes``−1 of the training rows, on ``device``; ``p``: p_uncond (None:
    :data:`~difflab.config.DEFAULT_LABEL_DROPOUT`); ``batch``: rows per step."""

    def __init__(self, labels: Tensor, n_classes: int, p: float | None, batch: int, device: torch.device) -> None:
        labels = labels.to(device, torch.long).reshape(-1)
        if n_classes < 1 or bool(((labels < 0) | (labels >= n_classes)).any()):
            raise ConfigError(f"labels: expected class codes in 0..{n_classes - 1}")
        self.labels, self.n_classes = labels, n_classes
        self.p = DEFAULT_LABEL_DROPOUT if p is None else float(p)
        self._y = torch.empty(batch, dtype=torch.long, device=device)
        self._u = torch.empty(batch, dtype=torch.float32, device=device)

    @property
    def null(self) -> int:
        return self.n_classes

    def draw(self, idx: Tensor | None, generator: torch.Generator) -> Tensor:
        """The labels of the rows ``idx`` (None: all rows, in order), each replaced by ∅ = K with probability p."""
        if idx is None:
            self._y.copy_(self.labels)
        else:
            torch.index_select(self.labels, 0, idx, out=self._y)
        torch.rand(self._u.shape, generator=generator, out=self._u)
        return self._y.masked_fill_(self._u < self.p, self.null)
