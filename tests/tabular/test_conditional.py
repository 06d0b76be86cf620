"""Conditional generation end to end: `difflab train --condition`, `difflab sample --where/--guidance`, sample_run
and TabularDiffusion(condition=...), on tables of D = 1, 2, 10 features whose two classes lie far apart, so that a
model that ignored its labels would fail; the vocabulary file; bad input as one line with nothing written."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_helpers import cli, one_line_error
from difflab import TabularDiffusion
from difflab.compute import cpu_threads
from difflab.errors import ConfigError, DataError
from difflab.rundir import load_run
from difflab.sample import sample_run

WIDTHS = [1, 2, 10]
SHARE_A = 0.7  # class frequencies of the training table
# The standard scaler keeps the gap between the classes (the preset's quantile map closes it: both clusters together
# become one N(0, 1)); T = 50, since the linear schedule at T = 20 reaches ᾱ_T ≈ 6e-11, where ε-prediction blows up.
FAST = ["--steps", "800", "--T", "50", "--batch-size", "128", "--scaler", "standard", "-q"]


def two_classes(width: int, n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Class 'a' around −1.5 in every feature, class 'b' around +1.5 (sd 0.3)."""
    rng = np.random.default_rng(seed)
    kind = np.where(rng.random(n) < SHARE_A, "a", "b")
    x = rng.normal(size=(n, width)) * 0.3 + np.where(kind == "a", -1.5, 1.5)[:, None]
    df = pd.DataFrame(x, columns=[f"f{j}" for j in range(width)])
    df.insert(width // 2, "kind", kind)  # the condition column need not be the last
    return df


@pytest.fixture(autouse=True)
def _one_thread():
    with cpu_threads(1):
        yield


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("conditional")
    (root / "small.toml").write_text('[model]\nname = "mlp"\noptions = { width = 48, depth = 2 }\n')
    (root / "guided.toml").write_text("[sample]\nguidance = 1.5\n")
    for width in WIDTHS:
        two_classes(width).to_csv(root / f"t{width}.csv", index=False)
        r = cli("train", "--preset", "table", "--config", root / "small.toml", "--data", root / f"t{width}.csv",
                "--condition", "kind", "--out", root / f"run{width}", *FAST)
        assert r.exit_code == 0, r.output
        assert "conditioned on 'kind': 2 classes" in r.stdout
    r = cli("train", "--preset", "table", "--data", root / "t2.csv", "--out", root / "plain", "--steps", "20", "-q")
    assert r.exit_code == 0, r.output
    return root


@pytest.mark.parametrize("width", WIDTHS)
def test_vocabulary_is_saved_and_loaded(ws: Path, width: int):
    saved = json.loads((ws / f"run{width}" / "condition.json").read_text())
    train = pd.read_csv(ws / f"t{width}.csv")
    run = load_run(ws / f"run{width}")
    rows = run.table.decode(run.train)
    assert saved["column"] == "kind" and saved["levels"] == ["a", "b"]
    assert saved["counts"] == [int((rows["kind"] == "a").sum()), int((rows["kind"] == "b").sum())]
    assert sum(saved["counts"]) == round(0.8 * len(train))  # the held-out fifth is not counted
    np.testing.assert_allclose(saved["frequencies"], np.asarray(saved["counts"]) / sum(saved["counts"]))
    assert run.condition.to_dict() == saved and run.model_dim == width and run.dim == width + 2
    assert run.model.label_emb.weight.shape[0] == 3  # two classes and "no label"


@pytest.mark.parametrize("width", WIDTHS)
def test_sample_where_gives_rows_of_that_class(ws: Path, width: int, tmp_path: Path):
    for value, centre in (("a", -1.5), ("b", 1.5)):
        for w in ("0", "2"):
            out = tmp_path / f"{value}{w}.csv"
            r = cli("sample", ws / f"run{width}", "--n", 300, "--out", out, "--where", f"kind={value}",
                    "--guidance", w)
            assert r.exit_code == 0, r.output
            rows = pd.read_csv(out)
            assert list(rows.columns) == list(two_classes(width).columns) and set(rows["kind"]) == {value}
            feats = rows.drop(columns="kind").to_numpy()
            assert np.all(np.abs(np.median(feats, axis=0) - centre) < 0.3), np.median(feats, axis=0)
            assert np.mean(np.sign(feats.mean(1)) == np.sign(centre)) > 0.95  # the other class is 3 away


@pytest.mark.parametrize("width", WIDTHS)
def test_sample_without_where_draws_classes_by_frequency(ws: Path, width: int, tmp_path: Path):
    run = load_run(ws / f"run{width}")
    x, traj = sample_run(run, 600, seed=4, trajectory=True)
    rows = run.table.decode(x)
    share = run.condition.frequencies[0]
    assert abs((rows["kind"] == "a").mean() - share) < 4 * np.sqrt(share * (1 - share) / 600)
    feats = rows.drop(columns="kind").to_numpy()
    assert np.median(feats[rows["kind"] == "a"]) < -1.2 and np.median(feats[rows["kind"] == "b"]) > 1.2
    # the trajectory holds whole feature rows; the condition's features stay put from x_T to x_0
    cond = run.condition
    assert traj.shape == (51, 600, run.dim)
    assert np.all(traj[:, :, cond.start : cond.stop] == traj[-1:, :, cond.start : cond.stop])
    np.testing.assert_allclose(run.scaler.inverse_transform(traj[-1]), x, atol=1e-5)
    # seeded, and the same through the command line and Python
    again, _ = sample_run(run, 600, seed=4)
    np.testing.assert_array_equal(again, x)
    assert cli("sample", ws / f"run{width}", "--n", 600, "--seed", 4, "--out", tmp_path / "s.csv").exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "s.csv"), rows, check_dtype=False, atol=1e-5)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++", "dpm++-sde", "heun", "heun-sde", "ode"])
def test_every_sampler_draws_the_class_asked_for(ws: Path, sampler: str):
    from difflab.sampling import SAMPLERS

    assert sampler in SAMPLERS
    run = load_run(ws / "run2")
    steps, options = (None, {"rtol": 1e-3, "atol": 1e-3}) if sampler == "ode" else (10, None)
    x, _ = sample_run(run, 100, seed=2, where={"kind": "b"}, guidance=1.0, sampler=sampler, steps=steps,
                      guard="clip", options=options)
    feats = x[:, run.condition.model_columns(run.dim)]
    assert np.all(run.condition.codes(x) == 1) and np.isfinite(x).all()
    assert np.all(np.abs(np.median(feats, axis=0) - 1.5) < 0.4), np.median(feats, axis=0)


def test_guidance_reaches_the_sampler_from_the_call_or_the_config(ws: Path):
    """The weight is the call's, else the run's [sample] guidance (its value is tested against the closed form in
    tests/diffusion/test_guidance.py)."""
    import dataclasses

    run = load_run(ws / "run2")
    plain = sample_run(run, 200, seed=1, where={"kind": "b"})[0]
    guided = sample_run(run, 200, seed=1, where={"kind": "b"}, guidance=4.0)[0]
    assert not np.allclose(plain, guided) and np.all(run.condition.codes(guided) == 1)
    cfg = run.config.model_copy(update={"sample": run.config.sample.model_copy(update={"guidance": 4.0})})
    saved = dataclasses.replace(run, config=cfg)
    np.testing.assert_array_equal(sample_run(saved, 200, seed=1, where={"kind": "b"})[0], guided)
    np.testing.assert_array_equal(sample_run(saved, 200, seed=1, where={"kind": "b"}, guidance=0.0)[0], plain)


def test_resume_and_evaluate_a_conditional_run(ws: Path, tmp_path: Path):
    import shutil

    shutil.copytree(ws / "run1", tmp_path / "run")
    with pytest.warns(UserWarning, match="planned for 800 steps"):
        r = cli("train", "--out", tmp_path / "run", "--resume", "--steps", "810", "-q")
    assert r.exit_code == 0, r.output
    assert load_run(tmp_path / "run").condition == load_run(ws / "run1").condition
    r = cli("evaluate", ws / "run1", "--repeats", 1, "--metrics", "w1", "--target", "kind")
    assert r.exit_code == 0, r.output
    assert "ML efficacy (random forest predicting 'kind'" in r.stdout
    one_line_error(cli("evaluate", ws / "run1", "--elbo"), "conditioned on 'kind'", "not built")


@pytest.mark.parametrize(("args", "words"), [
    (["sample", "{ws}/run2", "--where", "kind=c"], ["kind=c", "no training row", "known: a, b"]),
    (["sample", "{ws}/run2", "--where", "f0=1"], ["f0=", "conditioned on the column 'kind' only"]),
    (["sample", "{ws}/run2", "--where", "kind"], ["--where 'kind'", "COLUMN=VALUE"]),
    (["sample", "{ws}/run2", "--guidance", "-1"], ["--guidance", "greater than or equal to 0"]),
    (["sample", "{ws}/plain", "--where", "kind=a"], ["without a condition column"]),
    (["sample", "{ws}/plain", "--guidance", "2"], ["--guidance 2", "without a condition column"]),
    (["train", "--data", "{ws}/t2.csv", "--condition", "f0", "--out", "{tmp}/x"], ["--condition f0", "continuous"]),
    (["train", "--data", "{ws}/t2.csv", "--condition", "size", "--out", "{tmp}/x"], ["no column 'size'"]),
    (["train", "--data", "{ws}/t2.csv", "--condition", "kind", "--model", "seed", "--time", "discrete",
      "--schedule", "cosine", "--out", "{tmp}/x"],
     ["'seed'", "takes no class label"]),
    (["train", "--data", "moons", "--condition", "kind", "--out", "{tmp}/x"], ["toy 'moons'", "no label column"]),
    (["train", "--data", "{ws}/t2.csv", "--config", "{ws}/guided.toml", "--out", "{tmp}/x"],
     ["guidance 1.5", "needs a conditional run"]),
    (["train", "--data", "{ws}/t2.csv", "--condition", "kind", "--label-dropout", "1", "--out", "{tmp}/x"],
     ["--label-dropout", "less than 1"]),
])
def test_bad_input_is_one_line_and_writes_nothing(ws: Path, tmp_path: Path, args: list[str], words: list[str]):
    argv = [a.format(ws=ws, tmp=tmp_path) for a in args]
    if argv[0] == "sample":
        argv += ["--out", str(tmp_path / "s.csv")]
    one_line_error(cli(*argv), *words)
    assert not (tmp_path / "s.csv").exists() and not (tmp_path / "x").exists()


def test_guidance_needs_an_unconditional_prediction(tmp_path: Path):
    two_classes(1).to_csv(tmp_path / "t.csv", index=False)
    r = cli("train", "--preset", "table", "--data", tmp_path / "t.csv", "--condition", "kind", "--label-dropout", "0",
            "--out", tmp_path / "run", "--steps", "10", "--T", "50", "-q")
    assert r.exit_code == 0, r.output
    one_line_error(cli("sample", tmp_path / "run", "--where", "kind=a", "--guidance", "1", "--out", tmp_path / "s.csv"),
                   "label_dropout = 0")
    assert cli("sample", tmp_path / "run", "--where", "kind=a", "--out", tmp_path / "s.csv").exit_code == 0


def test_estimator_conditions_on_a_column(tmp_path: Path):
    df = two_classes(2, seed=1)
    model = TabularDiffusion(steps=800, T=50, width=48, depth=2, scaler="standard", seed=0, condition="kind",
                             label_dropout=0.2).fit(df)
    assert model.get_params()["condition"] == "kind" and model.run_.config.train.label_dropout == 0.2
    rows = model.sample(200, seed=1, where={"kind": "b"}, guidance=1.0)
    assert list(rows.columns) == list(df.columns) and set(rows["kind"]) == {"b"} and rows["f0"].median() > 1.2
    mixed = model.sample(400, seed=2)
    assert set(mixed["kind"]) == {"a", "b"}
    model.save(tmp_path / "saved")
    back = TabularDiffusion.load(tmp_path / "saved")
    assert back.condition == "kind" and back.label_dropout == 0.2
    pd.testing.assert_frame_equal(back.sample(50, seed=3, where={"kind": "a"}), model.sample(50, seed=3,
                                                                                          where={"kind": "a"}))
    with pytest.raises(DataError, match="no training row"):
        model.sample(5, where={"kind": "z"})
    plain = TabularDiffusion(steps=5, T=50, width=8, depth=1).fit(df)
    with pytest.raises(ConfigError, match="without a condition column"):
        plain.sample(5, where={"kind": "a"})
