"""The main job: the tutorial's recipe and difflab's recommended recipe on moons, side by side."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

from difflab.config import resolve_config
from difflab.errors import DifflabError
from difflab.evaluation.report import evaluate_run
from difflab.evaluation.uncertainty import format_ratio
from difflab.figures import make_figures
from difflab.lock import check_free
from difflab.pipeline import train_run
from difflab.report.run_page import write_report
from difflab.rundir import FILES, load_run
from difflab.sample import sample_run
from difflab.sampling.output import check_writable, write_array

RECIPES = {"seed": "the tutorial's recipe (--preset seed)", "recommended": "difflab's recommended recipe"}
N_EVAL = 2000


def _fresh(path: Path) -> None:
    """Remove a previous demo run at ``path`` (only if it is one), so the demo can be re-run."""
    if path.exists():
        if not (path / FILES["config"]).exists():
            raise DifflabError(f"{path}: exists and is not a difflab run; choose another --out")
        check_free(path)
        shutil.rmtree(path)


def run_demo(out: Path, *, progress: bool = True, echo: Callable[[str], None] = print) -> dict[str, dict]:
    """Train both recipes on moons into ``out/<recipe>``, sample, evaluate W1 against the noise floor, draw all
    figures and write the interactive report (``out/<recipe>/report.html``). Returns the W1 results per recipe,
    with the report's path."""
    out = Path(out)
    check_writable(out)  # before minutes of training, not after
    results: dict[str, dict] = {}
    for name, label in RECIPES.items():
        run_dir = out / name
        _fresh(run_dir)
        echo(f"[{name}] training {label} ...")
        start = time.perf_counter()
        run = train_run(resolve_config(name), run_dir, progress=progress)
        train_s = time.perf_counter() - start
        run = load_run(run_dir)
        samples, _ = sample_run(run, N_EVAL, seed=1)
        write_array(run_dir / "samples.csv", samples, run.columns)
        # what `difflab evaluate RUN` prints (evaluated once, shown in the report too): the floor varies ±25 %
        # between pairs of true samples (the i.i.d. moon split is Bernoulli), so it is averaged over many pairs
        # (cached) and the samples are drawn until the W1 ratio is 3 % precise
        evaluation = evaluate_run(run_dir, n=N_EVAL, seed=0)
        w1 = evaluation["w1"]
        figures = make_figures(run_dir, run_dir / "figures", n=1000, seed=0)
        report = write_report(run_dir, run_dir / "report.html", n=1000, seed=0, eval_n=N_EVAL, evaluation=evaluation)
        results[name] = {**w1, "train_seconds": train_s, "report": report}
        echo(f"[{name}] trained in {train_s:.1f} s; W1 to i.i.d. moons {w1['value']:.4f} "
             f"(noise floor {w1['floor']:.4f}, ratio {format_ratio(w1['ratio'], w1['ratio_se'])}); "
             f"figures in {figures[0].parent}")
        echo(f"[{name}] interactive report (opens offline in a browser): {report}")
    s, r = results["seed"], results["recommended"]
    echo(f"\nW1 / noise floor on {N_EVAL} points: tutorial {format_ratio(s['ratio'], s['ratio_se'], suffix='x')} "
         f"vs recommended {format_ratio(r['ratio'], r['ratio_se'], suffix='x')} (1.00x = as close as two independent "
         "true samples; ± = standard error).")
    echo(f"Runs, samples and figures: {out.resolve()}")
    return results
