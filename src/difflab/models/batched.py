"""M copies of the tutorial's network (``SeedMLP``) as stacked tensors, with the backward pass written out.

Every parameter carries a leading model axis: the k-th Linear's weight is (M, out, in), activations are (M, B, width).
One matmul call then serves all M models (``torch.baddbmm``/``bmm``; plain ``addmm``/``mm`` when M = 1), and no
autograd graph is built: for Z = H Wᵀ + b and A = LeakyReLU(Z) the chain rule gives

    ∂L/∂W = Gᵀ H,   ∂L/∂b = Σ_rows G,   ∂L/∂H = G W,   LeakyReLU'(z) = 1 if z > 0 else slope,

with G = ∂L/∂Z (Rumelhart et al. 1986). The slope is positive, so sign(A) = sign(Z) and the activation can overwrite
Z in place. Every buffer is allocated once; a step writes the loss and all gradients into given tensors.

The time code is the tutorial's Linear_T→1(one_hot(t − 1)) computed as the gather W[:, t − 1] + b; its gradient is
the matching scatter-add of ∂L/∂(code) into the T weights.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from difflab.models.seed import SeedMLP

SLOPE = 0.01  # nn.LeakyReLU's default slope, the tutorial's


def seed_shapes(dim: int, T: int) -> list[tuple[int, ...]]:
    """Shapes of ``SeedMLP(dim, T).parameters()`` in order: t_encoder (weight, bias), then 5 Linear layers."""
    widths = [dim + 1, 100, 100, 100, 20, dim]
    shapes: list[tuple[int, ...]] = [(1, T), (1,)]
    for n_in, n_out in zip(widths[:-1], widths[1:], strict=True):
        shapes += [(n_out, n_in), (n_out,)]
    return shapes


def is_plain_seed(model: nn.Module) -> bool:
    """True if ``model`` is an unmodified SeedMLP, whose function this module computes."""
    if type(model) is not SeedMLP:
        return False
    acts = [m for m in model.model if isinstance(m, nn.LeakyReLU)]
    shapes = [tuple(p.shape) for p in model.parameters()]
    return shapes == seed_shapes(model.dim, model.T) and all(a.negative_slope == SLOPE for a in acts)


def _addmm(out: Tensor, bias: Tensor, a: Tensor, b: Tensor) -> None:
    """out = bias + a @ b for stacks (M, n, k) @ (M, k, p); a 2-D call when M = 1, which BLAS runs faster."""
    if out.shape[0] == 1:
        torch.addmm(bias[0], a[0], b[0], out=out[0])
    else:
        torch.baddbmm(bias, a, b, out=out)


def _mm(out: Tensor, a: Tensor, b: Tensor) -> None:
    if out.shape[0] == 1:
        torch.mm(a[0], b[0], out=out[0])
    else:
        torch.bmm(a, b, out=out)


class StackedSeedMLP:
    """Forward and backward of M SeedMLPs over a batch of B rows each.

    ``params`` and ``grads`` are lists of tensors shaped (M, *shape) for shape in :func:`seed_shapes`; the network
    reads ``params`` in place (an optimizer may update them between steps) and ``backward`` overwrites ``grads``.
    Usage per step: write x_t into :attr:`xt` (M, B, D), then ``forward(t)`` and ``backward(t, target, loss)``.
    """

    def __init__(self, params: list[Tensor], grads: list[Tensor], batch: int) -> None:
        self.M, _, self.T = params[0].shape
        self.D = params[-1].shape[-1]
        self.B = batch
        p = [q.detach() for q in params]
        self.code_w = p[0].reshape(self.M, self.T)  # views: they follow in-place updates of the parameters
        self.code_b = p[1]  # (M, 1)
        self.weights = p[2::2]  # (M, out, in)
        self.weights_t = [w.transpose(1, 2) for w in self.weights]
        self.biases = [b.unsqueeze(1) for b in p[3::2]]  # (M, 1, out)
        self.code_gw = grads[0].reshape(self.M, self.T)
        self.code_gb = grads[1]
        self.gweights, self.gbiases = grads[2::2], grads[3::2]
        self.first_w_code = self.weights[0][:, :, self.D :]  # (M, 100, 1): the first layer's time-code column
        dev, f32 = params[0].device, torch.float32
        M, B = self.M, batch
        self.h0 = torch.empty(M, B, self.D + 1, device=dev, dtype=f32)
        self.xt = self.h0[..., : self.D]
        self.code = torch.empty(M, B, device=dev, dtype=f32)
        self.acts = [torch.empty(M, B, w.shape[1], device=dev, dtype=f32) for w in self.weights]
        wmax = max(w.shape[1] for w in self.weights)
        self._g = [torch.empty(M * B * wmax, device=dev, dtype=f32) for _ in range(2)]
        self._gcode = torch.empty(M, B, 1, device=dev, dtype=f32)
        self._tm1 = torch.empty(M, B, device=dev, dtype=torch.long)

    def _gview(self, k: int, width: int) -> Tensor:
        return self._g[k][: self.M * self.B * width].view(self.M, self.B, width)

    def forward(self, t: Tensor) -> Tensor:
        """Network output (M, B, D) for x_t in :attr:`xt` and steps ``t`` (M, B) in 1..T."""
        torch.sub(t, 1, out=self._tm1)
        if self.M == 1:
            torch.index_select(self.code_w[0], 0, self._tm1[0], out=self.code[0])
        else:
            torch.gather(self.code_w, 1, self._tm1, out=self.code)
        torch.add(self.code, self.code_b, out=self.h0[..., self.D])
        h = self.h0
        last = len(self.acts) - 1
        for k, (wt, b, a) in enumerate(zip(self.weights_t, self.biases, self.acts, strict=True)):
            _addmm(a, b, h, wt)
            if k < last:
                torch.nn.functional.leaky_relu(a, SLOPE, inplace=True)
            h = a
        return h

    def backward(self, target: Tensor, loss: Tensor, rows: int | None = None) -> None:
        """Mean squared error against ``target`` (M, B, D) into ``loss`` (M,); its gradients into ``grads``.

        ``rows``: the mean is over that many rows of which these B are a part (the rest computed elsewhere, their
        losses and gradients to be added); default B. Call after :meth:`forward`, which left the activations."""
        g = self._gview(0, self.D)
        torch.sub(self.acts[-1], target, out=g)
        if rows is None:
            torch.mean(torch.square(g), dim=(1, 2), out=loss)
        else:
            torch.sum(torch.square(g), dim=(1, 2), out=loss)
            loss.div_(rows * self.D)
        g.mul_(2.0 / ((rows or self.B) * self.D))
        k_buf = 0
        for k in range(len(self.weights) - 1, -1, -1):
            h_in = self.acts[k - 1] if k > 0 else self.h0
            _mm(self.gweights[k], g.transpose(1, 2), h_in)
            torch.sum(g, dim=1, out=self.gbiases[k])
            if k == 0:
                break
            k_buf ^= 1
            g_in = self._gview(k_buf, self.weights[k].shape[2])
            _mm(g_in, g, self.weights[k])
            torch.ops.aten.leaky_relu_backward.grad_input(g_in, h_in, SLOPE, True, grad_input=g_in)
            g = g_in
        # The time code enters as the first layer's last input column.
        _mm(self._gcode, g, self.first_w_code)
        gcode = self._gcode.view(self.M, self.B)
        self.code_gw.zero_()
        self.code_gw.scatter_add_(1, self._tm1, gcode)
        torch.sum(gcode, dim=1, keepdim=True, out=self.code_gb)
