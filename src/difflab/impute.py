"""Imputation with a trained run: every missing cell of a table drawn from the model given its row's observed cells.

The run's model is unconditional; conditioning is done at sampling time by RePaint's resampling
(:mod:`difflab.sampling.inpaint`) in the scaled feature space. A table's cells become features and a mask of the
features that are *known* (:func:`observe_frame`):

- a number: its feature is known where the cell is present; a number modelled with a missing-value flag has the flag
  known as "present" in every row, so the model is asked for a value, not for whether there is one;
- a label (categorical or boolean column, one-hot or analog bits): all its features are known where the label is
  present, none where it is missing; a run that modelled missing labels as a level (``--missing category``) has the
  one-hot feature of that level known as 0, and a missing cell is never filled with "missing";
- a constant column: nothing to draw; its missing cells get the constant.

The draws are decoded as samples are (:meth:`difflab.data.table.TableSpec.decode`), and only the missing cells are
taken from them: the observed cells of the returned frame are the input's own values, in its own dtype (a column that
missing values had widened, whole numbers read as floats or booleans as objects, gets its trained dtype back).
``draws`` = M gives M completed tables (multiple imputation); :func:`point_estimate` combines them into one (the mean
of the numbers, the most frequent label).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from difflab.data.encodings import ENCODINGS, get_encoding
from difflab.data.table import ColumnSpec, TableSpec
from difflab.errors import ConfigError, DataError
from difflab.mixed import inpaint_mixed
from difflab.rundir import Run
from difflab.sample import run_denoiser, sampling_kwargs, sampling_threads, view_denoisers
from difflab.sampling import make_grid
from difflab.sampling.api import DEFAULT_BLOCK, DEFAULT_CHUNK, blocked
from difflab.sampling.inpaint import ForwardKernel, GaussianKernel, inpaint

# RePaint's resampling U and jump length j (Lugmayr et al. 2022 used U = 10, j = 10 on 250 steps), chosen by
# benchmarks/impute.py (docs/tables.md, "Imputation"): on iris, wine and diabetes at 20 % MCAR, U = 5, j = 1 gave
# the lowest RMSE or within 0.006 of it (U = 10 no better at twice the calls; U = 1 0.04-0.1 worse), and with exact
# denoisers j = 1 put the least mass in a far mode of 8gaussians.
DEFAULT_RESAMPLE = 5
DEFAULT_JUMP = 1


def impute_features(
    run: Run, x: np.ndarray, known: np.ndarray, *, draws: int = 1, seed: int = 0, resample: int = DEFAULT_RESAMPLE,
    jump: int = DEFAULT_JUMP, chunk_size: int = DEFAULT_CHUNK, **over: Any,
) -> np.ndarray:
    """``draws`` completions (M, N, D) in data units of the feature rows ``x`` (N, D), given the features where
    ``known`` (N, D) is True (elsewhere ``x`` only needs to be finite). ``over``: sampling settings (sampler, steps,
    grid, …) on top of the run's. Known features come back as the scaler's round trip of ``x``; the cells they came
    from are the caller's to keep."""
    if run.condition is not None:
        raise ConfigError(f"{run.path} is conditioned on {run.condition.column!r}; imputation needs a run trained "
                          "without --condition (its network generates every column)")
    if draws < 1 or resample < 1 or jump < 1:
        raise ConfigError(f"draws, resample and jump must be at least 1, got {draws}, {resample}, {jump}")
    # the run's own sampler unless one is named: ``steps`` alone would otherwise pick a few-step ODE solver
    # (sample.with_budget), whose deterministic jumps do not make RePaint's resampling chain
    over = {**over, "sampler": over.get("sampler") or run.config.sample.sampler}
    kwargs = sampling_kwargs(run, **over)
    ts = make_grid(run.diffusion, kwargs["steps"], kwargs["grid"])
    scaled = torch.as_tensor(run.scaler.transform(np.asarray(x, dtype=np.float64)), dtype=torch.float32)
    mask = torch.as_tensor(np.asarray(known, dtype=bool))
    rows = len(scaled) * draws
    x0, mask = scaled.repeat(draws, 1), mask.repeat(draws, 1)  # draw m of row i is row m·N + i
    out = torch.empty_like(x0)
    gen = torch.Generator().manual_seed(seed)
    with sampling_threads(run, min(rows, chunk_size)):
        if run.layout is not None:  # labels diffused by a discrete process: RePaint over the joint process
            make = view_denoisers(run, **over)
            for lo in range(0, rows, chunk_size):
                hi = min(lo + chunk_size, rows)
                out[lo:hi] = inpaint_mixed(run, make, x0[lo:hi], mask[lo:hi], generator=gen,
                                           sampler=kwargs["sampler"], steps=kwargs["steps"], grid=kwargs["grid"],
                                           resample=resample, jump=jump, options=kwargs["options"],
                                           never=missing_levels(run))
            return unscaled(run, out, draws)
        denoise = run_denoiser(run, **over)
        if rows > DEFAULT_BLOCK:
            denoise = blocked(denoise, DEFAULT_BLOCK, workers=torch.get_num_threads())
        for lo in range(0, rows, chunk_size):
            hi = min(lo + chunk_size, rows)
            out[lo:hi] = inpaint(denoise, run.diffusion, ts, x0[lo:hi], mask[lo:hi], kernel=forward_kernel(run),
                                 generator=gen, sampler=kwargs["sampler"], resample=resample, jump=jump,
                                 options=kwargs["options"])
    return unscaled(run, out, draws)


def unscaled(run: Run, out: torch.Tensor, draws: int) -> np.ndarray:
    """Scaled rows (M·N, D), draw m of row i at m·N + i → (M, N, D) in data units."""
    data = run.scaler.inverse_transform(out.numpy().astype(np.float64))
    return data.reshape(draws, -1, run.dim)


def missing_levels(run: Run) -> dict[int, int]:
    """{discretely diffused column: the code of its "missing" level} for the columns that have one."""
    if run.layout is None or run.table is None:
        return {}
    levels = [run.table.column(name).levels or [] for name in run.layout.names]
    return {c: lv.index(None) for c, lv in enumerate(levels) if None in lv}


def forward_kernel(run: Run) -> ForwardKernel:
    """The forward draws RePaint needs for a Gaussian run's features: the Gaussian process's over all of them (a run
    whose labels are diffused by a discrete process goes through :func:`difflab.mixed.inpaint_mixed`)."""
    return GaussianKernel(run.diffusion)


# -- tables: cells → features and known features ------------------------------------------------------------------
def check_columns(run: Run, frame: pd.DataFrame, source: str) -> None:
    """The frame holds every column the run trained on and no other, and has something to impute."""
    names = run.table.names if run.table is not None else run.columns
    extra = [c for c in frame.columns if c not in names]
    if extra:
        raise DataError(f"{source}: column {extra[0]!r} is not one the run was trained on ({', '.join(names)})")
    absent = [c for c in names if c not in frame.columns]
    if absent:
        raise DataError(f"{source}: no column {absent[0]!r}, which the run was trained on; add it (empty, to impute "
                        "every cell of it)")
    if len(frame) == 0:
        raise DataError(f"{source}: no rows")
    if not frame.isna().any().any():
        raise DataError(f"{source}: no missing cells; there is nothing to impute")


def _placeholder(c: ColumnSpec) -> Any:
    """A value that encodes for column ``c``, standing in for a missing cell (its features are not known)."""
    if c.numeric:
        return c.fill if c.fill is not None else (c.low if c.low is not None else 0.0)
    return next(v for v in c.levels or [None] if v is not None)


def observe_frame(run: Run, frame: pd.DataFrame, source: str = "table") -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``frame`` as features in data units (N, D), and which of them are known (N, D) bool."""
    check_columns(run, frame, source)
    if run.table is None:  # a plain numeric run: the features are the columns
        try:
            x = frame[run.columns].to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            raise DataError(f"{source}: every column must hold numbers") from None
        known = ~np.isnan(x)
        if np.isinf(x).any():
            raise DataError(f"{source}: infinite values cannot be conditioned on")
        return np.where(known, x, np.median(run.train, axis=0)), known
    spec = run.table
    filled = frame[spec.names].copy()
    for c in spec.columns:
        col = filled[c.name]
        if col.isna().any():
            if c.kind == "constant":
                continue
            col = col.astype(object) if not c.numeric or col.dtype == object else col
            filled[c.name] = col.where(col.notna(), _placeholder(c))
    x = spec.encode(filled.fillna({c.name: c.levels[0] for c in spec.columns if c.kind == "constant"}),
                    source=source)
    return x, _known_features(spec, frame)


def _known_features(spec: TableSpec, frame: pd.DataFrame) -> np.ndarray:
    known, j = np.zeros((len(frame), len(spec.features)), dtype=bool), 0
    for c in spec.columns:
        w, present = c.width(spec.encoding), frame[c.name].notna().to_numpy()
        if c.numeric:
            known[:, j] = present
            known[:, j + 1 : j + w] = True  # the missing-value flag: "present"
        else:
            known[:, j : j + w] = present[:, None]
            if None in (c.levels or []) and spec.encoding == "onehot":
                known[:, j + c.levels.index(None)] = True  # the "<missing>" level's indicator: 0
        j += w
    return known


# -- tables: draws → cells -------------------------------------------------------------------------------------------
def _decode_present(spec: TableSpec, x: np.ndarray) -> pd.DataFrame:
    """:meth:`TableSpec.decode`, except that a label column that has a missing level decodes to the nearest present
    level (imputation fills a cell; it does not say it is missing)."""
    out, j = spec.decode(x), 0
    for c in spec.columns:
        w = c.width(spec.encoding)
        gone = out[c.name].isna().to_numpy()
        if not c.numeric and None in (c.levels or []) and gone.any() and spec.encoding in ENCODINGS:
            keep = [i for i, v in enumerate(c.levels) if v is not None]
            codes = get_encoding(spec.encoding).codes(len(c.levels)).astype(np.float64)[keep]
            f = x[gone, j : j + w]
            pick = np.argmax(2.0 * f @ codes.T - (codes * codes).sum(axis=1), axis=1)
            values = out[c.name].to_numpy(dtype=object, copy=True)
            values[gone] = np.asarray([c.levels[i] for i in keep], dtype=object)[pick]
            out[c.name] = _as(pd.Series(values, dtype=object), out[c.name].dtype)
        j += w
    return out


def _fill(col: pd.Series, gone: np.ndarray, values: pd.Series, trained: str | None) -> pd.Series:
    """``col`` with the cells ``gone`` taken from ``values``, in the trained dtype where missing cells had only
    widened the column's (whole numbers read as floats, booleans or labels as objects), else in ``col``'s own."""
    out = col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col.copy()
    out = out.astype(object) if out.dtype != object and values.dtype == object else out
    out[gone] = values[gone].to_numpy()
    widened = trained is not None and trained != str(col.dtype) and (
        (col.dtype.kind == "f" and trained.startswith(("int", "uint"))) or col.dtype == object
        or isinstance(col.dtype, pd.CategoricalDtype))
    target = trained if widened else (col.dtype if out.dtype != col.dtype else None)
    return _as(out, target) if target is not None else out


def impute_frame(run: Run, frame: pd.DataFrame, *, draws: int = 1, seed: int = 0, source: str = "table",
                 **kwargs: Any) -> list[pd.DataFrame]:
    """``draws`` completed copies of ``frame``: its missing cells drawn from the run's model given each row's
    observed cells, its observed cells as they are. ``kwargs`` go to :func:`impute_features` (resample, jump,
    sampling settings)."""
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    x, known = observe_frame(run, frame, source)
    completed = impute_features(run, x, known, draws=draws, seed=seed, **kwargs)
    out = []
    for xm in completed:
        decoded = _decode_present(run.table, xm) if run.table is not None else pd.DataFrame(xm, columns=run.columns)
        filled = frame.copy()
        for name in frame.columns:
            gone = frame[name].isna().to_numpy()
            if gone.any():
                trained = run.table.column(name).dtype if run.table is not None else None
                filled[name] = _fill(frame[name], gone, decoded[name].reset_index(drop=True), trained)
        out.append(filled)
    return out


def point_estimate(frames: list[pd.DataFrame], missing: pd.DataFrame) -> pd.DataFrame:
    """One table from M completed ones (the same observed cells): at each cell that ``missing`` (a boolean frame)
    marks, numbers take the mean of the M draws (rounded where every draw is a whole number) and labels the most
    frequent draw (the first drawn of the tied ones)."""
    out = frames[0].copy()
    for name in out.columns:
        gone = missing[name].to_numpy()
        if not gone.any() or len(frames) == 1:
            continue
        stack = [f[name] for f in frames]
        if pd.api.types.is_numeric_dtype(stack[0]) and not pd.api.types.is_bool_dtype(stack[0]):
            values = np.stack([s.to_numpy(dtype=np.float64) for s in stack])
            mean = values.mean(axis=0)
            whole = np.all(values == np.round(values), axis=0)
            out.loc[gone, name] = np.where(whole, np.round(mean), mean)[gone].astype(out[name].dtype)
        else:
            values = np.stack([s.astype(object).to_numpy() for s in stack], axis=1)[gone]  # (cells, M)
            column = out[name].to_numpy(dtype=object, copy=True)
            column[gone] = [_mode(row) for row in values]
            out[name] = _as(pd.Series(column, index=out.index), frames[0][name].dtype)
    return out


def _mode(values: np.ndarray) -> Any:
    """The most frequent value, the first drawn among tied ones."""
    counts: dict[Any, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=counts.__getitem__)  # max keeps the first of equal counts, in insertion order


def _as(values: pd.Series, dtype: Any) -> pd.Series:
    try:
        return values.astype(dtype)
    except (TypeError, ValueError):
        return values
