"""What ``difflab evaluate`` measures: a run's samples (or a sample file) against true points, as a dict and as text.

Every metric is reported next to its noise floor (:func:`difflab.evaluation.evaluate_samples`), on columns
standardised by the reference's mean and sd unless ``raw_units`` (W1, energy and SWD would otherwise be decided by
the widest column alone). A run also gets the distance to closest record (:mod:`.privacy`, reported as
"memorisation") and, on request, the held-out ELBO (:mod:`.likelihood`). Against real rows (held-out rows or a file)
the row checks of :mod:`.tables` follow: per-column KS / TV, correlations, piling at range ends and, when the table
has a target column, ML efficacy. The true points are a toy's i.i.d. sampler (never its training recipe) or real
rows. ``n`` left at None is the largest feasible up to 2000, and the report says so. Every input is checked before
any sampling starts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.data import DATASETS
from difflab.data.files import frame_to_array, read_frame
from difflab.errors import ConfigError, DifflabError
from difflab.evaluation.floor_cache import toy_key
from difflab.evaluation.floors import MIN_REPEATS, Reference, _resolve_metrics, evaluate_samples, format_table
from difflab.evaluation.likelihood import REVERSE_VARIANCES, elbo
from difflab.evaluation.metrics import METRICS
from difflab.evaluation.ode_likelihood import ode_nll
from difflab.evaluation.privacy import distance_to_closest_record
from difflab.evaluation.references import (
    DEFAULT_N,
    check_array,
    check_reference_path,
    file_tables,
    load_reference,
    pick_n,
    pick_target,
    run_reference,
    scaling,
    subset,
)
from difflab.evaluation.tables import evaluation_matrix, format_checks, numeric_spec, table_checks

MAX_CHECK_ROWS = 20_000  # training rows the row checks use at most (random subset)


def parse_metrics(text: str | None) -> list[str] | None:
    """``"w1,energy"`` → ``["w1", "energy"]`` (checked against :data:`METRICS`); None → all."""
    if text is None:
        return None
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise ConfigError(f"--metrics {text!r}: expected comma-separated names from: {', '.join(METRICS)}")
    return _resolve_metrics(names)


def _check_counts(n: int, repeats: int | None, floor_pairs: int | None = None) -> None:
    if n < 2:
        raise ConfigError(f"--n {n} is too small; every metric needs at least 2 points per sample")
    if repeats is not None and repeats < 1:
        raise ConfigError(f"--repeats {repeats}; expected at least 1")
    if floor_pairs is not None and floor_pairs < 2:
        raise ConfigError(f"--floor-pairs {floor_pairs}; expected at least 2")


def evaluate_run(
    run_dir: str | Path,
    *,
    n: int | None = None,
    repeats: int | None = None,
    floor_pairs: int | None = None,
    seed: int = 0,
    metrics: list[str] | None = None,
    reference: str | None = None,
    with_elbo: bool = False,
    elbo_variance: str = "large",
    with_nll: bool = False,
    raw_units: bool = False,
    target: str | None = None,
    **sampling: Any,
) -> dict[str, Any]:
    """Sample a run (``sampling`` as in ``difflab sample``) and compare with the truth.

    The truth is ``reference`` if given, else the run's toy (i.i.d. sampler) or its held-out rows. ``n`` None picks
    the largest feasible n up to 2000. ``raw_units`` compares data units instead of standardised columns. Against
    real rows the report adds the row checks (``checks``; ML efficacy for ``target``, by default a column named
    "target"). ``with_elbo`` adds the ELBO of up to n held-out points and, for a Gaussian-mixture toy, their true NLL;
    ``with_nll`` the exact NLL of the same points under the probability-flow ODE (``nll_ode``, nats/dim).
    """
    from difflab.rundir import load_run
    from difflab.sample import sample_run, sampling_kwargs

    _check_counts(n if n is not None else DEFAULT_N, repeats, floor_pairs)
    metrics = _resolve_metrics(metrics) if metrics is not None else None
    if elbo_variance not in REVERSE_VARIANCES:
        raise ConfigError(f"--elbo-variance {elbo_variance!r}; choose one of: {', '.join(REVERSE_VARIANCES)}")
    run = load_run(run_dir)
    kwargs = sampling_kwargs(run, **sampling)  # checks sampler, steps and grid before any work
    if with_elbo and run.config.train.coupling != "none":  # (the PF-ODE NLL is the coupled model's own)
        raise ConfigError(f"--elbo: {run_dir} was trained with coupling '{run.config.train.coupling}'; the ELBO bounds "
                          "the likelihood of the independent Gaussian forward process, which it does not learn; use "
                          "--nll (the probability-flow ODE's exact likelihood)")
    if with_elbo or with_nll:
        run.scaler.log_abs_det_jacobian()  # a scaler that is not affine has no ELBO in data units: say so now
        run.denoiser()  # nor has a conditional run (its network generates rows given the class)
    if reference is not None:
        ref, ref_name = run_reference(run, reference)
    elif run.toy is not None:
        ref, ref_name = run.toy.iid, f"toy {run.toy.name!r} (i.i.d. sampler)"
    elif run.heldout is not None:
        ref, ref_name = run.heldout, "the run's held-out rows"
    else:
        raise DifflabError(f"{run_dir}: the run keeps no held-out rows (trained with holdout = 0); "
                           "give --reference FILE with true points")
    asked = n if n is not None else DEFAULT_N
    n, note = pick_n(n, None if callable(ref) else len(ref), ref_name)
    if not callable(ref):
        ref = check_array(ref, run.dim, n, f"{run_dir} held-out rows" if reference is None else reference)
    spec = run.table if run.table is not None else numeric_spec(run.columns)
    target = pick_target(spec, target) if not callable(ref) else None
    train = subset(run.train, MAX_CHECK_ROWS, seed)
    n_rows = len(train) if not callable(ref) else 0
    # one pool of samples, n per draw up to the first MIN_REPEATS draws (or the draws asked for): later automatic
    # draws are subsets of it, as with a file of samples, because sampling is what costs most (the default recipe
    # samples 2000 points in seconds); the ± is then that of the ratio given this pool
    samples, _ = sample_run(run, max(n * (repeats or MIN_REPEATS), asked, n_rows), seed=seed, **sampling)

    def rows(x: np.ndarray) -> np.ndarray:  # features → evaluation matrix (a table's labels one-hot)
        return evaluation_matrix(spec.decode(x), spec) if run.table is not None else x

    scale = scaling(ref, rows, raw_units, seed)
    true: Reference = (lambda m, s: scale(ref(m, s))) if callable(ref) else scale(rows(ref))
    generated = scale(rows(samples))

    report: dict[str, Any] = {"target": str(run_dir), "reference": ref_name}
    scores = evaluate_samples(generated, true, n=n, repeats=repeats, floor_pairs=floor_pairs, metrics=metrics, seed=seed,
                              reference_key=toy_key(run.toy.name, raw_units) if callable(ref) else None)
    report.update(scores)
    report.update({"n": n, "repeats": max(v["repeats"] for v in scores.values()), "seed": seed,
                   "standardised": not raw_units,
                   "sampling": {"sampler": kwargs["sampler"], "steps": kwargs["steps"] or run.diffusion.T,
                                "grid": kwargs["grid"], **kwargs["options"]}})
    if note:
        report["n_note"] = note
    heldout = ref(asked, seed) if callable(ref) else ref
    report["memorisation"] = distance_to_closest_record(generated, scale(rows(run.train)), scale(rows(heldout)),
                                                        n=asked, seed=seed)
    if not callable(ref):
        report["checks"] = table_checks(spec.decode(samples[:n_rows]), spec.decode(train), spec.decode(ref), spec,
                                        target=target, seed=seed)
    if with_elbo:
        points = subset(ref, n, seed) if not callable(ref) else ref(n, seed)
        report["elbo"] = heldout_elbo(run, points, seed=seed, variance=elbo_variance)
    if with_nll:
        points = subset(ref, n, seed) if not callable(ref) else ref(n, seed)
        detail = heldout_ode_nll(run, points, seed=seed)
        report["nll_ode"], report["nll_ode_detail"] = detail["nats_per_dim"], detail
    return report


def heldout_ode_nll(run: Any, points: np.ndarray, *, seed: int = 0) -> dict[str, Any]:
    """The probability-flow ODE's NLL of ``points`` (data units) under a run, nats/dim of the data's units
    (:func:`difflab.evaluation.ode_likelihood.ode_nll`)."""
    from difflab.sample import sampling_threads

    x = torch.as_tensor(run.scaler.transform(points), dtype=torch.float64)
    with sampling_threads(run, len(x)):
        return ode_nll(run.denoiser(), x, scaler_logdet=run.scaler.log_abs_det_jacobian(),
                       generator=torch.Generator().manual_seed(seed))


def heldout_elbo(run: Any, points: np.ndarray, *, seed: int = 0, variance: str = "large") -> dict[str, Any]:
    """The ELBO of ``points`` (data units) under a run, in nats/dim of the data's units; for a Gaussian-mixture
    toy also ``true_nll``, the mean −log p of the same points under the true density (a Monte Carlo estimate of
    the data's entropy per dimension), and ``gap`` = ELBO − true NLL."""
    from difflab.sample import sampling_threads

    x = torch.as_tensor(run.scaler.transform(points), dtype=torch.float32)
    with sampling_threads(run, len(x)):  # the denoiser sees len(x) rows per call, as when sampling
        out: dict[str, Any] = elbo(run.denoiser(), run.diffusion, x, variance=variance,
                                   scaler_logdet=run.scaler.log_abs_det_jacobian(),
                                   generator=torch.Generator().manual_seed(seed))
    mixture = run.toy.mixture if run.toy is not None else None
    if mixture is not None:
        nll = -mixture.log_prob(points) / points.shape[1]
        out["true_nll"] = float(nll.mean())
        out["true_nll_stderr"] = float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1 else math.nan
        out["gap"] = out["nats_per_dim"] - out["true_nll"]
    return out


def evaluate_file(
    samples_path: str | Path,
    *,
    reference: str | None,
    n: int | None = None,
    repeats: int | None = None,
    floor_pairs: int | None = None,
    seed: int = 0,
    metrics: list[str] | None = None,
    raw_units: bool = False,
    target: str | None = None,
) -> dict[str, Any]:
    """Compare a .csv/.npy/.parquet file of samples with ``reference`` (a toy name or a file of true rows).

    Two files are compared as tables: of numbers column by column in order, else by column name with kinds detected
    from the reference (labels one-hot). Against a file the report adds the row checks, with one random half of the
    reference rows as the real rows the samples are measured beside and the other half as the reference.
    """
    if reference is None:
        raise ConfigError(f"{samples_path}: evaluating a sample file needs --reference (a toy name or a file of "
                          "true points)")
    _check_counts(n if n is not None else DEFAULT_N, repeats, floor_pairs)
    metrics = _resolve_metrics(metrics) if metrics is not None else None
    frame = read_frame(samples_path)
    if reference in DATASETS:
        samples = frame_to_array(samples_path, frame)
        ref, ref_name = load_reference(reference, samples.shape[1], None)
        spec, ref_frame = numeric_spec(list(frame.columns)), None
    else:
        check_reference_path(reference)
        spec, frame, ref_frame = file_tables(str(samples_path), frame, reference)
        samples, ref = evaluation_matrix(frame, spec), evaluation_matrix(ref_frame, spec)
        ref_name = f"file {reference} ({len(ref_frame)} rows)"
    given = n
    n, note = pick_n(n, None if callable(ref) else len(ref), ref_name)
    if given is None and len(samples) < n:
        n, note = len(samples), f"n = {len(samples)} chosen, the most the samples allow: {samples_path} holds that many"
    if not callable(ref):
        ref = check_array(ref, samples.shape[1], n, reference)
    if len(samples) < n:
        raise ConfigError(f"{samples_path}: has {len(samples)} samples, fewer than n={n} — "
                          f"use --n {len(samples)} or fewer")
    scale = scaling(ref, lambda x: x, raw_units, seed)
    true: Reference = (lambda m, s: scale(ref(m, s))) if callable(ref) else scale(ref)
    report: dict[str, Any] = {"target": str(samples_path), "reference": ref_name}
    scores = evaluate_samples(scale(samples), true, n=n, repeats=repeats, floor_pairs=floor_pairs, metrics=metrics,
                              seed=seed,
                              reference_key=toy_key(reference, raw_units) if callable(ref) else None)
    report.update(scores)
    report.update({"n": n, "repeats": max(v["repeats"] for v in scores.values()), "seed": seed,
                   "standardised": not raw_units})
    if note:
        report["n_note"] = note
    if ref_frame is not None and len(ref_frame) >= 4:
        half = np.random.default_rng(seed).permutation(len(ref_frame))
        real, held = ref_frame.iloc[np.sort(half[: len(half) // 2])], ref_frame.iloc[np.sort(half[len(half) // 2 :])]
        report["checks"] = table_checks(frame, real.reset_index(drop=True), held.reset_index(drop=True), spec,
                                        target=pick_target(spec, target), seed=seed, train=ref_frame)
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as text: what was compared, the metric table, memorisation, row checks and ELBO lines."""
    results = {k: v for k, v in report.items() if k in METRICS}
    lines = [f"{report['target']} vs {report['reference']}"]
    if "sampling" in report:
        s = report["sampling"]
        lines[0] += f"; sampler {s['sampler']}, {s['steps']} steps"
    if report.get("n_note"):
        lines.append(report["n_note"])
    if "standardised" in report:
        lines.append("distances on columns standardised by the reference's mean and sd (labels one-hot); "
                     "--raw-units for data units" if report["standardised"] else
                     "distances in data units (--raw-units)")
    lines.append(format_table(results, report["n"]))
    mem = report.get("memorisation")
    if mem:
        lines.append(f"memorisation: median distance to the nearest training row {mem['generated_to_train']:.4g} "
                     f"(samples) vs {mem['heldout_to_train']:.4g} (held-out truth), ratio {mem['ratio']:.3g} "
                     "(1 = like new data, much below 1 = copies training rows)")
        if "share_closer" in mem:
            lines.append(f"  {mem['share_closer']:.1%} of samples lie closer to a training row than the held-out "
                         f"rows' {mem['expected_share']:.0%} quantile ({mem['expected_share']:.0%} for new data)")
        if "nearer_train" in mem:
            lines.append(f"  {mem['nearer_train']:.1%} of samples lie nearer to a training row than to a held-out row "
                         f"({mem['nearer_train_rows']} of each; 50% for new data, more = leaning toward the "
                         "training rows)")
    if report.get("checks"):
        lines += format_checks(report["checks"])
    e = report.get("elbo")
    if e:
        lines.append(f"ELBO ({e['n']} held-out points, reverse variance {e['variance']}): "
                     f"{e['nats_per_dim']:.4f} ± {e['stderr']:.4f} nats/dim = {e['bits_per_dim']:.4f} bits/dim "
                     f"(prior {e['prior']:.4f} + diffusion {e['diffusion']:.4f} + decoder {e['decoder']:.4f} "
                     f"+ scaler {e['jacobian']:.4f})")
        if "true_nll" in e:
            lines.append(f"true NLL of the same points: {e['true_nll']:.4f} ± {e['true_nll_stderr']:.4f} nats/dim "
                         f"(ELBO − true NLL = {e['gap']:.4f}; the ELBO bounds the model's NLL from above)")
    o = report.get("nll_ode_detail")
    if o:
        lines.append(f"probability-flow ODE NLL ({o['n']} held-out points, {o['trace']} trace, {o['calls']:.0f} "
                     f"network calls): {o['nats_per_dim']:.4f} ± {o['stderr']:.4f} nats/dim = "
                     f"{o['bits_per_dim']:.4f} bits/dim")
    return "\n".join(lines)


def to_json(obj: Any) -> Any:
    """Non-finite floats → None, so the file is strict JSON."""
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
