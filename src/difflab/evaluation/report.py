"""What ``difflab evaluate`` measures: a run's samples (or a sample file) against true points, as a dict and as text.

Every metric is reported next to its noise floor (:func:`difflab.evaluation.evaluate_samples`); a run also gets the
memorisation measure (:func:`nearest_neighbour_ratio`) and, on request, the held-out ELBO (:mod:`.likelihood`).
The true points are a toy's i.i.d. sampler (never its training recipe) or held-out rows of a file. Every input is
checked before any sampling starts.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from difflab.errors import ConfigError, DataError, DifflabError
from difflab.evaluation.floors import (
    Reference,
    _resolve_metrics,
    evaluate_samples,
    format_table,
    nearest_neighbour_ratio,
)
from difflab.evaluation.likelihood import REVERSE_VARIANCES, elbo
from difflab.evaluation.metrics import METRICS


def parse_metrics(text: str | None) -> list[str] | None:
    """``"w1,energy"`` → ``["w1", "energy"]`` (checked against :data:`METRICS`); None → all."""
    if text is None:
        return None
    names = [m.strip() for m in text.split(",") if m.strip()]
    if not names:
        raise ConfigError(f"--metrics {text!r}: expected comma-separated names from: {', '.join(METRICS)}")
    return _resolve_metrics(names)


def _check_counts(n: int, repeats: int) -> None:
    if n < 2:
        raise ConfigError(f"--n {n} is too small; every metric needs at least 2 points per sample")
    if repeats < 1:
        raise ConfigError(f"--repeats {repeats}; expected at least 1")


def load_reference(spec: str, width: int, n: int) -> tuple[Reference, str]:
    """A toy name (its i.i.d. sampler) or a .csv/.npy/.parquet file of true points, checked against the samples'
    ``width`` and against ``n`` (an array must hold 2·n rows for two disjoint true samples)."""
    from difflab.data import DATASETS, read_table

    if spec in DATASETS:
        toy = DATASETS[spec]
        if width != 2:
            raise DataError(f"samples have {width} columns, the toy reference {spec!r} has 2")
        return toy.iid, f"toy {spec!r} (i.i.d. sampler)"
    if not Path(spec).suffix and not Path(spec).exists():
        raise ConfigError(f"--reference {spec!r}: not a toy dataset ({', '.join(DATASETS)}) nor a data file")
    points, _ = read_table(spec)
    return _check_array(points, width, n, spec), f"file {spec} ({len(points)} rows)"


def _check_array(points: np.ndarray, width: int, n: int, name: str) -> np.ndarray:
    if points.shape[1] != width:
        raise DataError(f"{name}: reference has {points.shape[1]} columns, the samples have {width}")
    if len(points) < 2 * n:
        raise ConfigError(f"{name}: reference has {len(points)} points; n={n} needs 2 × n disjoint points — "
                          f"use --n {len(points) // 2} or fewer")
    return points


def _subset(points: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(points) <= n:
        return points
    return points[np.sort(np.random.default_rng(seed).choice(len(points), size=n, replace=False))]


def evaluate_run(
    run_dir: str | Path,
    *,
    n: int = 2000,
    repeats: int = 3,
    seed: int = 0,
    metrics: list[str] | None = None,
    reference: str | None = None,
    with_elbo: bool = False,
    elbo_variance: str = "large",
    **sampling: Any,
) -> dict[str, Any]:
    """Sample a run (n · repeats points, ``sampling`` as in ``difflab sample``) and compare with the truth.

    The truth is ``reference`` if given, else the run's toy (i.i.d. sampler) or its held-out rows. ``with_elbo``
    adds the ELBO of up to n held-out points and, for a Gaussian-mixture toy, their true NLL.
    """
    from difflab.rundir import load_run
    from difflab.sample import sample_run, sampling_kwargs

    _check_counts(n, repeats)
    metrics = _resolve_metrics(metrics) if metrics is not None else None
    if elbo_variance not in REVERSE_VARIANCES:
        raise ConfigError(f"--elbo-variance {elbo_variance!r}; choose one of: {', '.join(REVERSE_VARIANCES)}")
    run = load_run(run_dir)
    kwargs = sampling_kwargs(run, **sampling)  # checks sampler, steps and grid before any work
    if reference is not None:
        ref, ref_name = load_reference(reference, run.dim, n)
    elif run.toy is not None:
        ref, ref_name = run.toy.iid, f"toy {run.toy.name!r} (i.i.d. sampler)"
    elif run.heldout is not None:
        ref, ref_name = _check_array(run.heldout, run.dim, n, f"{run_dir} held-out rows"), "the run's held-out rows"
    else:
        raise DifflabError(f"{run_dir}: the run keeps no held-out rows (trained with holdout = 0); "
                           "give --reference FILE with true points")
    heldout = _subset(ref, n, seed) if not callable(ref) else ref(n, seed)

    samples, _ = sample_run(run, n * repeats, seed=seed, **sampling)
    report: dict[str, Any] = {"target": str(run_dir), "reference": ref_name}
    report.update(evaluate_samples(samples, ref, n=n, repeats=repeats, metrics=metrics, seed=seed))
    report.update({"n": n, "repeats": repeats, "seed": seed,
                   "sampling": {"sampler": kwargs["sampler"], "steps": kwargs["steps"] or run.diffusion.T,
                                "grid": kwargs["grid"], **kwargs["options"]}})
    report["memorisation"] = nearest_neighbour_ratio(samples, run.train, heldout, n=n, seed=seed)
    if with_elbo:
        report["elbo"] = heldout_elbo(run, heldout, seed=seed, variance=elbo_variance)
    return report


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
    n: int = 2000,
    repeats: int = 3,
    seed: int = 0,
    metrics: list[str] | None = None,
) -> dict[str, Any]:
    """Compare a .csv/.npy/.parquet file of samples with ``reference`` (a toy name or a file of true points)."""
    from difflab.data import read_table

    if reference is None:
        raise ConfigError(f"{samples_path}: evaluating a sample file needs --reference (a toy name or a file of "
                          "true points)")
    _check_counts(n, repeats)
    metrics = _resolve_metrics(metrics) if metrics is not None else None
    samples, _ = read_table(samples_path)
    ref, ref_name = load_reference(reference, samples.shape[1], n)
    if len(samples) < n:
        raise ConfigError(f"{samples_path}: has {len(samples)} samples, fewer than n={n} — "
                          f"use --n {len(samples)} or fewer")
    report: dict[str, Any] = {"target": str(samples_path), "reference": ref_name}
    report.update(evaluate_samples(samples, ref, n=n, repeats=repeats, metrics=metrics, seed=seed))
    report.update({"n": n, "repeats": repeats, "seed": seed})
    return report


def format_report(report: dict[str, Any]) -> str:
    """The report as text: what was compared, the metric table, memorisation and ELBO lines."""
    results = {k: v for k, v in report.items() if k in METRICS}
    lines = [f"{report['target']} vs {report['reference']}"]
    if "sampling" in report:
        s = report["sampling"]
        lines[0] += f"; sampler {s['sampler']}, {s['steps']} steps"
    lines.append(format_table(results, report["n"]))
    mem = report.get("memorisation")
    if mem:
        lines.append(f"memorisation: median distance to the nearest training point {mem['generated_to_train']:.4g} "
                     f"(samples) vs {mem['heldout_to_train']:.4g} (held-out truth), ratio {mem['ratio']:.3g} "
                     "(1 = like new data, much below 1 = copies training points)")
    e = report.get("elbo")
    if e:
        lines.append(f"ELBO ({e['n']} held-out points, reverse variance {e['variance']}): "
                     f"{e['nats_per_dim']:.4f} ± {e['stderr']:.4f} nats/dim = {e['bits_per_dim']:.4f} bits/dim "
                     f"(prior {e['prior']:.4f} + diffusion {e['diffusion']:.4f} + decoder {e['decoder']:.4f} "
                     f"+ scaler {e['jacobian']:.4f})")
        if "true_nll" in e:
            lines.append(f"true NLL of the same points: {e['true_nll']:.4f} ± {e['true_nll_stderr']:.4f} nats/dim "
                         f"(ELBO − true NLL = {e['gap']:.4f}; the ELBO bounds the model's NLL from above)")
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
