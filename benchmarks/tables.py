"""difflab on scikit-learn's real tables next to two baselines and the real training rows: docs/tables.md.

For each data set (``sklearn:NAME``) and each seed (the seed of the 20 % held-out split and of difflab's training)
every generator is fitted to the training rows and draws as many rows as there are training rows:

- difflab with the table preset, its categories in each of the four encodings: one-hot and analog bits (Gaussian
  features), multinomial and masked diffusion (discrete processes beside the Gaussian one);
- a Gaussian copula (empirical marginals, one correlation matrix of normal scores) and SMOTE-style interpolation
  between same-class nearest neighbours (:mod:`difflab.tabular.baselines`);
- the real training rows themselves (what perfect memorisation scores).

Every generator is scored on the held-out rows: ML-efficacy ratio (random forest trained on generated vs on real
training rows, macro F1 / R² on held-out rows), distance to closest record (median ratio, share below the held-out
5 % quantile, share nearer to a training row than to a held-out row with as many of each: ½ for fresh rows), W1 / noise floor on standardised columns (n = half the held-out rows, averaged over repeats),
per-column KS / TV and correlation difference (each with the real rows' value as floor), time to fit. Figures are
means over the seeds. A second table trains difflab for more and fewer steps on wine and breast_cancer: the
trade-off between fidelity and copying training rows that chose the preset's step count.

    .venv/bin/python benchmarks/tables.py --page docs/tables.md          # everything (about 20 min on 2 cores)
    .venv/bin/python benchmarks/tables.py --sets wine --generators difflab --seeds 0 --tradeoff ""  # a quick look
    .venv/bin/python benchmarks/tables.py --encodings --page docs/tables.md  # the four encodings' section alone
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _common import load, machine, write_section  # noqa: E402
from difflab.config import resolve_config  # noqa: E402
from difflab.data.prepare import prepare_data  # noqa: E402
from difflab.data.sklearn_sets import SKLEARN_SETS  # noqa: E402
from difflab.evaluation import evaluate_samples  # noqa: E402
from difflab.evaluation.privacy import distance_to_closest_record  # noqa: E402
from difflab.evaluation.tables import Standardiser, evaluation_matrix, table_checks  # noqa: E402
from difflab.pipeline import train_run  # noqa: E402
from difflab.sample import sample_frame  # noqa: E402
from difflab.tabular.baselines import GaussianCopula, Interpolation  # noqa: E402

GENERATORS = ("difflab", "difflab-bits", "difflab-multinomial", "difflab-masked", "copula", "smote", "real")
LABELS = {"difflab": "difflab (one-hot)", "difflab-bits": "difflab (analog bits)",
          "difflab-multinomial": "difflab (multinomial)", "difflab-masked": "difflab (masked)",
          "copula": "Gaussian copula", "smote": "SMOTE-style interpolation", "real": "real training rows"}
ENCODING_OF = {"difflab": "onehot", "difflab-bits": "bits", "difflab-multinomial": "multinomial",
               "difflab-masked": "masked"}
START, END = "<!-- tables.py: start -->", "<!-- tables.py: end -->"
ENC_START, ENC_END = "<!-- tables.py encodings: start -->", "<!-- tables.py encodings: end -->"
TARGETS = {"efficacy": 0.95, "dcr": 1.0, "w1": 1.5}  # issue 11, on wine and breast_cancer


def fit_difflab(name: str, encoding: str, seed: int, steps: int | None, args: argparse.Namespace,
                tmp: Path) -> Callable[[int, int], pd.DataFrame]:
    over: dict[str, Any] = {"data": {"source": f"sklearn:{name}", "encoding": encoding, "seed": seed},
                            "train": {"seed": seed, "steps": steps}}
    cfg = resolve_config(args.preset, overrides=over)
    run = train_run(cfg, tmp / f"{name}-{encoding}-{seed}-{steps}", progress=False)
    return lambda n, s: sample_frame(run, n, seed=s)


def _w1(r: dict[str, Any]) -> str:
    """W1 / floor with its standard error (rows saved before it was measured show the ratio alone)."""
    se = r.get("w1_se", float("nan"))
    return f"{r['w1']:.2f} ± {se:.2f}" if se == se else f"{r['w1']:.2f}"


def score(gen: pd.DataFrame, train: pd.DataFrame, held: pd.DataFrame, spec: Any, target: str,
          repeats: int) -> dict[str, float]:
    m_train, m_held = evaluation_matrix(train, spec), evaluation_matrix(held, spec)
    scale = Standardiser(m_held)
    m_gen = scale(evaluation_matrix(gen, spec))
    n = len(held) // 2
    w1 = evaluate_samples(m_gen, scale(m_held), n=n, repeats=repeats, metrics=["w1"], seed=0)["w1"]
    dcr = distance_to_closest_record(m_gen, scale(m_train), scale(m_held), n=len(gen), seed=0)
    checks = table_checks(gen, train, held, spec, target=target, seed=0)
    eff = checks["efficacy"]
    return {"efficacy": eff["ratio"], "eff_syn": eff["synthetic"], "eff_real": eff["real"], "score": eff["score"],
            "dcr": dcr["ratio"], "dcr_share": dcr["share_closer"], "nearer": dcr["nearer_train"], "w1": w1["ratio"],
            "w1_se": w1["ratio_se"],
            "ks": checks["columns"]["mean"], "ks_floor": checks["columns"]["floor"],
            "corr": checks["correlation"]["value"], "corr_floor": checks["correlation"]["floor"]}


def run_set(name: str, seed: int, args: argparse.Namespace, tmp: Path, *, generators: list[str],
            steps: int | None = None) -> list[dict[str, Any]]:
    cfg = resolve_config(args.preset, overrides={"data": {"source": f"sklearn:{name}", "seed": seed}})
    data = prepare_data(cfg.data)
    spec = data.table
    train, held = spec.decode(data.train), spec.decode(data.heldout)
    target = "target"
    classification = SKLEARN_SETS[name].task == "classification"
    rows = []
    for g in generators:
        start = time.perf_counter()
        if g in ENCODING_OF:
            draw = fit_difflab(name, ENCODING_OF[g], seed, steps, args, tmp)
        elif g == "copula":
            model = GaussianCopula().fit(train, spec)
            draw = lambda n, seed, m=model: m.sample(n, seed=seed)  # noqa: E731
        elif g == "smote":
            model = Interpolation(k=5, target=target if classification else None).fit(train, spec)
            draw = lambda n, seed, m=model: m.sample(n, seed=seed)  # noqa: E731
        else:
            draw = lambda n, seed: train.copy()  # noqa: E731  (the rows as they are: ML efficacy exactly 1)
        fitted = time.perf_counter() - start
        gen = draw(len(train), 1)
        result = {"set": name, "generator": g, "seconds": fitted, "seed": seed, "steps": steps,
                  **score(gen, train, held, spec, target, args.repeats)}
        print(f"{name:14s} {seed} {LABELS[g]:26s} efficacy {result['efficacy']:.3f}  DCR {result['dcr']:.3f} "
              f"({result['dcr_share']:.1%}, nearer train {result['nearer']:.1%})  W1/floor {result['w1']:.2f}  KS/TV {result['ks']:.3f}  "
              f"corr {result['corr']:.3f}  {fitted:.1f} s", flush=True)
        rows.append(result)
    return rows


NUMBERS = ("efficacy", "eff_syn", "eff_real", "dcr", "dcr_share", "nearer", "w1", "ks", "ks_floor", "corr", "corr_floor",
           "seconds")


def means(results: list[dict[str, Any]], key: tuple[str, ...] = ("set", "generator")) -> list[dict[str, Any]]:
    """One row per (set, generator) (or other ``key``), every number averaged over the seeds, with their spread."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault(tuple(r[k] for k in key), []).append(r)
    out = []
    for rows in groups.values():
        m = {k: rows[0][k] for k in (*key, "score")}
        m.update({k: float(np.mean([r[k] for r in rows])) for k in NUMBERS})
        m.update({f"{k}_all": [r[k] for r in rows] for k in ("efficacy", "dcr", "w1")})
        m["seeds"] = len(rows)
        out.append(m)
    return out


def _spread(values: list[float]) -> str:
    return f" ({min(values):.2f}–{max(values):.2f})" if len(values) > 1 else ""


def markdown(results: list[dict[str, Any]], tradeoff: list[dict[str, Any]], args: argparse.Namespace,
             where: str) -> str:
    rows = means(results)
    lines = [START, "",
             "Generated by `.venv/bin/python benchmarks/tables.py --page docs/tables.md` "
             f"(preset `{args.preset}`, seeds {args.seeds}"
             + "".join(f"; {k} trained {v} steps" for k, v in args.steps_for.items()) + ").", "",
             f"Machine: {where}.", "", __doc__.split("\n\n", 1)[1].split("\n    .venv")[0].strip(), ""]
    lines += ["## Targets (issue 11): wine and breast_cancer", "",
              "ML-efficacy ratio ≥ 0.95, median DCR ratio ≥ 1, W1/floor ≤ 1.5, and better than the baselines on each "
              "(means over the seeds; the range over seeds in brackets).", "",
              "| set | measure | target | difflab (one-hot) | met | copula | SMOTE-style |", "|---|---|---|---|---|---|---|"]
    for s in ("wine", "breast_cancer"):
        mine = next((r for r in rows if r["set"] == s and r["generator"] == "difflab"), None)
        if mine is None:
            continue
        base = {g: next((r for r in rows if r["set"] == s and r["generator"] == g), None) for g in ("copula", "smote")}
        for key, label in (("efficacy", "ML efficacy ratio"), ("dcr", "median DCR ratio"), ("w1", "W1 / floor")):
            ok = mine[key] >= TARGETS[key] if key != "w1" else mine[key] <= TARGETS[key]
            better = [g for g, b in base.items() if b is not None and (
                mine[key] > b[key] if key != "w1" else mine[key] < b[key])]
            verdict = ("yes" if ok else "no") + (", beats both baselines" if len(better) == 2 else
                                                 f", beats {' and '.join(better)} only" if better else
                                                 ", behind both baselines")
            shown = [f"{b[key]:.3f}" if b else "–" for b in base.values()]
            lines.append(f"| {s} | {label} | {'≤' if key == 'w1' else '≥'} {TARGETS[key]} | {mine[key]:.3f}"
                         f"{_spread(mine[key + '_all'])} | {verdict} | {shown[0]} | {shown[1]} |")
    lines += ["", "How to read the DCR columns: the real training rows score 0 (they are the training rows) and SMOTE-style "
              "rows lie on segments between training rows, so theirs is low by construction. A ratio above 1 is not "
              "better in itself: the Gaussian copula's rows are far from every training row because they leave the "
              "data's shape (see its ML efficacy and W1), not because they are new rows of the same distribution. "
              "The target ratio of 1 is what fresh draws of the data would score."]
    pair = [r for r in rows if r["generator"] in ENCODING_OF]
    present = [g for g in ENCODING_OF if any(r["generator"] == g for r in pair)]
    if len(present) > 1:
        lines += ["", "## The four encodings of categorical columns", "",
                  "One-hot and analog bits push the categories through the Gaussian diffusion; multinomial and masked "
                  "diffusion give each categorical column a discrete process of its own in the same network "
                  "(``--encoding``). Averaged over every set and seed; the sets' categorical columns are their class "
                  "target (diabetes: also sex).", "",
                  "| encoding | ML efficacy | DCR median ratio | nearer train | W1 / floor | KS/TV mean | corr diff |",
                  "|---|---|---|---|---|---|---|"]
        for g in present:
            mine = [r for r in pair if r["generator"] == g]
            avg = {k: float(np.mean([r[k] for r in mine])) for k in ("efficacy", "dcr", "nearer", "w1", "ks", "corr")}
            lines.append(f"| {LABELS[g].removeprefix('difflab (').removesuffix(')')} | {avg['efficacy']:.3f} | {avg['dcr']:.3f} | "
                         f"{avg['nearer']:.1%} | {avg['w1']:.2f} | {avg['ks']:.3f} | {avg['corr']:.3f} |")
    for s in dict.fromkeys(r["set"] for r in rows):
        lines += ["", f"## {s}", "", "| generator | ML efficacy (synthetic / real score) | DCR median ratio | "
                  "DCR share < 5 % | nearer train | W1 / floor | KS/TV mean (floor) | corr diff (floor) | fit time |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in (r for r in rows if r["set"] == s):
            lines.append(f"| {LABELS[r['generator']]} | {r['efficacy']:.3f} ({r['eff_syn']:.3f} / {r['eff_real']:.3f} "
                         f"{r['score']}) | {r['dcr']:.3f} | {r['dcr_share']:.1%} | {r['nearer']:.1%} | {_w1(r)} | {r['ks']:.3f} "
                         f"({r['ks_floor']:.3f}) | {r['corr']:.3f} ({r['corr_floor']:.3f}) | {r['seconds']:.1f} s |")
    if tradeoff:
        by_steps = means(tradeoff, ("set", "generator", "steps"))
        met: dict[int, int] = {}
        for r in by_steps:
            met[r["steps"]] = met.get(r["steps"], 0) + sum(
                [r["efficacy"] >= TARGETS["efficacy"], r["dcr"] >= TARGETS["dcr"], r["w1"] <= TARGETS["w1"]])
        best = max(met.values())
        lines += ["", "## Training steps: fidelity against copying", "",
                  "difflab (one-hot) trained for other step counts, same seeds. Targets met (of 6, both sets): "
                  + ", ".join(f"{k} steps {v}" for k, v in sorted(met.items()))
                  + f"; most at {' and '.join(str(k) for k, v in sorted(met.items()) if v == best)}. Fewer steps "
                  "leave the model far from the data; more make it copy training rows (DCR falls).", "",
                  "| set | steps | ML efficacy | DCR median ratio | DCR share < 5 % | nearer train | W1 / floor | KS/TV mean "
                  "| fit time |", "|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(by_steps, key=lambda r: (r["set"], r["steps"])):
            lines.append(f"| {r['set']} | {r['steps']} | {r['efficacy']:.3f} | {r['dcr']:.3f} | {r['dcr_share']:.1%} | "
                         f"{r['nearer']:.1%} | {r['w1']:.2f} | {r['ks']:.3f} | {r['seconds']:.1f} s |")
    return "\n".join(lines) + "\n\n" + END + "\n"


def encodings_section(results: list[dict[str, Any]], args: argparse.Namespace, where: str) -> str:
    """The four encodings side by side, per set and on average: a section of its own (``--encodings``)."""
    rows = means(results)
    present = [g for g in ENCODING_OF if any(r["generator"] == g for r in rows)]
    lines = [ENC_START, "## The four encodings of categorical columns (issue 16)", "",
             f"Generated by `.venv/bin/python benchmarks/tables.py --encodings --page docs/tables.md` (preset "
             f"`{args.preset}` but for the encoding, seeds {args.seeds}). Machine: {where}.", "",
             "One-hot and analog bits push the categories through the Gaussian diffusion; multinomial and masked "
             "diffusion give each categorical column a discrete process of its own in the same network. The sets' "
             "categorical columns are their class target (diabetes: sex); the tables with more categories (diamonds, "
             "Housing) are in the sdmetrics section below. Scores as in the tables above.", "",
             "| set | encoding | ML efficacy | DCR median ratio | nearer train | W1 / floor | KS/TV mean (floor) | "
             "corr diff | fit time |", "|---|---|---|---|---|---|---|---|---|"]
    for r in sorted((r for r in rows if r["generator"] in present), key=lambda r: r["set"]):
        lines.append(f"| {r['set']} | {ENCODING_OF[r['generator']]} | {r['efficacy']:.3f} | {r['dcr']:.3f} | "
                     f"{r['nearer']:.1%} | {r['w1']:.2f} | {r['ks']:.3f} ({r['ks_floor']:.3f}) | {r['corr']:.3f} | "
                     f"{r['seconds']:.1f} s |")
    lines += ["", "| encoding (mean over the sets) | ML efficacy | DCR median ratio | nearer train | W1 / floor | "
              "KS/TV mean | corr diff |", "|---|---|---|---|---|---|---|"]
    for g in present:
        mine = [r for r in rows if r["generator"] == g]
        avg = {k: float(np.mean([r[k] for r in mine])) for k in ("efficacy", "dcr", "nearer", "w1", "ks", "corr")}
        lines.append(f"| {ENCODING_OF[g]} | {avg['efficacy']:.3f} | {avg['dcr']:.3f} | {avg['nearer']:.1%} | "
                     f"{avg['w1']:.2f} | {avg['ks']:.3f} | {avg['corr']:.3f} |")
    return "\n".join(lines) + "\n\n" + ENC_END + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", default=",".join(SKLEARN_SETS))
    ap.add_argument("--generators", default=",".join(GENERATORS))
    ap.add_argument("--preset", default="table")
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the held-out split and of difflab's training")
    ap.add_argument("--steps-for", default="digits=2000",
                    help="training steps for named sets instead of the preset's, e.g. digits=2000 (empty: none)")
    ap.add_argument("--tradeoff", default="300,1500,3000",
                    help="other step counts to train difflab for on wine and breast_cancer (empty: none)")
    ap.add_argument("--repeats", type=int, default=20, help="W1 repeats (the held-out sets are small)")
    ap.add_argument("--page", type=Path, default=None, help="write the markdown page here")
    ap.add_argument("--encodings", action="store_true", help="the four encodings alone (no baselines, no "
                    "trade-off), into a section of their own")
    args = ap.parse_args()
    if args.encodings:
        args.generators, args.tradeoff = ",".join(ENCODING_OF), ""
    generators = [g for g in args.generators.split(",") if g]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    args.steps_for = {k: int(v) for k, v in (item.split("=") for item in args.steps_for.split(",") if item)}
    where = f"{machine()}; {load()} at the start"
    print(where, flush=True)
    results, tradeoff = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            for seed in seeds:
                results += run_set(name, seed, args, Path(tmp), generators=generators,
                                   steps=args.steps_for.get(name))
        for steps in (int(s) for s in args.tradeoff.split(",") if s):
            for name in ("wine", "breast_cancer"):
                for seed in seeds:
                    tradeoff += run_set(name, seed, args, Path(tmp), generators=["difflab"], steps=steps)
    preset_steps = resolve_config(args.preset).train.steps
    tradeoff += [{**r, "steps": preset_steps} for r in results
                 if r["generator"] == "difflab" and r["set"] in ("wine", "breast_cancer")] if tradeoff else []
    if args.page is not None and args.encodings:
        write_section(args.page, encodings_section(results, args, f"{where}; {load()} at the end"), ENC_START, ENC_END)
        print(f"wrote {args.page}")
    elif args.page is not None:
        write_section(args.page, markdown(results, tradeoff, args, f"{where}; {load()} at the end"), START, END)
        print(f"wrote {args.page}")


if __name__ == "__main__":
    main()
