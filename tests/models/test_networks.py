"""Networks at one fixed step (``at_step``, what samplers call) compute what ``forward`` computes for that step."""

from __future__ import annotations

import pytest
import torch

from difflab.diffusion import Denoiser
from difflab.models import build_model
from helpers import diffusion as make_diffusion

T = 12


@pytest.mark.parametrize("name, options", [("seed", {}), ("mlp", {"width": 32, "depth": 2})])
def test_at_step_equals_forward_for_every_step(dim: int, name: str, options: dict) -> None:
    torch.manual_seed(dim)
    model = build_model(name, dim, T, **options).eval()
    for p in model.parameters():  # away from the initial biases, so that every folded term matters
        p.data.add_(0.3 * torch.randn_like(p))
    x = 2.0 * torch.randn(257, dim)
    for t in range(1, T + 1):
        with torch.no_grad():
            expect = model(x, torch.full((len(x),), t, dtype=torch.long))
        # float32 sums in another order: tolerance relative to the output's scale
        scale = float(expect.abs().max())
        torch.testing.assert_close(model.at_step(t)(x), expect, rtol=1e-5, atol=1e-5 * max(scale, 1.0))


def test_seed_at_step_matches_the_tutorials_one_hot_network(dim: int) -> None:
    """Against an independent computation: the tutorial's literal layers, one-hot time code and concatenation."""
    torch.manual_seed(1)
    model = build_model("seed", dim, T).eval()
    x, t = torch.randn(64, dim), 5
    with torch.no_grad():
        one_hot = torch.nn.functional.one_hot(torch.full((64,), t - 1), T).float()
        expect = model.model(torch.cat([x, model.t_encoder(one_hot)], dim=1))
    torch.testing.assert_close(model.at_step(t)(x), expect, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["seed", "mlp"])
def test_at_step_rejects_steps_outside_1_to_T(name: str) -> None:
    model = build_model(name, 2, T)
    for t in (0, T + 1):
        with pytest.raises(ValueError, match=f"outside 1..{T}"):
            model.at_step(t)


def test_denoiser_uses_the_fixed_step_path_and_keeps_its_parameterization(dim: int) -> None:
    torch.manual_seed(2)
    d = make_diffusion("cosine", T)
    model = build_model("mlp", dim, T, width=16, depth=1).eval()
    x = torch.randn(50, dim)
    with torch.no_grad():
        out = model(x, torch.full((50,), 7, dtype=torch.long))
    pred = Denoiser(model, d, "v")(x, 7)
    torch.testing.assert_close(pred.eps, d.eps_from_v(x, 7, out), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(pred.x0, d.x0_from_v(x, 7, out), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, options", [("seed", {}), ("mlp", {"width": 16, "depth": 1})])
def test_denoiser_follows_weights_changed_after_its_first_call(name: str, options: dict) -> None:
    """The denoiser keeps each step's function; an in-place update or a replaced layer must not leave it stale."""
    torch.manual_seed(3)
    d = make_diffusion("poly", T)
    model = build_model(name, 2, T, **options).eval()
    denoise, x = Denoiser(model, d), torch.randn(40, 2)

    def expect() -> torch.Tensor:
        with torch.no_grad():
            return model(x, torch.full((40,), 4, dtype=torch.long))

    torch.testing.assert_close(denoise(x, 4).eps, expect(), rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # as an optimizer step would
    torch.testing.assert_close(denoise(x, 4).eps, expect(), rtol=1e-5, atol=1e-6)
    model.load_state_dict(build_model(name, 2, T, **options).state_dict())
    torch.testing.assert_close(denoise(x, 4).eps, expect(), rtol=1e-5, atol=1e-6)
