"""``difflab impute`` (fill a file's missing cells) and ``difflab sample --given`` (draw the other columns given some),
both conditional sampling by :mod:`difflab.impute`.

Every input is checked before the model runs and before any file is touched; the files are written atomically, and
with ``--draws M`` the M tables are named ``filled-1.csv`` … ``filled-M.csv`` (numbers zero-padded to the width of M,
so that they sort), all or none of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer

from difflab.errors import DifflabError

Opt = typer.Option
OUT_FORMATS = (".csv", ".parquet", ".npy")


def draw_paths(out: Path, draws: int) -> list[Path]:
    """Where M completed tables go: ``out`` itself for one, else ``stem-01`` … (1-based, zero-padded)."""
    if draws == 1:
        return [out]
    width = len(str(draws))
    return [out.with_name(f"{out.stem}-{m:0{width}d}{out.suffix}") for m in range(1, draws + 1)]


def write_frame(path: Path, frame: pd.DataFrame) -> Path:
    """``frame`` to .csv (floats written in full, so each cell reads back as the same number), .parquet (dtypes
    kept) or .npy (numbers only), atomically."""
    from difflab.io import atomic_path

    suffix = path.suffix.lower()
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            frame.to_csv(tmp, index=False, lineterminator="\n")
        elif suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            with open(tmp, "wb") as f:
                np.save(f, frame.to_numpy(dtype=np.float64), allow_pickle=False)
    return path


def check_out(out: Path, run: Any, draws: int) -> list[Path]:
    """The output paths, refused before any work: an unknown format, a .npy for a table with labels, a folder."""
    from difflab.data.table_files import check_table_format
    from difflab.sampling.output import check_output_path

    paths = draw_paths(out, draws)
    for p in paths:
        check_output_path(p, formats=OUT_FORMATS)
        if run.table is not None:
            labelled = [c.name for c in run.table.columns if not c.numeric and c.kind != "constant"]
            check_table_format(p, all_numbers=run.table.all_numbers, text_columns=labelled)
    return paths


def write_all(paths: list[Path], frames: list[pd.DataFrame]) -> list[Path]:
    """Each frame to its path; if one write fails, the ones already written are removed (all or none)."""
    done: list[Path] = []
    try:
        for p, f in zip(paths, frames, strict=True):
            done.append(write_frame(p, f))
    except BaseException:
        for p in done:
            p.unlink(missing_ok=True)
        raise
    return done


def impute_to_files(run_dir: str | Path, data: str | Path, out: str | Path, *, draws: int = 1, seed: int = 0,
                    point: bool = False, **kwargs: Any) -> list[Path]:
    """Fill the missing cells of the table file ``data`` with the run's model: ``draws`` completed tables, or with
    ``point`` one table of their mean numbers and most frequent labels. ``kwargs`` go to
    :func:`difflab.impute.impute_frame` (resample, jump, sampler, steps, …). Returns the paths written."""
    from difflab.data.files import read_frame
    from difflab.impute import impute_frame, point_estimate
    from difflab.rundir import load_run

    if draws < 1:
        raise DifflabError(f"--draws must be at least 1, got {draws}")
    run = load_run(run_dir)
    paths = check_out(Path(out), run, 1 if point else draws)
    frame = read_frame(data)
    frames = impute_frame(run, frame, draws=draws, seed=seed, source=str(data), **kwargs)
    if point:
        frames = [point_estimate(frames, frame.isna())]
    return write_all(paths, frames)


# -- sample --given ---------------------------------------------------------------------------------------------
def parse_given(items: list[str] | None) -> dict[str, str] | None:
    """--given COLUMN=VALUE pairs (repeatable) as {column: value text}; a malformed or repeated one is an error."""
    if not items:
        return None
    out: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        column = column.strip()
        if not sep or not column or not value.strip():
            raise DifflabError(f"--given {item!r}: expected COLUMN=VALUE, e.g. x=0.5")
        if column in out:
            raise DifflabError(f"--given {column}: given twice")
        out[column] = value.strip()
    return out


def sample_given_to_file(run_dir: str | Path, out: str | Path, *, given: dict[str, str], n: int, seed: int = 0,
                         **kwargs: Any) -> Path:
    """``difflab sample --given``: ``n`` rows drawn given the ``given`` columns, written to ``out``."""
    from difflab.given import sample_given
    from difflab.rundir import load_run

    run = load_run(run_dir)
    paths = check_out(Path(out), run, 1)
    return write_all(paths, [sample_given(run, given, n, seed=seed, **kwargs)])[0]


def register(app: typer.Typer) -> None:
    @app.command("impute")
    def impute(
        run_dir: Annotated[Path, typer.Argument(help="A trained run directory.", show_default=False)],
        data: Annotated[Path, Opt("--data", help="A .csv/.parquet/.npy table with the run's columns and missing "
                                  "cells (empty or NaN) to fill.")],
        out: Annotated[Path, Opt("--out", "-o", help="Output table (.csv, .parquet, or .npy if every column holds "
                                 "numbers); with --draws M: OUT-1 … OUT-M.")],
        draws: Annotated[int, Opt(help="Completed tables to draw (multiple imputation).")] = 1,
        point: Annotated[bool, Opt("--point", help="Write one table instead: each missing number the mean of the "
                                   "M draws, each missing label the most frequent one.")] = False,
        seed: Annotated[int, Opt(help="Seed of the draws.")] = 0,
        resample: Annotated[int | None, Opt(help="RePaint's resampling U: each block of jumps walked U times "
                                            "(network calls: U x steps; default 5).")] = None,
        jump: Annotated[int | None, Opt(help="RePaint's jump length j: jumps per block (default 1).")] = None,
        sampler: Annotated[str | None, Opt(help="The reverse jump's sampler (default: the run's).")] = None,
        steps: Annotated[int | None, Opt(help="Jumps K down the time grid (default: the run's).")] = None,
    ) -> None:
        """Fill a table's missing cells by sampling the run's model given each row's observed cells (RePaint)."""
        if draws < 1:
            raise DifflabError(f"--draws must be at least 1, got {draws}")
        over = {k: v for k, v in (("resample", resample), ("jump", jump), ("sampler", sampler), ("steps", steps))
                if v is not None}
        paths = impute_to_files(run_dir, data, out, draws=draws, seed=seed, point=point, **over)
        shown = str(paths[0]) if len(paths) == 1 else f"{paths[0]} … {paths[-1]}"
        typer.echo(f"imputed {data} -> {shown}")

