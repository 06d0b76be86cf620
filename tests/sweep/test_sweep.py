"""difflab sweep: grid files, cells, parallel runs that skip finished cells, failures, mean ± sd tables, pages."""

from __future__ import annotations

import math
import shutil
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sweep_grids import TINY, quiet, write

from difflab.errors import ConfigError
from difflab.sweep import apply_changes, expand, load_grid, redraw, report, run_sweep, runner
from difflab.sweep import cells as sweep_cells
from difflab.sweep import page as page_mod

# --- grid files -------------------------------------------------------------------------------------------------


def test_cells_are_the_product_of_axes_and_seeds_with_readable_ids(tmp_path: Path) -> None:
    cells = expand(load_grid(write(tmp_path, TINY)))
    assert len(cells) == 2 * 2 * 2
    ids = [c.id for c in cells]
    assert "T=3,scaler=minmax,seed=0" in ids and len(set(ids)) == len(ids)
    cell = next(c for c in cells if c.id == "T=5,scaler=standard,seed=1")
    cfg = cell.config
    assert (cfg.diffusion.T, cfg.data.scaler, cfg.train.seed, cfg.data.seed) == (5, "standard", 1, 1)
    assert (cfg.train.steps, cfg.data.n, cfg.model.name) == (20, 200, "seed")  # base config and preset


def test_grid_tables_union_with_own_seeds_and_duplicates_dropped(tmp_path: Path) -> None:
    text = TINY.replace('[grid]\n"diffusion.T" = [3, 5]\n"data.scaler" = ["minmax", "standard"]',
                        '[[grid]]\n"diffusion.T" = [3, 5]\n\n[[grid]]\nseeds = [7]\n"diffusion.T" = [5]\n'
                        '"model.name" = ["oracle-empirical"]\n\n[[grid]]\n"data.scaler" = ["minmax"]')
    spec = load_grid(write(tmp_path, text))
    cells = expand(spec)
    # first grid: 2 T × 2 seeds; second: one oracle cell with its own seed; third: the preset's T=10 with the
    # default scaler × 2 seeds
    oracle = [c for c in cells if c.config.model.name == "oracle-empirical"]
    assert [c.seed for c in oracle] == [7] and oracle[0].config.diffusion.T == 5
    assert len(cells) == 4 + 1 + 2
    # a grid whose cells resolve to configs already present adds nothing
    dup = text + '\n[[grid]]\n"diffusion.T" = [3]\n'
    assert len(expand(load_grid(write(tmp_path, dup, "dup.toml")))) == len(cells)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (TINY.replace('"diffusion.T"', '"diffusion.Tx"'), "diffusion.Tx"),
        (TINY.replace('"diffusion.T"', '"diffusionT"'), "diffusionT"),
        (TINY.replace('"diffusion.T"', '"diffusion"'), "diffusion"),
        (TINY.replace("seeds = [0, 1]", "seeds = [0, 1]\nsed_keys = []"), "sed_keys"),
        (TINY.replace('"data.scaler" = ["minmax", "standard"]', '"data.scaler" = ["minmax", "zscore"]'), "scaler"),
        (TINY.replace('"data.scaler" = ["minmax", "standard"]', '"diffusion.schedule" = ["poly", "cosin"]'), "cosin"),
        (TINY.replace('"data.scaler" = ["minmax", "standard"]', '"data.scaler" = "minmax"'), "data.scaler"),
        (TINY.replace('metrics = ["w1", "energy"]', 'metrics = ["w2"]'), "w2"),
        (TINY.replace('"data.scaler"', '"train.seed"'), "train.seed"),
    ],
)
def test_bad_grids_are_one_line_config_errors_naming_the_key(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        expand(load_grid(write(tmp_path, text)))
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_command_line_changes_restrict_axes_and_override_the_base(tmp_path: Path) -> None:
    spec = apply_changes(load_grid(write(tmp_path, TINY)),
                         ["diffusion.T=[5]", "train.steps=7", "evaluate.n=50", "data.scaler=minmax"], seeds=[3])
    cells = expand(spec)
    assert [c.id for c in cells] == ["T=5,scaler=minmax,seed=3"]
    assert cells[0].config.train.steps == 7 and spec.evaluate.n == 50
    assert len(spec.changes) == 5
    with pytest.raises(ConfigError, match="train.stepz"):
        apply_changes(load_grid(write(tmp_path, TINY)), ["train.stepz=3"])


# --- running ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_grid_writes_csv_md_png(tiny_sweep: tuple[Path, Path, runner.SweepSummary]) -> None:
    _, out, summary = tiny_sweep
    assert summary.ok == 8 and not summary.failed and summary.skipped == 0
    df = pd.read_csv(out / "results.csv")
    assert len(df) == 8 and set(df["status"]) == {"ok"}
    assert {"diffusion.T", "data.scaler", "seed", "w1_ratio", "w1_floor", "energy_ratio", "train_seconds"} <= set(df)
    assert np.allclose(df["w1_ratio"], df["w1_value"] / df["w1_floor"])
    assert (out / "results.png").stat().st_size > 0
    assert (out / "cells" / "T=3,scaler=minmax,seed=0" / "result.json").exists()


@pytest.mark.slow
def test_results_md_is_mean_and_sd_over_seeds(tiny_sweep: tuple[Path, Path, runner.SweepSummary]) -> None:
    _, out, _ = tiny_sweep
    df = pd.read_csv(out / "results.csv")
    md = (out / "results.md").read_text()
    for (T, scaler), g in df.groupby(["diffusion.T", "data.scaler"]):
        w1 = sorted(g["w1_ratio"])
        expected = f"{statistics.mean(w1):.3g} ± {statistics.stdev(w1):.2g}"
        se = math.sqrt(statistics.mean(g["w1_ratio_se"] ** 2))  # the rms of one seed's standard error
        assert 0 < se < statistics.mean(w1)
        assert f"| {T} | {scaler} | 2/2 | {expected} | {se:.2g} |" in md


@pytest.mark.slow
def test_rerun_skips_finished_cells(tiny_sweep: tuple[Path, Path, runner.SweepSummary]) -> None:
    grid, out, _ = tiny_sweep
    results = sorted((out / "cells").glob("*/result.json"))
    before = [p.stat().st_mtime_ns for p in results]
    summary = run_sweep(load_grid(grid), out, workers=2, batch=False, echo=quiet, echo_err=quiet)
    assert summary.skipped == 8 and summary.ok == 0
    assert [p.stat().st_mtime_ns for p in results] == before


def test_changed_evaluation_reevaluates_without_training_and_changed_config_is_refused(
    tiny_sweep: tuple[Path, Path, runner.SweepSummary], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid, out, _ = tiny_sweep
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    monkeypatch.setattr(sweep_cells, "_train", lambda job: pytest.fail("a finished cell was trained again"))
    spec = apply_changes(load_grid(grid), ["evaluate.metrics=['w1']"])
    summary = run_sweep(spec, copy, workers=1, echo=quiet, echo_err=quiet)
    assert summary.ok == 8 and summary.skipped == 0
    assert "energy_ratio" not in pd.read_csv(copy / "results.csv")
    with pytest.raises(ConfigError, match="train.steps was 20, now 30"):
        run_sweep(apply_changes(load_grid(grid), ["train.steps=30"]), copy, workers=1, echo=quiet)


def test_failing_cells_are_reported_and_the_others_finish(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = TINY.replace('"data.scaler" = ["minmax", "standard"]', '"data.source" = ["moons", "missing.csv"]')
    text = text.replace("seeds = [0, 1]", "seeds = [0]")
    real_train = sweep_cells._train

    def train(job: sweep_cells.Job):  # a crash inside the library, not a user error
        if job.id == "T=5,source=moons,seed=0":
            raise RuntimeError("boom\nsecond line")
        return real_train(job)

    monkeypatch.setattr(sweep_cells, "_train", train)
    errors: list[str] = []
    summary = run_sweep(load_grid(write(tmp_path, text)), tmp_path / "out", workers=1, batch=False, echo=quiet,
                        echo_err=errors.append)
    assert summary.ok == 1 and len(summary.failed) == 3
    assert summary.failed["T=5,source=moons,seed=0"] == "RuntimeError: boom"
    assert "missing.csv" in summary.failed["T=3,source=missing.csv,seed=0"]
    assert len(errors) == 3 and all(e.startswith("failed: ") and "\n" not in e for e in errors)
    df = pd.read_csv(tmp_path / "out" / "results.csv").set_index("cell")
    assert df.loc["T=3,source=moons,seed=0", "status"] == "ok"
    assert df.loc["T=5,source=moons,seed=0", "status"] == "failed: RuntimeError: boom"
    assert not (tmp_path / "out" / "cells" / "T=5,source=moons,seed=0" / "result.json").exists()
    md = (tmp_path / "out" / "results.md").read_text()
    assert "| 3 | moons | 1/1 |" in md and "| 5 | moons | 0/1 |" in md and "| 3 | missing.csv | 0/1 |" in md


def test_cli_exit_status_1_and_stderr_line_when_a_cell_fails(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from difflab.cli import app

    text = TINY.replace('"data.scaler" = ["minmax", "standard"]', '"data.source" = ["missing.csv"]')
    grid = write(tmp_path, text.replace('"diffusion.T" = [3, 5]', '"diffusion.T" = [3]'))
    result = CliRunner().invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "out"), "--workers", "1",
                                      "--seeds", "0", "--no-batch"])
    assert result.exit_code == 1
    assert "failed: T=3,source=missing.csv,seed=0: " in result.stderr
    assert "0 ok" in result.stdout and "1 failed" in result.stdout
    bad = CliRunner().invoke(app, ["sweep", str(grid), "--out", str(tmp_path / "o2"), "--set", "train.nope=1"])
    assert bad.exit_code == 2 and "train.nope" in bad.stderr


def test_diverged_samples_are_infinite_not_dropped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import difflab.sample

    real = difflab.sample.sample_run

    def sample_run(run, n, **kw):  # noqa: ANN001, ANN202
        x, traj = real(run, n, **kw)
        if run.config.diffusion.T == 5:
            x[0, 0] = np.inf
        return x, traj

    monkeypatch.setattr(difflab.sample, "sample_run", sample_run)
    grid = write(tmp_path, TINY.replace('"data.scaler" = ["minmax", "standard"]', '"data.scaler" = ["minmax"]'))
    summary = run_sweep(load_grid(grid), tmp_path / "out", workers=1, batch=False, echo=quiet, echo_err=quiet)
    assert summary.diverged == 2 and summary.ok == 2 and not summary.failed
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert np.isinf(df[df["diffusion.T"] == 5]["w1_ratio"]).all()
    assert "| 5 | minmax | 2/2 | inf |" in (tmp_path / "out" / "results.md").read_text()


def test_batched_training_is_used_for_compatible_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Against stand-ins for difflab.pipeline's batching: one train_many call per batch key with ≥ 2 cells."""
    from difflab import pipeline
    from difflab.pipeline import train_run

    calls: list[int] = []

    def train_many(cfgs, out_dirs, progress=False):  # noqa: ANN001, ANN202
        calls.append(len(cfgs))
        return [train_run(c, d, progress=progress) for c, d in zip(cfgs, out_dirs)]

    monkeypatch.setattr(pipeline, "sweep_key", lambda cfg: ("T", cfg.diffusion.T) if cfg.data.scaler == "minmax"
                        else None)
    monkeypatch.setattr(pipeline, "train_many", train_many)
    summary = run_sweep(load_grid(write(tmp_path, TINY)), tmp_path / "out", workers=1, echo=quiet, echo_err=quiet)
    assert summary.ok == 8 and sorted(calls) == [2, 2]  # minmax cells: one group per T, of 2 seeds each
    df = pd.read_csv(tmp_path / "out" / "results.csv")
    assert (df[df["data.scaler"] == "minmax"]["batched"] == 2).all()
    assert (df[df["data.scaler"] == "standard"]["batched"] == 1).all()


@pytest.mark.slow
def test_real_batched_training_matches_training_one_by_one(
    tiny_sweep: tuple[Path, Path, runner.SweepSummary], tmp_path: Path
) -> None:
    """The seed model's cells train together and give the same numbers as when trained one by one."""
    grid, out, _ = tiny_sweep
    summary = run_sweep(load_grid(grid), tmp_path / "out", workers=1, batch=True, echo=quiet, echo_err=quiet)
    assert summary.ok == 8
    alone = pd.read_csv(out / "results.csv").set_index("cell")
    together = pd.read_csv(tmp_path / "out" / "results.csv").set_index("cell").loc[alone.index]
    assert (together["batched"] > 1).all() and (alone["batched"] == 1).all()
    assert np.allclose(together["w1_value"], alone["w1_value"], rtol=1e-3)
    assert np.allclose(together["energy_floor"], alone["energy_floor"], rtol=0)


def test_plan_tasks_splits_groups_so_every_worker_has_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from difflab import pipeline

    monkeypatch.setattr(pipeline, "sweep_key", lambda cfg: "all")
    cells = expand(apply_changes(load_grid(write(tmp_path, TINY)), [], seeds=[0, 1, 2]))
    jobs = [sweep_cells.Job(c.id, "x", c.config.model_dump(mode="json"), c.values, c.seed, {}, True) for c in cells]
    tasks = runner.plan_tasks(jobs, batch=True, workers=3)
    assert len(tasks) == 3 and all(b for _, b in tasks)
    assert sorted(j.id for t, _ in tasks for j in t) == sorted(j.id for j in jobs)
    assert len(runner.plan_tasks(jobs, batch=False, workers=3)) == len(jobs)


# --- aggregation and pages ----------------------------------------------------------------------------------------


def test_aggregate_matches_a_hand_computation() -> None:
    df = pd.DataFrame({
        "k": ["a", "a", "a", "a", "b"],
        "status": ["ok", "ok", "diverged: 1 of 10 samples not finite", "failed: x", "ok"],
        "r": [1.0, 2.0, 4.0, 100.0, 3.0],
    })
    agg = report.aggregate(df, ["k"], ["r"]).set_index("k")
    mean = (1.0 + 2.0 + 4.0) / 3
    sd = math.sqrt(((1 - mean) ** 2 + (2 - mean) ** 2 + (4 - mean) ** 2) / 2)
    assert agg.loc["a", "seeds"] == "3/4" and agg.loc["a", "r_n"] == 3
    assert agg.loc["a", "r_mean"] == pytest.approx(mean) and agg.loc["a", "r_sd"] == pytest.approx(sd)
    assert agg.loc["b", "r_mean"] == 3.0 and math.isnan(agg.loc["b", "r_sd"])
    assert report.mean_sd(mean, sd) == "2.33 ± 1.5"
    assert report.mean_sd(3.0, math.nan) == "3" and report.mean_sd(math.inf, math.nan) == "inf"


def test_pivot_sentences_match_a_hand_count() -> None:
    rows = [("a", "x", 1.0), ("a", "y", 2.0), ("b", "x", 4.0), ("b", "y", 1.0), ("c", "x", 1.0), ("c", "y", 3.0)]
    df = pd.DataFrame([{"k": k, "s": s, "r": r, "status": "ok"} for k, s, r in rows])
    table = page_mod.pivot(df, ["k"], "s", "r")
    text = page_mod._pivot_sentence(df, table, ["k"], "s", "r")
    gm = math.exp((math.log(2) + math.log(1 / 4) + math.log(3)) / 3)
    assert text.startswith("`x` has the lower r in 2 of 3 rows") and f"{gm:.3g}" in text
    three = pd.DataFrame([{"k": "a", "T": t, "r": r, "status": "ok"} for t, r in [(1, 2.0), (2, 0.5), (3, 1.0)]])
    sentence = page_mod._pivot_sentence(three, page_mod.pivot(three, ["k"], "T", "r"), ["k"], "T", "r")
    assert sentence == "Lowest r per row: a: T=2 (0.5)."


@pytest.mark.slow
def test_page_has_pivots_figures_and_keeps_notes(tiny_sweep: tuple[Path, Path, runner.SweepSummary],
                                                 tmp_path: Path) -> None:
    import json

    _, out, _ = tiny_sweep
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    plan = json.loads((copy / "sweep.json").read_text())
    plan["spec"]["report"] = {
        "title": "Tiny", "command": "difflab sweep grid.toml --out out", "intro": "Intro text.",
        "table": [{"title": "Scalers", "rows": ["diffusion.T"], "cols": "data.scaler", "metric": "w1_ratio"},
                  {"title": "T", "rows": ["data.scaler"], "cols": "diffusion.T", "metric": "energy_ratio",
                   "where": {"data.scaler": "minmax"}}],
    }
    plan["spec"]["changes"] = ["train.steps = 20"]
    (copy / "sweep.json").write_text(json.dumps(plan))
    page = tmp_path / "docs" / "page.md"
    page_mod.write_page(copy, page)
    text = page.read_text()
    assert text.startswith("# Tiny") and "Reduced run" in text and "Intro text." in text
    assert "has the lower w1_ratio in" in text and "has the lower energy_ratio in" in text
    for name in ("page-1.png", "page-2.png", "page-all.png"):
        assert (tmp_path / "docs" / "figures" / name).exists() and f"(figures/{name})" in text
    page.write_text(text.replace("_No notes yet._", "Hand-written conclusion."))
    page_mod.write_page(copy, page)
    assert "Hand-written conclusion." in page.read_text() and "_No notes yet._" not in page.read_text()
    assert redraw.main([str(copy), "--page", str(page)]) == 0
    assert redraw.main([str(tmp_path / "nowhere")]) == 2
