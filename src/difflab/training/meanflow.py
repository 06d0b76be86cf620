"""MeanFlow (Geng et al. 2025): the average velocity of the straight path's ODE, learnt from scratch through the
MeanFlow identity, so that one network call jumps from noise to data.

On the path z_t = (1 − t) x_0 + t ε the ODE's velocity is v(z, t) = E[ε − x_0 | z_t = z] (Liu et al. 2022). The
average velocity over [r, t] is u(z_t, r, t) = 1/(t − r) ∫_r^t v(z_τ, τ) dτ (eq. 3), so z_r = z_t − (t − r) u.
Differentiating (t − r) u(z_t, r, t) = ∫_r^t v(z_τ, τ) dτ in t, r fixed, gives the MeanFlow identity (eq. 6)

    u(z_t, r, t) = v(z_t, t) − (t − r) d/dt u(z_t, r, t),    d/dt u = v ∂_z u + ∂_t u    (eq. 8),

the total derivative along the trajectory. The network u_θ is regressed on the right-hand side with v replaced by
the row's conditional velocity ε − x_0 (as in flow matching, the conditional target has the same minimiser, eq. 10)
and the whole target stop-gradient (eq. 9):

    u_tgt = v − (t − r) (v ∂_z u_θ + ∂_t u_θ),

the bracket one forward-mode product, ``torch.func.jvp`` of (z, r, t) ↦ u_θ with tangent (v, 0, 1); the network
takes (t, h = t − r), whose tangent is then (1, 1). Rows with r = t have u_tgt = v and need no product, so only the
``jump_share`` of rows with r < t pay for it (:mod:`difflab.training.jumps`).

The paper's choices are the settings' defaults and are measured on difflab's toys in benchmarks/RESULTS.md
(section 16, benchmarks/one_step.py): 25 % of rows with r ≠ t (Table 1a), t and r two draws of logit-normal(−0.4, 1)
sorted so that t ≥ r (Table 1d), and the adaptive loss weight with p = 1 (Table 1e).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import jvp

from difflab.training.jumps import JumpObjective


class MeanFlow(JumpObjective):
    """The MeanFlow objective (Geng et al. 2025, Alg. 1) for a two-time network u(z, t, h), h = t − r."""

    default_power = 1.0  # Geng et al. 2025, Table 1e

    def draw(self, B: int, generator: torch.Generator, out: Tensor | None = None) -> Tensor:
        """[t, r] per row: two draws sorted so that t ≥ r; r = t on all but the ``jump_share`` of rows."""
        pair = self.draw_t(2 * B, generator).view(B, 2)
        t = pair.max(dim=1).values
        jumps = torch.stack([t, pair.min(dim=1).values], dim=1)
        k = self.jump_rows(B)
        return self.place_jumps(torch.stack([t, t], dim=1), jumps[:k], generator)

    def jump_targets(self, model: nn.Module, z: Tensor, t: Tensor, h: Tensor, v: Tensor,
                     labels: Tensor | None) -> Tensor:
        """u_tgt = v − h (w ∂_z u + ∂_t u), the total derivative by one JVP (Geng et al. 2025, eqs. 8-9), along w = v
        (``meanflow_tangent = "sample"``, the paper's) or w = u_θ(z, t, t), the network's instantaneous velocity
        (``"model"``): ∂_z u depends on z alone, so E[v ∂_z u | z_t] = E[v | z_t] ∂_z u = v(z_t, t) ∂_z u, and a w
        near v(z_t, t) keeps that mean while dropping the spread of ε − x_0 around it from the product."""
        extra = () if labels is None else (labels,)
        one = torch.ones_like(t)
        w = model(z, t, torch.zeros_like(h), *extra) if self.cfg.meanflow_tangent == "model" else v
        if hasattr(model, "forward_jvp"):  # the same product written out (tested against torch.func.jvp)
            _, dudt = model.forward_jvp(z, t, h, w, one, one, *extra)
        else:
            _, dudt = jvp(lambda z_, t_, h_: model(z_, t_, h_, *extra), (z, t, h), (w, one, one))
        return v - h.unsqueeze(1) * dudt
