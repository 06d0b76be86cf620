"""The ``difflab`` command line: train, sample, plot, datasets, demo (and evaluate, sweep from their own modules).

Every user error is one line on stderr (``error: …``) and exit status 2, with nothing half-written: inputs are
checked before the first file is touched, and files are written atomically. :class:`DifflabGroup` turns
:class:`~difflab.errors.DifflabError`, a bad option and an unwritable path into that line, for the installed
``difflab`` script, ``python -m difflab`` and typer's ``CliRunner`` alike.

Heavy modules (torch, the data package) are imported inside the commands, after the options have been checked,
so ``--help`` and mistakes in options answer at once.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from difflab.errors import DifflabError
from difflab.escape import SafeStream
from difflab.escape import one_line as _one_line
from difflab.limits import SEED_MAX
from difflab.limits import check as check_limit
from difflab.signals import Terminated, terminating_cleanly

# The click that typer uses (vendored in recent typer, the click package in older ones).
_click_exceptions = importlib.import_module(typer.BadParameter.__module__)

# Commands that live in their own modules, each with ``register(app: typer.Typer)``, and their line in the top-level
# help. A module is imported only when its command runs, so a slow or broken one costs the other commands nothing.
PLUGINS = {
    "evaluate": ("difflab.evaluation.cli", "Compare a run's samples with true points: every metric next to its "
                 "noise floor."),
    "sweep": ("difflab.sweep.cli", "Train and evaluate every cell of a grid of options × seeds, in parallel."),
    "report": ("difflab.report.cli", "Write one self-contained interactive HTML page of a run: process and field "
               "under t sliders, samples, metrics with noise floors."),
    "distill": ("difflab.distill.cli", "Distil a trained run into a student that samples in 1-8 network calls "
                "(progressive or consistency distillation, or reflow)."),
    "impute": ("difflab.impute_cli", "Fill a table's missing cells by sampling the run's model given each row's "
               "observed cells (RePaint)."),
}

# Names the help texts list; tests check them against the registries, which are too heavy to import for --help.
SCHEDULE_NAMES = "poly | seed-linear | linear | cosine | sigmoid | array | edm | rectified"
MODEL_NAMES = "seed | mlp | jump-mlp"
SAMPLER_NAMES = "ddpm | ddim | dpm++ | dpm++-sde | heun | heun-sde | ode | consistency | jumps"
GRID_NAMES = "trailing | linspace | logsnr | karras | karras-trailing"
PARAMETERIZATION_NAMES = "eps | x0 | v | score | mean | edm | velocity"
FIGURE_KINDS = "data, forward, samples, trajectories, field, schedules, loss, animation, conditional"
SAMPLE_DEVICES = ("auto", "cpu", "cuda")  # difflab.sampling.device.DEVICES, checked before the heavy imports


def _fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {_one_line(message)}", err=True)
    sys.exit(code)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    """``warnings.formatwarning`` for the command line: ``warning: <message>``, one line, no source location."""
    return f"warning: {_one_line(str(message))}\n"


def _module_exists(name: str) -> bool:
    """Whether module ``name`` is installed, without importing it or its package's ``__init__``."""
    parent, _, leaf = name.rpartition(".")
    try:
        spec = importlib.util.find_spec(parent)
    except ModuleNotFoundError:
        return False
    locations = (spec.submodule_search_locations or []) if spec else []
    return any((Path(loc) / f"{leaf}.py").exists() or (Path(loc) / leaf / "__init__.py").exists()
               for loc in locations)


class DifflabGroup(TyperGroup):
    """typer's command group, plus: one-line errors, and commands from :data:`PLUGINS` loaded on first use."""

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        return names + [n for n, (mod, _) in PLUGINS.items() if n not in names and _module_exists(mod)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is None and cmd_name in PLUGINS and _module_exists(PLUGINS[cmd_name][0]):
            # For the top-level help only: a stand-in with the command's one-line help, nothing imported.
            cmd = TyperCommand(cmd_name, help=PLUGINS[cmd_name][1])
        return cmd

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else None
        if name in PLUGINS and name not in self.commands and _module_exists(PLUGINS[name][0]):
            plugin = typer.Typer()
            importlib.import_module(PLUGINS[name][0]).register(plugin)
            for cmd_name, command in typer.main.get_group(plugin).commands.items():
                self.commands.setdefault(cmd_name, command)
        return super().resolve_command(ctx, args)

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        formatwarning = warnings.formatwarning
        warnings.formatwarning = _one_line_warning
        # Names from data files reach the terminal: their control characters are printed as escapes.
        streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = SafeStream(sys.stdout), SafeStream(sys.stderr)
        try:
            with terminating_cleanly():  # SIGTERM, SIGHUP: cleanups run, partial files go (difflab.signals)
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except Terminated as e:
            _fail(f"{e}; partial files removed", 128 + e.signum)
        except DifflabError as e:
            _fail(str(e))
        except _click_exceptions.ClickException as e:
            if type(e).__name__ == "NoArgsIsHelpError":  # a bare `difflab`: show the help
                typer.echo(e.format_message())
                sys.exit(0)
            hint = f" (see: {e.ctx.command_path} --help)" if getattr(e, "ctx", None) is not None else ""
            _fail(e.format_message() + hint, e.exit_code)
        except typer.Abort:
            _fail("aborted", 1)
        except OSError as e:  # a write that failed after all checks: disk full, permissions changed
            where = f"{e.filename}: " if e.filename else ""
            _fail(f"{where}{e.strerror or e}")
        finally:
            warnings.formatwarning = formatwarning
            sys.stdout, sys.stderr = streams
        sys.exit(rv if isinstance(rv, int) else 0)


app = typer.Typer(
    cls=DifflabGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Diffusion models on low-dimensional data (2-D toys to numeric tables of any width), "
    "measured against a noise floor.",
)

Opt = typer.Option

# train's options by config key, so an invalid value is reported under the option the user typed.
TRAIN_LABELS = {
    "data.source": "--data", "data.columns": "--columns", "data.n": "--n", "data.scaler": "--scaler",
    "data.categorical": "--categorical", "data.integer": "--integer", "data.continuous": "--continuous",
    "data.missing": "--missing", "data.encoding": "--encoding", "data.condition": "--condition",
    "train.label_dropout": "--label-dropout", "train.noise_sampling": "--noise-sampling", "train.select": "--select",
    "data.holdout": "--holdout",
    "diffusion.schedule": "--schedule", "diffusion.T": "--T", "diffusion.parameterization": "--parameterization",
    "diffusion.time": "--time", "diffusion.variance": "--variance", "diffusion.zero_terminal_snr": "--zero-terminal-snr",
    "model.name": "--model", "train.objective": "--objective", "train.steps": "--steps", "train.batch_size": "--batch-size", "train.lr": "--lr",
    "train.ema": "--ema", "train.seed": "--seed", "train.device": "--device", "train.coupling": "--coupling",
    "sample.sampler": "--sampler",
}


def _at_least(low: int, **values: int) -> None:
    """Range checks of plain options, done before the heavy imports so a typo answers at once."""
    for name, v in values.items():
        if v < low:
            raise DifflabError(f"--{name.replace('_', '-')} must be at least {low}, got {v}")


def _columns(text: str | None, option: str = "--columns") -> list[str] | None:
    if text is None:
        return None
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise DifflabError(f"{option} {text!r}: expected comma-separated column names or indices, e.g. a,b,c")
    return names


@app.command()
def train(
    out: Annotated[Path, Opt("--out", "-o", help="Run directory to create (new or empty), or to continue with "
                             "--resume.")],
    preset: Annotated[str | None, Opt(help="Starting recipe: 'seed' = the tutorial's recipe exactly; "
                                      "'recommended' (default) = difflab's (EDM, continuous time); 'best' = the same "
                                      "trained 4x longer; 'table' = for numeric and mixed tables; 'onestep' = the "
                                      "best measured at 1-4 calls (MeanFlow with OT coupling), 1 network call per "
                                      "sample; 'meanflow', 'shortcut' = one-step models without coupling.")] = None,
    config: Annotated[Path | None, Opt("--config", help="TOML config on top of the preset, with tables data, "
                                       "diffusion, model, train, sample.")] = None,
    data: Annotated[str | None, Opt(help="Toy dataset, sklearn:NAME (see `difflab datasets`) or a "
                                    ".csv/.parquet/.npy file (default: moons).")] = None,
    columns: Annotated[str | None, Opt(help="Columns of a data file to use, comma-separated names or 0-based "
                                       "indices (default: all).")] = None,
    n: Annotated[int | None, Opt(help="Points to draw from a toy dataset, or rows to keep from a file.")] = None,
    holdout: Annotated[float | None, Opt(help="Share of a file's rows kept out of training, for evaluate and "
                                         "--select heldout (default 0.2).")] = None,
    scaler: Annotated[str | None, Opt(help="Per-column scaling fitted on the training rows: minmax (to [-1, 1]) "
                                      "| standard | quantile (to a normal) | none.")] = None,
    categorical: Annotated[str | None, Opt(help="Table columns to model as categorical, comma-separated (default: "
                                           "detected: text, booleans, numbers with two values).")] = None,
    integer: Annotated[str | None, Opt(help="Table columns of whole numbers, rounded and kept in range (default: "
                                       "detected: integer dtypes, whole-valued floats).")] = None,
    continuous: Annotated[str | None, Opt(help="Table columns to keep as plain numbers, overriding detection.")] = None,
    missing: Annotated[str | None, Opt(help="Missing values in a table: error (default) | category (their own "
                                       "level; numbers get a missing flag).")] = None,
    encoding: Annotated[str | None, Opt(help="Categorical columns: onehot | bits (analog bits), Gaussian features; or "
                                        "multinomial | masked, diffused by a discrete process beside the numbers."
                                        )] = None,
    condition: Annotated[str | None, Opt(help="A table column to condition on (categorical, or few whole numbers): "
                                         "the network's class label, not generated; sample its classes with "
                                         "--where and --guidance.")] = None,
    label_dropout: Annotated[float | None, Opt(help="With --condition: share of training rows shown without their "
                                               "label (p_uncond, default 0.1), for classifier-free guidance."
                                               )] = None,
    schedule: Annotated[str | None, Opt(help=f"Noise schedule: {SCHEDULE_NAMES} (continuous time: linear, cosine, "
                                        "sigmoid, edm, rectified = the straight path (1 − t) x0 + t ε).")] = None,
    T: Annotated[int | None, Opt("--T", help="Number of diffusion steps (continuous time: default sampling steps)."
                                 )] = None,
    time: Annotated[str | None, Opt("--time", help="discrete (T steps) | continuous (t in [0, 1]; the network sees "
                                    "the noise level).")] = None,
    parameterization: Annotated[str | None, Opt(help=f"What the network predicts: {PARAMETERIZATION_NAMES} "
                                                "(velocity = ε − x0, on --schedule rectified).")] = None,
    noise_sampling: Annotated[str | None, Opt("--noise-sampling", help="Continuous time: how training draws times, "
                                              "uniform | lognormal | logit-normal.")] = None,
    variance: Annotated[str | None, Opt("--variance", help="Reverse variances: fixed | learned-range (Nichol & "
                                        "Dhariwal 2021; hybrid loss).")] = None,
    zero_terminal_snr: Annotated[bool | None, Opt("--zero-terminal-snr/--no-zero-terminal-snr", help="Rescale the "
                                                  "schedule to ᾱ_T = 0 (Lin et al. 2023; x0, v or edm).")] = None,
    model: Annotated[str | None, Opt(help=f"Network: {MODEL_NAMES}.")] = None,
    objective: Annotated[str | None, Opt(help="What training regresses on: denoising (default) | meanflow | shortcut "
                                         "(one-step models: the average velocity over a jump; --model jump-mlp on the "
                                         "rectified schedule, as --preset meanflow sets).")] = None,
    steps: Annotated[int | None, Opt(help="Optimizer steps in all (with --resume: the new total).")] = None,
    batch_size: Annotated[int | None, Opt(help="Mini-batch size (the seed preset uses the full batch).")] = None,
    lr: Annotated[float | None, Opt(help="Learning rate.")] = None,
    ema: Annotated[float | None, Opt(help="EMA decay of the weights, e.g. 0.999.")] = None,
    seed: Annotated[int | None, Opt(help="Seed of the initial weights, batches and noise.")] = None,
    coupling: Annotated[str | None, Opt(help="How each batch pairs noise with data: none (independent) | ot "
                                        "(minibatch optimal transport, Tong et al. 2023; per class with --condition;"
                                        " deterministic samplers only).")] = None,
    sampler: Annotated[str | None, Opt(help=f"The run's own sampler, saved in its config: {SAMPLER_NAMES} "
                                       "(default: the preset's).")] = None,
    device: Annotated[str | None, Opt(help="auto | cpu | cuda.")] = None,
    select: Annotated[str | None, Opt(help="Weights to keep: last (the last step's) | heldout (scored every tenth "
                                      "of training on the held-out rows: the step whose samples are no nearer to "
                                      "the training rows than held-out rows are).")] = None,
    resume: Annotated[bool, Opt("--resume", help="Continue the checkpoint in --out, with the run's saved "
                                "config (or --preset/--config if given) and any options given here.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train a diffusion model and write a run directory (config, data, schedule, weights, checkpoint, loss).

    With no options it trains difflab's recommended recipe on moons; --preset seed is the tutorial's recipe.
    """
    from difflab.config import load_saved_config, merge_config, resolve_config
    from difflab.io import read_json

    overrides: dict[str, Any] = {
        "data": {"source": data, "columns": _columns(columns), "n": n, "holdout": holdout, "scaler": scaler,
                 "categorical": _columns(categorical, "--categorical"), "integer": _columns(integer, "--integer"),
                 "continuous": _columns(continuous, "--continuous"), "missing": missing, "encoding": encoding,
                 "condition": condition},
        "diffusion": {"schedule": schedule, "T": T, "parameterization": parameterization, "time": time,
                      "variance": variance, "zero_terminal_snr": zero_terminal_snr},
        "model": {"name": model},
        "train": {"objective": objective, "steps": steps, "batch_size": batch_size, "lr": lr, "ema": ema, "seed": seed, "device": device,
                  "label_dropout": label_dropout, "noise_sampling": noise_sampling, "select": select,
                  "coupling": coupling},
        "sample": {"sampler": sampler},
    }
    saved = out / "config.json"  # difflab.rundir.FILES["config"]; that module is too heavy to import this early
    if resume and config is None and preset is None and saved.is_file():
        cfg = merge_config(load_saved_config(read_json(saved), str(saved)), overrides, labels=TRAIN_LABELS)
    else:
        cfg = resolve_config(preset, config, overrides, labels=TRAIN_LABELS)

    from difflab.pipeline import train_run

    run = train_run(cfg, out, resume=resume, progress=not quiet)
    width = f"{len(run.table.columns)} columns as D={run.dim} features" if run.table is not None else f"D={run.dim}"
    if run.condition is not None:
        width += f", conditioned on {run.condition.column!r}: {run.condition.n_classes} classes"
    typer.echo(f"trained {cfg.model.name} on {cfg.data.source} ({run.train.shape[0]} rows, {width}) "
               f"to step {cfg.train.steps} in {run.seconds:.1f} s -> {out}")


@app.command()
def sample(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.", show_default=False)],
    out: Annotated[Path, Opt("--out", "-o", help="Output file, .csv (with a header) or .npy, in data units.")],
    n: Annotated[int, Opt(help="Number of samples.")] = 1000,
    sampler: Annotated[str | None, Opt(help=f"{SAMPLER_NAMES} (default: the run's, ddpm).")] = None,
    steps: Annotated[int | None, Opt(help="Jumps K (default: T; at most T in discrete time); heun and heun-sde "
                                     "call the network about twice per jump. Given alone (no --sampler, no "
                                     "--grid): K network calls, with the sampler and grid measured best for that "
                                     "budget.")] = None,
    grid: Annotated[str | None, Opt(help=f"Time grid: {GRID_NAMES}.")] = None,
    eta: Annotated[float | None, Opt(help="DDIM noise scale (0 = deterministic, 1 ≈ ddpm).")] = None,
    variance: Annotated[str | None, Opt("--variance", help="ddpm's reverse variance: small | large | learned "
                                        "(default: learned when the run has it, else small).")] = None,
    guard: Annotated[str | None, Opt(help="On x̂_0: none | clip (to the training data's box, widened) | threshold "
                                     "(dynamic thresholding).")] = None,
    option: Annotated[list[str] | None, Opt("--option", help="A sampler option KEY=VALUE, repeatable (e.g. "
                                            "s_churn=20 for heun-sde, rtol=1e-4 for ode).")] = None,
    where: Annotated[str | None, Opt(help="COLUMN=VALUE: rows of that class, for a run trained with --condition "
                                     "COLUMN (default: classes drawn from the training rows' frequencies).")] = None,
    guidance: Annotated[float | None, Opt(help="Classifier-free guidance weight w ≥ 0 for a conditional run: "
                                          "(1 + w)·conditional − w·unconditional (default 0: the conditional model)."
                                          )] = None,
    seed: Annotated[int, Opt(help="Seed of x_T and of the sampler's noise.", min=0, max=SEED_MAX)] = 0,
    trajectory: Annotated[Path | None, Opt(help="Also write the reverse trajectory, shape (K+1, n, D), in data "
                                           "units, to this .npy file.")] = None,
    chunk_size: Annotated[int, Opt(help="Points sampled at once (bounds memory).")] = 262_144,
    device: Annotated[str, Opt(help="auto | cpu | cuda. auto: CUDA when available, and the CPU (with a warning) "
                               "if sampling there fails; cuda: an error instead. A seed's points depend on the "
                               "device.")] = "auto",
    force: Annotated[bool, Opt("--force", help="Allow --out or --trajectory to replace one of a run's own files "
                               "(which breaks that run).")] = False,
    given: Annotated[list[str] | None, Opt("--given", help="COLUMN=VALUE, repeatable: draw the other columns given "
                                           "these (RePaint on the unconditional model; see difflab impute).")] = None,
    resample: Annotated[int | None, Opt(help="With --given: RePaint's resampling U (default 5).")] = None,
    jump: Annotated[int | None, Opt(help="With --given: RePaint's jump length j (default 1).")] = None,
) -> None:
    """Draw samples from a trained run, in the data's own units."""
    _at_least(1, n=n, chunk_size=chunk_size)
    check_limit("samples", n, label="--n", memory=8.0 * n)
    if device not in SAMPLE_DEVICES:
        raise DifflabError(f"--device {device!r}: choose one of: {' | '.join(SAMPLE_DEVICES)}")
    if given:
        _sample_given(run_dir, out, given, n=n, seed=seed, trajectory=trajectory, where=where, guidance=guidance,
                      sampler=sampler, steps=steps, grid=grid, eta=eta, variance=variance, guard=guard,
                      options=_options(option), resample=resample, jump=jump)
        return
    from difflab.sample import sample_to_file

    path = sample_to_file(run_dir, out, n=n, sampler=sampler, steps=steps, grid=grid, eta=eta, seed=seed,
                          trajectory=trajectory, chunk_size=chunk_size, device=device, variance=variance, guard=guard,
                          options=_options(option), where=_where(where), guidance=guidance, force=force)
    typer.echo(f"wrote {n} samples to {path}" + (f" and their trajectory to {trajectory}" if trajectory else ""))


def _sample_given(run_dir: Path, out: Path, given: list[str], *, n: int, seed: int, trajectory: Path | None,
                  where: str | None, guidance: float | None, **over: Any) -> None:
    """``difflab sample --given``: conditional sampling by :mod:`difflab.impute_cli`."""
    from difflab.impute_cli import parse_given, sample_given_to_file

    pairs = parse_given(given)
    for name, value in (("--trajectory", trajectory), ("--where", where), ("--guidance", guidance)):
        if value is not None:
            raise DifflabError(f"{name} does not go with --given (conditional sampling by RePaint)")
    path = sample_given_to_file(run_dir, out, given=pairs or {}, n=n, seed=seed,
                                **{k: v for k, v in over.items() if v is not None})
    typer.echo(f"wrote {n} samples given {', '.join(given)} to {path}")


def _where(text: str | None) -> dict[str, str] | None:
    """--where COLUMN=VALUE as {column: value} (the value is matched against the class labels as text)."""
    if text is None:
        return None
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise DifflabError(f"--where {text!r}: expected COLUMN=VALUE, e.g. target=1")
    return {column.strip(): value.strip()}


def _options(items: list[str] | None) -> dict[str, float | str] | None:
    """--option KEY=VALUE pairs; values that read as numbers become numbers."""
    if not items:
        return None
    out: dict[str, float | str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DifflabError(f"--option {item!r}: expected KEY=VALUE, e.g. s_churn=20")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out


def _kinds(values: list[str] | None) -> list[str] | None:
    """--kind may be repeated or comma-separated."""
    if not values:
        return None
    return [k.strip() for v in values for k in v.split(",") if k.strip()] or None


@app.command()
def plot(
    run_dir: Annotated[Path, typer.Argument(help="A trained run directory.", show_default=False)],
    kind: Annotated[list[str] | None, Opt(help=f"Figure(s) to draw, repeated or comma-separated: {FIGURE_KINDS} "
                                          "(default: all that apply; field needs D = 2).")] = None,
    out: Annotated[Path | None, Opt("--out", "-o", help="Folder for the figures (default: RUN_DIR/figures).")] = None,
    t: Annotated[list[int] | None, Opt("--t", help="Step(s) of the vector field (default: 0.3·T and T).")] = None,
    n: Annotated[int, Opt(help="Samples to draw for the figures.")] = 1000,
    seed: Annotated[int, Opt(help="Seed of those samples.", min=0, max=SEED_MAX)] = 0,
    given: Annotated[list[str] | None, Opt("--given", help="COLUMN=VALUE for --kind conditional: p(other | "
                                           "COLUMN = VALUE) of a 2-D run.")] = None,
) -> None:
    """Draw a run's figures (PNG; the animation is a GIF) and print their paths."""
    _at_least(1, n=n)
    check_limit("points", n, label="--n")
    from difflab.figures import make_figures
    from difflab.impute_cli import parse_given

    for p in make_figures(run_dir, out, kinds=_kinds(kind), field_ts=t, n=n, seed=seed, given=parse_given(given)):
        typer.echo(str(p))


@app.command()
def datasets() -> None:
    """List the built-in toy datasets and scikit-learn's bundled tables (any .csv/.parquet/.npy table works too)."""
    from difflab.data import list_datasets
    from difflab.data.sklearn_sets import list_sklearn_sets

    rows = list_datasets() + list_sklearn_sets()
    width = max(len(name) for name, _ in rows)
    for name, desc in rows:
        typer.echo(f"{name.ljust(width)}  {desc}")


@app.command()
def demo(
    out: Annotated[Path, Opt("--out", "-o", help="Output folder (re-running replaces the demo runs in it).")] = Path(
        "demo-out"),
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train the tutorial's recipe and the recommended one on moons; sample, evaluate and draw both."""
    from difflab.demo import run_demo

    run_demo(out, progress=not quiet, echo=typer.echo)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``difflab`` script and of ``python -m difflab`` (``argv`` None: the process's own
    arguments, and the process ends after the command)."""
    try:
        app(args=argv, prog_name="difflab")
    finally:
        if argv is None:
            # The interpreter's last garbage collections would walk the whole heap torch and the command built;
            # frozen objects are skipped (each is still released, every atexit handler still runs). That saved
            # 0.1-0.5 s of the training command's wall time on 2 cores (benchmarks/startup.py).
            gc.freeze()

