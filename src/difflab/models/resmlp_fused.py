"""The residual MLP's (:class:`~difflab.models.mlp.ResMLP`) forward and backward written out, for training.

Autograd spends much of a small network's step on bookkeeping: recording a graph of ~100 nodes and walking it
back, each node a dispatch of its own. Here the same arithmetic runs as a plain sequence of torch calls that keeps
what the backward needs (a :class:`Tape`) and writes the gradients into given tensors. With Z = H Wᵀ + b and
G = ∂L/∂Z the chain rule gives (Rumelhart et al. 1986)

    ∂L/∂W = Gᵀ H,   ∂L/∂b = Σ_rows G,   ∂L/∂H = G W,

and the pointwise pieces use torch's own backward kernels (``silu_backward``, ``native_layer_norm_backward``, the
ones autograd calls), so the gradients are autograd's up to the order of a few floating-point sums.

A block is h ← h + W₂ SiLU(W₁ LN(h) + b₁ + e) + b₂, e the row's time embedding (plus its class embedding). e enters
every block, so ∂L/∂e is the sum of the blocks' ∂L/∂(W₁ LN(h) + b₁ + e), taken back once through the time MLP.
With whole steps t and fewer steps T than rows, e is gathered from a table of the T steps' embeddings (as
:meth:`ResMLP.time_embedding` does) and ∂L/∂table is the scatter-add of the rows' ∂L/∂e.

:meth:`FusedResMLP.regression_grad` is the simple loss (1/B) Σ_rows w_row ‖y − target‖² / D (w = 1 without
weights) of :class:`difflab.training.objective.Objective` and its gradient 2 w_row (y − target) / (B D).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from difflab.models.mlp import ResidualBlock, ResMLP, sinusoidal_embedding

_LN_BACK = torch.ops.aten.native_layer_norm_backward
_SILU_BACK = torch.ops.aten.silu_backward
_ALL = [True, True, True]


def is_plain_resmlp(model: nn.Module) -> bool:
    """True for an unmodified :class:`ResMLP` (D outputs, or 2D with learned variances): the network computed
    here."""
    if type(model) is not ResMLP or model.out.out_features not in (model.dim, 2 * model.dim):
        return False
    if [type(m) for m in model.time_mlp] != [nn.Linear, nn.SiLU, nn.Linear] or type(model.act) is not nn.SiLU:
        return False
    if any(type(b) is not ResidualBlock or type(b.act) is not nn.SiLU for b in model.blocks):
        return False
    norms = [model.out_norm, *(b.norm for b in model.blocks)]
    return all(type(n) is nn.LayerNorm and n.elementwise_affine and n.bias is not None for n in norms)


@dataclass
class Tape:
    """What one forward keeps for its backward (rows of one block of the batch)."""

    x: Tensor  # the network's input (R, D)
    feat: Tensor  # sinusoidal features the time MLP read (R or T, emb_dim)
    a1: Tensor  # the time MLP's first pre-activation
    z1: Tensor  # ... and its SiLU
    rows: Tensor | None  # row → table index (whole steps gathered from a table), else None
    labels: Tensor | None
    h: list[Tensor]  # the residual stream h_0..h_depth
    blocks: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]]  # per block: LN(h), mean, rstd, pre-activation, SiLU
    out: tuple[Tensor, Tensor, Tensor, Tensor]  # final LN(h), mean, rstd, its SiLU


class FusedResMLP:
    """Forward (:meth:`forward`) and backward (:meth:`backward`) of ``model``, a plain :class:`ResMLP`
    (:func:`is_plain_resmlp`), on the model's parameters as they are at each call (an optimizer may update them
    in place between calls)."""

    def __init__(self, model: ResMLP) -> None:
        if not is_plain_resmlp(model):
            raise TypeError(f"FusedResMLP computes an unmodified ResMLP, not {type(model).__name__}")
        self.model = model
        self.p = {n: q.detach() for n, q in model.named_parameters()}
        self.names = list(self.p)
        self.width, self.depth = model.inp.out_features, len(model.blocks)
        self.eps = [b.norm.eps for b in model.blocks] + [model.out_norm.eps]

    def _lin(self, name: str) -> tuple[Tensor, Tensor]:
        return self.p[name + ".weight"], self.p[name + ".bias"]

    # --- forward -------------------------------------------------------------------------------------------------
    def forward(self, x: Tensor, cond: Tensor, labels: Tensor | None = None, *, batch: int | None = None
                ) -> tuple[Tensor, Tape]:
        """The output (R, out) for input ``x`` (R, D), time input ``cond`` (R,) as :meth:`ResMLP.forward` takes it
        and class codes ``labels`` (R,) (conditional networks); ``batch``: the rows of the whole batch these R
        rows belong to (it decides, as in ResMLP, whether whole steps are gathered from a table)."""
        m, W = self.model, self.width
        if 0 < m.T < (batch or len(cond)) and not cond.is_floating_point():  # ResMLP.time_embedding's table
            steps = torch.arange(1, m.T + 1, device=cond.device, dtype=torch.float32)
            feat, rows = sinusoidal_embedding(steps / m.T, m.emb_dim), cond - 1
        else:
            feat, rows = sinusoidal_embedding(m._u(cond), m.emb_dim), None
        w1, b1 = self._lin("time_mlp.0")
        w2, b2 = self._lin("time_mlp.2")
        a1 = torch.addmm(b1, feat, w1.t())
        z1 = F.silu(a1)
        emb = torch.addmm(b2, z1, w2.t())
        if rows is not None:
            emb = emb[rows]
        if labels is not None:
            emb = emb + F.embedding(labels, self.p["label_emb.weight"])
        h = [torch.addmm(self.p["inp.bias"], x, self.p["inp.weight"].t())]
        blocks = []
        for k in range(self.depth):
            pre_ = f"blocks.{k}."
            n, mean, rstd = torch.native_layer_norm(h[k], [W], *self._lin(pre_ + "norm"), self.eps[k])
            wa, ba = self._lin(pre_ + "fc1")
            pre = torch.addmm(ba, n, wa.t()).add_(emb)
            q = F.silu(pre)
            wb, bb = self._lin(pre_ + "fc2")
            h.append(torch.addmm(bb, q, wb.t()).add_(h[k]))
            blocks.append((n, mean, rstd, pre, q))
        n, mean, rstd = torch.native_layer_norm(h[-1], [W], *self._lin("out_norm"), self.eps[-1])
        r = F.silu(n)
        wo, bo = self._lin("out")
        y = torch.addmm(bo, r, wo.t())
        return y, Tape(x, feat, a1, z1, rows, labels, h, blocks, (n, mean, rstd, r))

    # --- backward ------------------------------------------------------------------------------------------------
    def backward(self, tape: Tape, gy: Tensor, grads: dict[str, Tensor]) -> None:
        """∂L/∂θ for ∂L/∂y = ``gy`` (R, out), written into ``grads`` (parameter name → tensor of its shape)."""
        W = self.width
        n_o, mean_o, rstd_o, r = tape.out
        wo, _ = self._lin("out")
        torch.mm(gy.t(), r, out=grads["out.weight"])
        torch.sum(gy, 0, out=grads["out.bias"])
        gr = _SILU_BACK(torch.mm(gy, wo), n_o)
        g, gg, gb = _LN_BACK(gr, tape.h[-1], [W], mean_o, rstd_o, *self._lin("out_norm"), _ALL)
        grads["out_norm.weight"].copy_(gg)
        grads["out_norm.bias"].copy_(gb)
        ge = None
        for k in range(self.depth - 1, -1, -1):
            pre_ = f"blocks.{k}."
            n, mean, rstd, pre, q = tape.blocks[k]
            torch.mm(g.t(), q, out=grads[pre_ + "fc2.weight"])
            torch.sum(g, 0, out=grads[pre_ + "fc2.bias"])
            gp = _SILU_BACK(torch.mm(g, self.p[pre_ + "fc2.weight"]), pre)
            torch.mm(gp.t(), n, out=grads[pre_ + "fc1.weight"])
            torch.sum(gp, 0, out=grads[pre_ + "fc1.bias"])
            ge = gp if ge is None else ge.add_(gp)  # (gp of the block above is used up: summed in place)
            gx, gg, gb = _LN_BACK(torch.mm(gp, self.p[pre_ + "fc1.weight"]), tape.h[k], [W], mean, rstd,
                                  *self._lin(pre_ + "norm"), _ALL)
            grads[pre_ + "norm.weight"].copy_(gg)
            grads[pre_ + "norm.bias"].copy_(gb)
            g = g.add_(gx)  # the residual: ∂L/∂h_k = ∂L/∂h_{k+1} + the block's share
        torch.mm(g.t(), tape.x, out=grads["inp.weight"])
        torch.sum(g, 0, out=grads["inp.bias"])
        self._embedding_backward(tape, ge, grads)

    def _embedding_backward(self, tape: Tape, ge: Tensor, grads: dict[str, Tensor]) -> None:
        if tape.labels is not None:  # the embedding's backward: each row's ∂L/∂e into its class's row
            gl = grads["label_emb.weight"]
            gl.zero_()
            gl.index_add_(0, tape.labels, ge)
        if tape.rows is not None:  # the gather's backward: each row's ∂L/∂e into its step's table row
            ge = torch.zeros(tape.z1.shape, dtype=ge.dtype, device=ge.device).index_add_(0, tape.rows, ge)
        w2, _ = self._lin("time_mlp.2")
        torch.sum(ge, 0, out=grads["time_mlp.2.bias"])
        torch.mm(ge.t(), tape.z1, out=grads["time_mlp.2.weight"])
        ga1 = _SILU_BACK(torch.mm(ge, w2), tape.a1)
        torch.sum(ga1, 0, out=grads["time_mlp.0.bias"])
        torch.mm(ga1.t(), tape.feat, out=grads["time_mlp.0.weight"])

    # --- the simple loss -----------------------------------------------------------------------------------------
    @staticmethod
    def regression_grad(y: Tensor, target: Tensor, weight: Tensor | None, batch: int) -> tuple[Tensor, Tensor]:
        """(loss share, ∂L/∂y) of these rows for L = (1/B) Σ_rows w ‖y − target‖² / D over a batch of B = ``batch``
        rows; overwrites ``y``."""
        diff = y.sub_(target)
        scale = 2.0 / (batch * diff.shape[1])
        if weight is None:
            flat = diff.view(-1)
            return torch.linalg.vecdot(flat, flat) * (0.5 * scale), diff.mul_(scale)
        loss = torch.dot(torch.linalg.vecdot(diff, diff), weight) * (0.5 * scale)
        return loss, diff.mul_(weight.unsqueeze(1) * scale)
