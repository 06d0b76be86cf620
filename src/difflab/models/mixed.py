"""One network for a table whose numbers are diffused by a Gaussian process and whose categories by a discrete one.

:class:`MixedNet` is difflab's residual MLP (:class:`~difflab.models.mlp.ResMLP`) with a wider input and output, as
TabDDPM's (Kotelnikov et al. 2023): it takes the noisy Gaussian features beside every categorical cell's state as a
one-hot vector (K levels, plus the mask for masked diffusion) and outputs the Gaussian prediction (what the
parameterization reads: ε, x_0, …) beside each column's logits of x̂_0 = p_θ(x_0 | x_t).

:class:`GaussianView` shows the samplers the Gaussian half only: ``view(x_t, t)`` is the Gaussian prediction of x_t
together with the categorical states of a :class:`~difflab.diffusion.categorical.Chains`, and it records the
logits there; so a :class:`~difflab.diffusion.denoiser.Denoiser` (parameterization, guidance) and every Gaussian
sampler work on it unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from difflab.diffusion.categorical import Chains
from difflab.models.mlp import ResMLP

BLOCK = 4096  # rows per network call while sampling: activations stay in cache (see sampling.api.DEFAULT_BLOCK)


class MixedNet(nn.Module):
    """A residual MLP from [Gaussian features (G), one-hot states] to [Gaussian output (G), logits (Σ K)].

    ``levels``: K of each categorical column; ``masked``: states have a mask token; T, width, depth, emb_dim,
    n_classes: as :class:`ResMLP`'s."""

    def __init__(self, gaussian: int, levels: list[int], *, masked: bool, T: int, width: int = 128, depth: int = 3,
                 emb_dim: int = 32, n_classes: int = 0) -> None:
        super().__init__()
        self.gaussian, self.levels, self.masked = int(gaussian), [int(k) for k in levels], bool(masked)
        states = sum(k + int(masked) for k in self.levels)
        self.inner = ResMLP(self.gaussian + states, T, width, depth, emb_dim, out_dim=self.gaussian + sum(self.levels),
                            n_classes=n_classes)
        self.T, self.n_classes = T, n_classes

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | int | None = None) -> Tensor:
        return self.inner(x, t, labels)

    def at_step(self, t: float, label: int | None = None) -> Callable[[Tensor], Tensor]:
        return self.inner.at_step(t, label)

    def split(self, out: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The output (B, G + Σ K) as the Gaussian part (B, G) and one logits tensor (B, K) per column."""
        logits, a = [], self.gaussian
        for k in self.levels:
            logits.append(out[:, a : a + k])
            a += k
        return out[:, : self.gaussian], logits


class GaussianView(nn.Module):
    """``net`` seen as a network of the Gaussian features alone, with the categorical states of ``chains``."""

    def __init__(self, net: MixedNet, chains: Chains) -> None:
        super().__init__()
        self.net, self.chains = net, chains
        self.T, self.n_classes = net.T, net.n_classes

    def _run(self, fn: Callable[[Tensor], Tensor], x: Tensor, label: int | None) -> Tensor:
        states = self.chains.onehot(x.dtype)
        outs = [fn(torch.cat([x[i : i + BLOCK], states[i : i + BLOCK]], 1)) for i in range(0, len(x), BLOCK)]
        gauss, logits = self.net.split(torch.cat(outs) if len(outs) != 1 else outs[0])
        self.chains.record(label, logits)
        return gauss

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | int | None = None) -> Tensor:
        if isinstance(labels, Tensor):
            raise ValueError("a mixed network's view takes one label for all rows (or none)")
        gauss, logits = self.net.split(self.net(torch.cat([x, self.chains.onehot(x.dtype)], 1), t, labels))
        self.chains.record(labels, logits)
        return gauss

    def at_step(self, t: float, label: int | None = None) -> Callable[[Tensor], Tensor]:
        fn = self.net.at_step(t, label)
        return lambda x: self._run(fn, x, label)
