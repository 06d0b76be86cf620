"""Tables whose categories are diffused as categories (``--encoding multinomial|masked``) end to end: the layout of
1, 2 and 10 categorical columns, the summed loss against its parts, a trained model reproducing a label column of
known frequencies (a rare level included), every combinable sampler, guidance, the replace hook, save and load,
and the refusals as one line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from cli_helpers import cli, one_line_error
from difflab import TabularDiffusion
from difflab.compute import cpu_threads
from difflab.config import DataConfig, TrainConfig
from difflab.data.prepare import prepare_frame
from difflab.diffusion import GaussianDiffusion, get_parameterization, make_schedule
from difflab.diffusion.categorical import Chains, make_categorical
from difflab.models.mixed import GaussianView, MixedNet
from difflab.rundir import load_run
from difflab.sample import sample_frame
from difflab.sampling.grids import make_grid
from difflab.sampling.joint import MixedState, sample_joint
from difflab.training.mixed import MixedObjective

PI = [0.7, 0.2, 0.08, 0.02]  # the label column's frequencies: one rare level
SMALL = {"steps": 600, "T": 50, "width": 64, "depth": 2, "scaler": "standard", "seed": 0}


@pytest.fixture(autouse=True)
def _one_thread():
    with cpu_threads(1):
        yield


def labelled(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A label of frequencies PI, a number whose mean depends on it, and a yes/no column that follows the number."""
    rng = np.random.default_rng(seed)
    label = rng.choice(["a", "b", "c", "d"], size=n, p=PI)
    x = rng.normal(size=n) * 0.3 + pd.Series(label).map({"a": -1.0, "b": 0.0, "c": 1.0, "d": 2.0}).to_numpy()
    return pd.DataFrame({"x": x, "label": label, "flag": np.where(x > 0.5, "yes", "no")})


def wide(n_cat: int, n: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(n_cat)
    df = pd.DataFrame({f"c{j}": rng.choice(["p", "q", "r"][: 2 + j % 2], size=n) for j in range(n_cat)})
    df.insert(n_cat // 2, "num", rng.normal(size=n))
    return df


@pytest.fixture(scope="module", params=["multinomial", "masked"])
def fitted(request: pytest.FixtureRequest) -> TabularDiffusion:
    with cpu_threads(1):
        return TabularDiffusion(encoding=request.param, **SMALL).fit(labelled())


@pytest.mark.parametrize("n_cat", [1, 2, 10])
def test_layout_splits_and_joins_the_scaled_rows(n_cat: int) -> None:
    data = prepare_frame(wide(n_cat), DataConfig(source="wide", holdout=0.0, encoding="masked"))
    layout = data.layout
    assert layout is not None and len(layout.groups) == n_cat and layout.gaussian == (data.columns.index("num"),)
    x = data.model_input
    xg, codes = layout.split(x)
    assert codes.shape == (len(x), n_cat) and torch.equal(layout.join(xg, codes), x)
    frame = wide(n_cat)
    for c, name in enumerate(layout.names):  # the codes are the levels' indices, in the spec's order
        levels = data.table.column(name).levels
        assert [levels[i] for i in codes[:, c]] == frame[name].tolist()


def test_condition_column_is_left_out_of_the_layout() -> None:
    data = prepare_frame(labelled(), DataConfig(source="t", holdout=0.0, encoding="multinomial", condition="label"))
    assert data.layout.names == ("flag",) and data.layout.dim == data.model_dim == 3


def test_numbers_only_table_is_a_plain_gaussian_run() -> None:
    frame = pd.DataFrame({"a": np.linspace(0, 1, 30), "b": np.linspace(1, 3, 30) ** 2})
    assert prepare_frame(frame, DataConfig(source="t", encoding="masked")).layout is None


@pytest.mark.parametrize("name", ["multinomial", "masked"])
@pytest.mark.parametrize("n_cat", [1, 2, 10])
def test_loss_is_the_gaussian_loss_plus_the_mean_column_kl(name: str, n_cat: int) -> None:
    """With a network that outputs zeros: mean ε² of the Gaussian features + the mean of every cell's L_t with
    uniform x̂_0, the states drawn from Φ(ε) of the block's first feature."""
    data = prepare_frame(wide(n_cat, n=64), DataConfig(source="wide", holdout=0.0, encoding=name))
    layout = data.layout
    process = GaussianDiffusion(make_schedule("linear", 50))
    cat = make_categorical(name, process)
    obj = MixedObjective(process, cat, layout, get_parameterization("eps"), TrainConfig(), torch.device("cpu"))

    class Zeros(torch.nn.Module):
        split = MixedNet(1, layout.levels, masked=name == "masked", T=50).split

        def forward(self, x, t, labels=None):
            return torch.zeros(len(x), 1 + sum(layout.levels))

    x0 = data.model_input
    g = torch.Generator().manual_seed(1)
    t = torch.randint(1, 51, (len(x0),), generator=g)
    eps = torch.randn(x0.shape, generator=g)
    got = obj.loss(Zeros(), x0, eps, t)
    _, codes = layout.split(x0)
    u = torch.tensor([[0.5 * math.erfc(-float(eps[i, a]) / math.sqrt(2)) for a, _ in layout.groups]
                      for i in range(len(x0))], dtype=torch.float64)
    kl = torch.stack([cat.loss_terms(torch.zeros(len(x0), k), codes[:, c], cat.q_sample_u(codes[:, c], t, u[:, c], k),
                                     t) for c, k in enumerate(layout.levels)])
    want = eps[:, list(layout.gaussian)].pow(2).mean() + kl.mean()
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


def test_trained_model_reproduces_the_label_frequencies(fitted: TabularDiffusion) -> None:
    rows = fitted.sample(4000, seed=3)
    freq = rows["label"].value_counts(normalize=True).reindex(list("abcd"), fill_value=0.0).to_numpy()
    assert np.all(np.abs(freq - PI) < 0.05), freq
    assert freq[3] > 0.004  # the rare level is drawn
    # the numbers follow their label (class means −1, 0, 1, 2) and the flag follows the number
    means = rows.groupby("label")["x"].mean()
    assert means["a"] < means["b"] < means["c"]
    assert (rows.loc[rows["x"] > 1.0, "flag"] == "yes").mean() > 0.8


@pytest.mark.parametrize("sampler", ["ddim", "dpm++", "dpm++-sde", "heun", "heun-sde"])
def test_every_combinable_sampler_draws_valid_rows(fitted: TabularDiffusion, sampler: str) -> None:
    rows = sample_frame(fitted.run_, 300, seed=1, sampler=sampler, steps=10)
    assert rows["label"].isin(list("abcd")).all() and rows["flag"].isin(["yes", "no"]).all()
    assert np.isfinite(rows["x"]).all() and rows["label"].value_counts(normalize=True)["a"] > 0.45


@pytest.mark.parametrize("sampler", ["ode", "consistency"])
def test_samplers_that_cannot_be_combined_are_refused(fitted: TabularDiffusion, sampler: str, tmp_path: Path) -> None:
    fitted.save(tmp_path / "run")
    r = cli("sample", tmp_path / "run", "--out", tmp_path / "s.csv", "--sampler", sampler)
    one_line_error(r, f"sampler '{sampler}' cannot sample a table with discretely diffused columns")
    assert not (tmp_path / "s.csv").exists()


def test_saved_run_samples_the_same_rows(fitted: TabularDiffusion, tmp_path: Path) -> None:
    fitted.save(tmp_path / "run")
    again = TabularDiffusion.load(tmp_path / "run")
    assert load_run(tmp_path / "run").layout == fitted.run_.layout
    pd.testing.assert_frame_equal(again.sample(50, seed=4), fitted.sample(50, seed=4))


def test_replace_hook_is_called_at_the_start_and_after_every_jump(fitted: TabularDiffusion) -> None:
    """RePaint's hook: it sees every state from t_max down to 0 and what it writes is what the sampler goes on from:
    a first column fixed to level 2 and a number fixed to 0.25 come out so."""
    run = fitted.run_
    layout = run.layout
    ts = make_grid(run.diffusion, 8, "trailing")
    chains = Chains.start(make_categorical(layout.process, run.diffusion), layout.levels, 20, None, "cpu", ts[0])
    seen = []

    def replace(state: MixedState, s: float) -> MixedState:
        seen.append(s)
        state.codes[:, 0] = 2
        return MixedState(torch.full_like(state.gaussian, 0.25), state.codes)

    from difflab.assemble import denoiser

    view = GaussianView(run.model, chains)
    x = sample_joint(denoiser(run.config, view, run.diffusion), chains, torch.randn(20, 1), run.diffusion, ts,
                     replace=replace)
    assert seen == list(ts) and torch.all(x == 0.25) and torch.all(chains.codes[:, 0] == 2)


def test_categorical_only_table_and_conditional_guidance(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.choice(["u", "v"], 200, p=[0.8, 0.2])
    frame = pd.DataFrame({"a": a, "b": np.where(rng.random(200) < 0.9, a, "w")})
    model = TabularDiffusion(encoding="multinomial", steps=200, T=20, width=32, depth=1, schedule="cosine").fit(frame)
    rows = model.sample(400, seed=0)
    assert rows["a"].isin(["u", "v"]).all() and 0.6 < (rows["a"] == "u").mean() < 0.95
    cond = TabularDiffusion(encoding="masked", steps=200, T=20, width=32, depth=1, schedule="cosine",
                            condition="a").fit(frame)
    rows = cond.sample(200, seed=0, where={"a": "v"}, guidance=1.0)
    assert (rows["a"] == "v").all() and rows["b"].isin(["u", "v", "w"]).all()


def test_refusals_are_one_line(tmp_path: Path) -> None:
    labelled().to_csv(tmp_path / "t.csv", index=False)
    r = cli("train", "--preset", "table", "--data", tmp_path / "t.csv", "--encoding", "masked", "--time", "continuous",
            "--schedule", "edm", "--out", tmp_path / "run", "--steps", "5", "-q")
    one_line_error(r, "--time discrete")
    assert not (tmp_path / "run").exists()
    r = cli("train", "--preset", "table", "--data", tmp_path / "t.csv", "--encoding", "masked", "--scaler", "minmax",
            "--out", tmp_path / "ok", "--steps", "5", "-q")
    assert r.exit_code == 0, r.output
    r = cli("evaluate", tmp_path / "ok", "--elbo", "--metrics", "w1")
    one_line_error(r, "diffused by masked diffusion")


def test_report_and_figures_of_a_mixed_run(fitted: TabularDiffusion, tmp_path: Path) -> None:
    from difflab.figures import make_figures
    from difflab.report.run_page import build_report

    fitted.save(tmp_path / "run")
    page = build_report(tmp_path / "run", n=60, eval_n=40, repeats=1)
    assert "Samples against data" in page and "Forward and reverse process" in page
    drawn = make_figures(tmp_path / "run", tmp_path / "figs", kinds=["samples", "trajectories"], n=60)
    assert all(p.exists() for p in drawn)
