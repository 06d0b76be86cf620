"""Multinomial and masked diffusion against independent computations: the Markov chain simulated step by step,
Bayes' rule on explicit transition matrices, the KL summed by hand, and the reverse chain of the optimal x̂_0."""

from __future__ import annotations

import math

import pytest
import torch

from difflab.diffusion import GaussianDiffusion, make_schedule
from difflab.diffusion.categorical import CATEGORICAL, Chains, make_categorical
from difflab.errors import ConfigError

T = 6


@pytest.fixture(autouse=True)
def one_thread():
    """Element-wise work on a few 10⁴ rows: one thread (two fight over a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def process(name: str):
    return make_categorical(name, GaussianDiffusion(make_schedule("cosine", T, warn=False)))


def step_matrix(name: str, keep: float, k: int) -> torch.Tensor:
    """Q[i, j] = q(x_t = j | x_s = i) for one jump with keep rate ``keep``, written out state by state."""
    m = k + (name == "masked")
    q = torch.zeros(m, m, dtype=torch.float64)
    for i in range(m):
        for j in range(m):
            if name == "multinomial":
                q[i, j] = keep * (i == j) + (1 - keep) / k
            else:  # masked: a level is kept or absorbed into the mask (state k), which stays
                q[i, j] = (keep * (i == j) + (1 - keep) * (j == k)) if i < k else float(j == k)
    return q


def cumulative(name: str, p, t: int, k: int) -> torch.Tensor:
    """Q̄_t = Q_1 Q_2 … Q_t from the one-step keep rates α_t = ᾱ_t / ᾱ_{t−1}."""
    out = torch.eye(k + (name == "masked"), dtype=torch.float64)
    for s in range(1, t + 1):
        out = out @ step_matrix(name, p.process.alpha_bar(s) / p.process.alpha_bar(s - 1), k)
    return out


@pytest.mark.parametrize("name", list(CATEGORICAL))
@pytest.mark.parametrize("k", [2, 10])
def test_forward_marginal_matches_simulated_chain(name: str, k: int) -> None:
    """q(x_t | x_0) in closed form vs. the chain x_0 → x_1 → … → x_t simulated step by step; q_sample alike."""
    p, g, n = process(name), torch.Generator().manual_seed(k), 20_000
    x0 = torch.randint(0, k, (n,), generator=g)
    x = x0.clone()
    for t in range(1, T + 1):
        x = p.q_forward(x, t - 1, t, g, k)
        if t in (1, 3, T):
            probs = p.q_probs(x0, t, k)
            direct = p.q_sample(x0, t, g, k)
            for sample in (x, direct):
                # per x_0 level: observed frequency of each x_t state vs q(x_t | x_0), within 5 standard errors
                for level in (0, k - 1):
                    rows = x0 == level
                    freq = torch.bincount(sample[rows], minlength=p.states(k)).double() / rows.sum()
                    want = probs[rows][0]
                    se = (want * (1 - want) / rows.sum()).sqrt() + 1e-3
                    assert torch.all((freq - want).abs() < 5 * se), (t, level, freq, want)
            assert torch.allclose(probs[0], cumulative(name, p, t, k)[x0[0]], atol=1e-12)


@pytest.mark.parametrize("name", list(CATEGORICAL))
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("t,s", [(1, 0), (2, 1), (5, 4), (6, 2), (4, 0)])
def test_posterior_is_bayes(name: str, k: int, t: int, s: int) -> None:
    """q(x_s | x_t, x_0) = q(x_t | x_s) q(x_s | x_0) / q(x_t | x_0) from explicit transition matrices, every x_0, x_t."""
    p = process(name)
    states = p.states(k)
    jump = cumulative(name, p, s, k).inverse() @ cumulative(name, p, t, k) if s else cumulative(name, p, t, k)
    to_s = cumulative(name, p, s, k)
    x0 = torch.arange(k).repeat_interleave(states)
    xt = torch.arange(states).repeat(k)
    got = p.posterior(x0, xt, t, s, k)
    for row, (a, b) in enumerate(zip(x0.tolist(), xt.tolist(), strict=True)):
        joint = jump[:, b] * to_s[a]
        if joint.sum() < 1e-12:  # x_t impossible from x_0 (an unmasked level other than x_0's)
            continue
        assert torch.allclose(got[row], joint / joint.sum(), atol=1e-9), (a, b, got[row], joint / joint.sum())


@pytest.mark.parametrize("name", list(CATEGORICAL))
@pytest.mark.parametrize("k", [2, 10])
def test_loss_is_the_closed_form_kl(name: str, k: int) -> None:
    """L_t = KL(q(x_{t−1} | x_t, x_0) ‖ p_θ(x_{t−1} | x_t)) with p_θ from explicit matrices and x̂_0 plugged in
    (t ≥ 2), −log p_θ(x_0 | x_1) at t = 1; for masked diffusion also its closed form (ᾱ_{t−1} − ᾱ_t)/(1 − ᾱ_t)
    · (−log x̂_0[x_0]) on masked cells, 0 elsewhere."""
    p, g = process(name), torch.Generator().manual_seed(3)
    n = 64
    logits = torch.randn(n, k, generator=g, dtype=torch.float64)
    x0 = torch.randint(0, k, (n,), generator=g)
    t = torch.randint(1, T + 1, (n,), generator=g)
    xt = torch.stack([p.q_sample(x0[i : i + 1], int(t[i]), g, k)[0] for i in range(n)])
    got = p.loss_terms(logits, x0, xt, t)
    x0_hat = torch.softmax(logits, 1)
    for i in range(n):
        ti = int(t[i])
        one = step_matrix(name, p.process.alpha_bar(ti) / p.process.alpha_bar(ti - 1), k)[:, xt[i]]
        before = cumulative(name, p, ti - 1, k)[: k]  # rows: x_0 levels
        q = one * before[x0[i]]
        q = q / q.sum()
        pm = one * (x0_hat[i] @ before)
        pm = pm / pm.sum()
        on = q > 0
        want = -math.log(pm[x0[i]]) if ti == 1 else float((q[on] * (q[on].log() - pm[on].log())).sum())
        assert got[i].item() == pytest.approx(want, abs=1e-9)
        if name == "masked":
            ab = [p.process.alpha_bar(v) for v in (ti - 1, ti)]
            closed = (ab[0] - ab[1]) / (1 - ab[1]) * -math.log(x0_hat[i, x0[i]]) if xt[i] == k else 0.0
            assert got[i].item() == pytest.approx(closed, abs=1e-9)


@pytest.mark.parametrize("name", list(CATEGORICAL))
@pytest.mark.parametrize("freqs", [[0.9, 0.1], [0.6, 0.3, 0.08, 0.02], [0.3] + [0.7 / 8] * 8 + [0.0]])
def test_reverse_chain_of_the_optimal_denoiser_reproduces_the_levels(name: str, freqs: list[float]) -> None:
    """Rows of one column of known level frequencies π (rare and absent levels included): the reverse chain with
    the optimal x̂_0 ends at π. For masked diffusion the optimum is π on masked cells; for the multinomial plug-in
    step ∝ Σ_{x_0} q(x_{t−1}, x_t | x_0) x̂_0(x_0) it is x̂_0 ∝ p(x_0 | x_t) / q(x_t | x_0) ∝ π, which turns the step
    into the exact p(x_{t−1} | x_t)."""
    p, k, n = process(name), len(freqs), 20_000
    pi = torch.tensor(freqs, dtype=torch.float64)
    g = torch.Generator().manual_seed(k)
    chains = Chains.start(p, [k], n, g, "cpu", T)
    for t in range(T, 0, -1):
        chains.record(None, [pi.clamp_min(1e-300).log().expand(n, k)])
        chains.advance(t - 1, g)
    freq = torch.bincount(chains.codes[:, 0], minlength=k).double() / n
    assert chains.codes.max() < k  # nothing left masked
    assert torch.all((freq - pi).abs() < 5 * (pi * (1 - pi) / n).sqrt() + 1e-4), (freq, pi)


def test_chains_guidance_mixes_log_probabilities() -> None:
    """(1 + w) log x̂_0(c) − w log x̂_0(∅), the classifier-free guidance of the logits."""
    p = process("masked")
    chains = Chains.start(p, [3], 2, None, "cpu", T)
    cond, free = torch.tensor([[1.0, 0.0, -1.0]] * 2), torch.tensor([[0.0, 0.5, 0.0]] * 2)
    chains.record(1, [cond])
    chains.record(None, [free])
    chains.guidance = (1, 2.0)
    want = 3 * torch.log_softmax(cond.double(), 1) - 2 * torch.log_softmax(free.double(), 1)
    assert torch.allclose(chains.log_x0(0), want)


def test_unknown_process_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown categorical process 'uniform'"):
        process("uniform")
