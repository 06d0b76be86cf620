"""The joint reverse sampler of a table whose numbers follow a Gaussian process and whose categories a discrete one.

Any Gaussian sampler of the registry runs on the Gaussian features as it is; the categorical cells
(:class:`~difflab.diffusion.categorical.Chains`) ride along. The network sees both (its Gaussian view records the
logits of x̂_0 at every call, :class:`~difflab.models.mixed.GaussianView`), and the cells take their reverse jump
t → s, x_s ~ p_θ(x_s | x_t), from the logits of the call at t:

- after each of the sampler's jumps (its callback), so that the next call at s sees x_s of both parts;
- or earlier, when the sampler asks the network at a time below the cells' (Heun's second call at s).

Samplers that ask the network at times that do not descend jump by jump cannot be combined this way: the adaptive
probability-flow ODE (``ode``) and the consistency sampler are refused (:data:`REFUSED`).

``replace(state, s)``, if given, is called with a :class:`MixedState` (the Gaussian features and the level codes)
at the start (s = t_max) and after every jump, and returns the state to go on from: RePaint's hook (Lugmayr et al.
2022), which overwrites the observed cells with a draw of q(x_s | x_0 = observed).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from difflab.diffusion.categorical import Chains
from difflab.diffusion.parameterization import DenoiseFn
from difflab.diffusion.process import Process, Time
from difflab.errors import ConfigError
from difflab.sampling.registry import Callback, get_sampler

REFUSED = {
    "ode": "the adaptive probability-flow ODE solver picks its own times, where the categorical columns need "
           "reverse jumps on a descending grid",
    "consistency": "consistency sampling is for distilled students, which a table with discretely diffused "
                   "columns does not have",
}


@dataclass
class MixedState:
    """One time's state of B rows: Gaussian features (B, G) and level codes (B, C) (the mask = K of a column)."""

    gaussian: Tensor
    codes: Tensor


Replace = Callable[[MixedState, Time], MixedState]


def check_joint_sampler(name: str) -> None:
    """A one-line ConfigError for a sampler that cannot run beside the categorical columns."""
    if name in REFUSED:
        raise ConfigError(f"sampler '{name}' cannot sample a table with discretely diffused columns: {REFUSED[name]}; "
                          "use ddpm, ddim, dpm++, dpm++-sde, heun or heun-sde")


def sample_joint(
    denoise: DenoiseFn,
    chains: Chains,
    x: Tensor,
    diffusion: Process,
    ts: Sequence[Time],
    *,
    sampler: str = "ddpm",
    generator: torch.Generator | None = None,
    callback: Callback = None,
    replace: Replace | None = None,
    options: dict[str, Any] | None = None,
) -> Tensor:
    """The Gaussian features x_0 (B, G) from x = x_T, and ``chains`` stepped to t = 0 beside them (its ``codes``
    then hold the levels). ``denoise`` must record its logits into ``chains`` (a Denoiser over a GaussianView)."""
    check_joint_sampler(sampler)
    fn = get_sampler(sampler)
    chains.t = ts[0]

    def swap(xs: Tensor, s: Time) -> None:
        new = replace(MixedState(xs, chains.codes), s)
        if new.gaussian is not xs:
            xs.copy_(new.gaussian)
        chains.codes = new.codes

    def advancing(xt: Tensor, t: Time):  # noqa: ANN202
        chains.advance(t, generator)
        return denoise(xt, t)

    def after(i: int, s: Time, xs: Tensor) -> None:
        chains.advance(s, generator)
        if replace is not None:
            swap(xs, s)
        if callback is not None:
            callback(i, s, xs)

    if replace is not None:
        swap(x, ts[0])
    if x.shape[1] == 0:  # categorical columns only: the grid's jumps, one network call each
        for i, (t, s) in enumerate(zip(ts[:-1], ts[1:], strict=True), start=1):
            advancing(x, t)
            after(i, s, x)
        return x
    return fn(advancing, x, diffusion, ts, generator=generator, callback=after, **(options or {}))
