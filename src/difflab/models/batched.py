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
    if type(model) is not SeedMLP or [type(m) for m in model.model] != [nn.Linear, nn.LeakyReLU] * 4 + [nn.Linear]:
        return False
    shapes = [tuple(p.shape) for p in model.parameters()]
    slopes = [m.negative_slope for m in model.model if isinstance(m, nn.LeakyReLU)]
    return shapes == seed_shapes(model.dim, model.T) and all(s == SLOPE for s in slopes)


def _two_d(x: Tensor, M: int) -> Tensor:
    """The one model's 2-D view when M = 1 (BLAS runs a plain matrix product faster than a batch of one)."""
    return x[0] if M == 1 else x


def _addmm(out: Tensor, bias: Tensor, a: Tensor, b: Tensor) -> None:
    """out = bias + a @ b, for matrices or stacks (M, n, k) @ (M, k, p).

    On the CPU a stack goes matrix by matrix: torch's CPU ``baddbmm``/``bmm`` ran these shapes at a fifth of the
    speed of ``addmm``/``mm`` (2-core AMD EPYC, torch 2.13), while M calls cost only M × a few µs."""
    if out.dim() == 2:
        torch.addmm(bias, a, b, out=out)
    elif out.device.type == "cpu":
        for m in range(out.shape[0]):
            torch.addmm(bias[m], a[m], b[m], out=out[m])
    else:
        torch.baddbmm(bias, a, b, out=out)


def _mm(out: Tensor, a: Tensor, b: Tensor) -> None:
    if out.dim() == 2:
        torch.mm(a, b, out=out)
    elif out.device.type == "cpu":
        for m in range(out.shape[0]):
            torch.mm(a[m], b[m], out=out[m])
    else:
        torch.bmm(a, b, out=out)


class StackedSeedMLP:
    """Forward and backward of M SeedMLPs over a batch of B rows each.

    ``params`` and ``grads`` are lists of tensors shaped (M, *shape) for shape in :func:`seed_shapes`; the network
    reads ``params`` in place (an optimizer may update them between steps) and ``backward`` overwrites ``grads``.
    Usage per step: write x_t into :attr:`xt` (M, B, D), then ``forward(t)`` and ``backward(target, loss)``.
    Every view a step uses is made here, once: a step is its arithmetic and nothing else.
    """

    def __init__(
        self, params: list[Tensor], grads: list[Tensor], batch: int, *, share: StackedSeedMLP | None = None
    ) -> None:
        """``share``: another network of the same M and B whose work buffers this one reuses (networks that run
        one after another; on a CPU they then stay in cache)."""
        self.M, _, self.T = params[0].shape
        self.D = D = params[-1].shape[-1]
        self.B = B = batch
        M, dev, f32 = self.M, params[0].device, torch.float32
        p = [q.detach() for q in params]  # views: they follow in-place updates of the parameters
        weights, biases = p[2::2], p[3::2]  # (M, out, in), (M, out)
        if share is None:
            wmax = max(w.shape[1] for w in weights)
            self._bufs = {
                "h0": torch.empty(M, B, D + 1, device=dev, dtype=f32),
                "acts": [torch.empty(M, B, w.shape[1], device=dev, dtype=f32) for w in weights],
                "flat": [torch.empty(M * B * wmax, device=dev, dtype=f32) for _ in range(2)],
                "tm1": torch.empty(M, B, device=dev, dtype=torch.long),
                "code": torch.empty(M, B, device=dev, dtype=f32),
                "gcode": torch.empty(M, B, 1, device=dev, dtype=f32),
            }
        else:
            self._bufs = share._bufs
        b = self._bufs
        self.h0, self.acts, flat = b["h0"], b["acts"], b["flat"]
        self._tm1, self._code, self._gcode = b["tm1"], b["code"], b["gcode"]
        self.xt = self.h0[..., :D]
        two = lambda x: _two_d(x, M)  # noqa: E731
        # time code: W[:, t − 1] + b, gathered (M = 1: index_select on the one row)
        self._code_w, self._code_b = p[0].reshape(M, self.T), p[1]
        self._code_gw, self._code_gb = grads[0].reshape(M, self.T), grads[1]
        self._code_col = self.h0[..., D]
        # forward: (output, bias, input, Wᵀ) per layer
        ins = [self.h0, *self.acts[:-1]]
        self._fwd = [(two(a), two(b.unsqueeze(1)), two(h), two(w.transpose(1, 2)))
                     for a, b, h, w in zip(self.acts, biases, ins, weights, strict=True)]
        # backward, last layer first: (∂W out, Gᵀ, input, ∂b out, G, G 2-D, next G out or None, W); the G's
        # alternate between two buffers
        widths = [w.shape[1] for w in weights]
        gs = [flat[k % 2][: M * B * widths[-1 - k]].view(M, B, widths[-1 - k]) for k in range(len(weights))]
        self._grad_out = gs[0]
        self._bwd = []
        for k in range(len(weights) - 1, -1, -1):
            g = gs[len(weights) - 1 - k]
            g_in = gs[len(weights) - k] if k > 0 else None
            self._bwd.append((two(grads[2 + 2 * k]), two(g.transpose(1, 2)), two(ins[k]), grads[3 + 2 * k], g,
                              two(g), None if g_in is None else two(g_in), two(weights[k])))
        self._g_first, self._gcode_2d = two(gs[-1]), two(self._gcode)
        self._first_w_code = two(weights[0][:, :, D:])  # (M, 100, 1): the first layer's time-code column

    def forward(self, t: Tensor) -> Tensor:
        """Network output (M, B, D) for x_t in :attr:`xt` and steps ``t`` (M, B) in 1..T."""
        torch.sub(t, 1, out=self._tm1)
        if self.M == 1:
            torch.index_select(self._code_w[0], 0, self._tm1[0], out=self._code[0])
        else:
            torch.gather(self._code_w, 1, self._tm1, out=self._code)
        torch.add(self._code, self._code_b, out=self._code_col)
        last = len(self._fwd) - 1
        for k, (a, b, h, wt) in enumerate(self._fwd):
            _addmm(a, b, h, wt)
            if k < last:
                torch.nn.functional.leaky_relu(a, SLOPE, inplace=True)
        return self.acts[-1]

    def backward(self, target: Tensor, loss: Tensor) -> None:
        """Mean squared error against ``target`` (M, B, D) into ``loss`` (M,); its gradients into ``grads``.

        Call after :meth:`forward`, which left the activations this needs."""
        g = self._grad_out
        torch.sub(self.acts[-1], target, out=g)
        flat = g.view(self.M, -1)
        torch.linalg.vecdot(flat, flat, out=loss)  # Σ g², a quarter of square-then-mean's time here
        loss.div_(self.B * self.D)
        g.mul_(2.0 / (self.B * self.D))
        for gw, gt, h_in, gb, g, g2, g_in, w in self._bwd:
            _mm(gw, gt, h_in)
            torch.sum(g, dim=1, out=gb)
            if g_in is not None:  # into the layer below: G W, times LeakyReLU' read off its output h_in
                _mm(g_in, g2, w)
                torch.ops.aten.leaky_relu_backward.grad_input(g_in, h_in, SLOPE, True, grad_input=g_in)
        # The time code enters as the first layer's last input column.
        _mm(self._gcode_2d, self._g_first, self._first_w_code)
        gcode = self._gcode.view(self.M, self.B)
        self._code_gw.zero_()
        self._code_gw.scatter_add_(1, self._tm1, gcode)
        torch.sum(gcode, dim=1, keepdim=True, out=self._code_gb)
