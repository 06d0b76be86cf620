"""Sweep grids: a TOML file of a base config, axes to vary, seeds and evaluation settings → a list of cells.

A grid file looks like a run config (``preset`` and the sections ``data``, ``diffusion``, ``model``, ``train``,
``sample``) plus::

    seeds = [0, 1, 2]                 # each cell is run once per seed (a [[grid]] table may have its own)
    seed_keys = ["train.seed", "data.seed"]   # what a cell's seed sets (this is the default)

    [grid]                            # dotted config keys -> lists; the cells are their product
    "diffusion.T" = [10, 100, 1000]
    "preset" = ["seed", "recommended"]

    [evaluate]
    n = 2000                          # points per sample in each comparison
    repeats = 3
    metrics = ["w1", "energy"]
    elbo = false

``[[grid]]`` (an array of tables) gives several products whose union is swept, e.g. trained models over one set
of axes and an oracle over another. Cells that resolve to the same config are run once. An optional ``[report]``
table describes the Markdown page written by :mod:`difflab.sweep.page`.
"""

from __future__ import annotations

import itertools
import math
import re
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from difflab.config import RunConfig, resolve_config
from difflab.errors import ConfigError, UnworkableConfig
from difflab.limits import check

SECTIONS = ("data", "diffusion", "model", "train", "sample")
TOP_LEVEL = {"preset", "seeds", "seed_keys", "grid", "evaluate", "report", *SECTIONS}
DEFAULT_SEED_KEYS = ("train.seed", "data.seed")


@dataclass(frozen=True)
class EvaluateSettings:
    """How every cell is measured: ``n`` points per sample, ``repeats`` comparisons averaged (see
    :func:`difflab.evaluation.evaluate_samples`), the metrics, and whether to compute the ELBO."""

    n: int = 2000
    repeats: int = 3
    metrics: tuple[str, ...] = ("w1", "energy")
    elbo: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "repeats": self.repeats, "metrics": list(self.metrics), "elbo": self.elbo}


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: the values of the varied keys, the seed, and the resolved config."""

    id: str
    values: dict[str, Any]
    seed: int
    config: RunConfig
    refused: str | None = None  # why the config cannot work (difflab.assemble.check_config); such a cell never runs


@dataclass
class GridSpec:
    """A parsed grid file. ``axes`` holds one dict per product (``[grid]`` or each ``[[grid]]``)."""

    source: str
    preset: str | None
    base: dict[str, Any]
    axes: list[dict[str, list[Any]]]
    grid_seeds: list[list[int] | None]  # a product's own seeds (``seeds`` inside its [[grid]] table), else None
    seeds: list[int]
    seed_keys: list[str]
    evaluate: EvaluateSettings
    report: dict[str, Any] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # overrides applied on top of the file, for the record
    command: str = ""  # the command line that ran the sweep, for the record

    @property
    def keys(self) -> list[str]:
        """The varied keys in order of first appearance."""
        return list(dict.fromkeys(k for axes in self.axes for k in axes))

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "preset": self.preset, "base": self.base, "axes": self.axes,
            "grid_seeds": self.grid_seeds, "seeds": self.seeds, "seed_keys": self.seed_keys,
            "evaluate": self.evaluate.to_dict(), "report": self.report, "changes": self.changes,
            "command": self.command,
        }


# --- keys -------------------------------------------------------------------------------------------------------


def check_key(key: str, where: str) -> None:
    """Raise a one-line ConfigError unless ``key`` is ``preset`` or a dotted path into :class:`RunConfig`."""
    if key == "preset":
        return
    parts = key.split(".")
    model: type[BaseModel] = RunConfig
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields or (i == 0 and part not in SECTIONS):
            names = ", ".join(SECTIONS) if i == 0 else ", ".join(fields)
            scope = "a config" if i == 0 else ".".join(parts[:i])
            raise ConfigError(f"{where}: '{key}' is not a config setting ({scope} has: {names})")
        annotation = fields[part].annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            continue
        is_dict = "dict" in str(annotation)
        if i == len(parts) - 1 or (is_dict and i == len(parts) - 2):
            return
        raise ConfigError(f"{where}: '{key}' goes below the setting '{'.'.join(parts[: i + 1])}'")
    example = f"{key}.{next(iter(model.model_fields))}"
    raise ConfigError(f"{where}: '{key}' names a whole section; name one setting, e.g. '{example}'")


def set_dotted(d: dict[str, Any], key: str, value: Any) -> None:
    """``set_dotted(d, "a.b", 1)`` makes ``d["a"]["b"] = 1``, creating the inner dicts."""
    *path, last = key.split(".")
    for part in path:
        d = d.setdefault(part, {})
    d[last] = value


def get_dotted(cfg: RunConfig, key: str) -> Any:
    """The value of a dotted key (or ``preset``) in a resolved config."""
    obj: Any = cfg
    for part in key.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else getattr(obj, part)
    return obj


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"train.steps=1000"`` → ("train.steps", 1000); the value is read as TOML, else taken as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.steps=1000")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip(), value


# --- loading ----------------------------------------------------------------------------------------------------


def _evaluate(raw: Any, where: str) -> EvaluateSettings:
    from difflab.evaluation.metrics import METRICS

    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: [evaluate] must be a table")
    unknown = set(raw) - {"n", "repeats", "metrics", "elbo"}
    if unknown:
        raise ConfigError(f"{where}: [evaluate] has unknown key '{sorted(unknown)[0]}' "
                          "(known: n, repeats, metrics, elbo)")
    metrics = raw.get("metrics", list(EvaluateSettings.metrics))
    if not isinstance(metrics, list) or not all(isinstance(m, str) for m in metrics):
        raise ConfigError(f"{where}: [evaluate] metrics must be a list of names, e.g. [\"w1\", \"energy\"]; got "
                          f"{metrics!r}")
    ev = EvaluateSettings(**{k: tuple(v) if k == "metrics" else v for k, v in raw.items()})
    if (isinstance(ev.n, bool) or not isinstance(ev.n, int) or ev.n < 2 or isinstance(ev.repeats, bool)
            or not isinstance(ev.repeats, int) or ev.repeats < 1):
        raise ConfigError(f"{where}: [evaluate] needs n >= 2 and repeats >= 1, got n={ev.n!r}, repeats={ev.repeats!r}")
    check("eval_n", ev.n, label=f"{where}: [evaluate] n =")
    check("repeats", ev.repeats, label=f"{where}: [evaluate] repeats =")
    bad = [m for m in ev.metrics if m not in METRICS]
    if bad or not ev.metrics:
        raise ConfigError(f"{where}: [evaluate] unknown metric {bad[0] if bad else '(none)'!r}; "
                          f"available: {', '.join(METRICS)}")
    if not isinstance(ev.elbo, bool):
        raise ConfigError(f"{where}: [evaluate] elbo must be true or false")
    return ev


def _axes(raw: Any, where: str) -> tuple[list[dict[str, list[Any]]], list[list[int] | None]]:
    tables = raw if isinstance(raw, list) else [raw]
    out, seeds = [], []
    for table in tables:
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: [grid] must be a table of KEY = [values, ...]")
        table = dict(table)
        seeds.append(_int_list(table.pop("seeds"), "[grid] seeds", where) if "seeds" in table else None)
        if not table:
            raise ConfigError(f"{where}: a [grid] table has no KEY = [values, ...]")
        for key, values in table.items():
            check_key(key, f"{where}: [grid]")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: [grid] '{key}' must be a non-empty list, got {values!r}")
        out.append({k: list(v) for k, v in table.items()})
    return out, seeds


def _int_list(raw: Any, name: str, where: str) -> list[int]:
    if not isinstance(raw, list) or not raw or not all(isinstance(s, int) and not isinstance(s, bool) for s in raw):
        raise ConfigError(f"{where}: {name} must be a non-empty list of integers, got {raw!r}")
    return list(dict.fromkeys(raw))


def load_grid(path: str | Path) -> GridSpec:
    """Read and check a grid file (the cells themselves are checked by :func:`expand`)."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: grid file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    where = str(path)
    unknown = [k for k in raw if k not in TOP_LEVEL]
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key '{unknown[0]}' (known: {', '.join(sorted(TOP_LEVEL))})")
    if "grid" not in raw:
        raise ConfigError(f"{where}: no [grid] table; add e.g. [grid] \"diffusion.T\" = [10, 100]")
    seed_keys = raw.get("seed_keys", list(DEFAULT_SEED_KEYS))
    if not isinstance(seed_keys, list) or not all(isinstance(k, str) for k in seed_keys):
        raise ConfigError(f"{where}: seed_keys must be a list of dotted keys, got {seed_keys!r}")
    for key in seed_keys:
        check_key(key, f"{where}: seed_keys")
    axes, grid_seeds = _axes(raw["grid"], where)
    spec = GridSpec(
        source=where,
        preset=raw.get("preset"),
        base={k: raw[k] for k in SECTIONS if k in raw},
        axes=axes,
        grid_seeds=grid_seeds,
        seeds=_int_list(raw.get("seeds", [0]), "seeds", where),
        seed_keys=seed_keys,
        evaluate=_evaluate(raw.get("evaluate", {}), where),
        report=raw.get("report", {}),
    )
    clash = set(spec.keys) & set(seed_keys)
    if clash:
        raise ConfigError(f"{where}: [grid] varies '{sorted(clash)[0]}', which the seeds set (seed_keys)")
    return spec


def apply_changes(spec: GridSpec, assignments: list[str], seeds: list[int] | None = None) -> GridSpec:
    """Command-line changes: ``KEY=VALUE`` replaces a grid axis (a list or one value; an empty list drops the
    products that vary KEY), sets ``evaluate.X``, or overrides the base config; ``seeds`` replaces the top-level
    seeds (not a [[grid]] table's own). Each change is recorded in ``spec.changes``."""
    for text in assignments:
        key, value = parse_assignment(text)
        if key.startswith("evaluate."):
            merged = {**spec.evaluate.to_dict(), key.removeprefix("evaluate."): value}
            spec.evaluate = _evaluate(merged, f"--set {text}")
        elif any(key in axes for axes in spec.axes):
            for axes in spec.axes:
                if key in axes:
                    axes[key] = list(value) if isinstance(value, list) else [value]
        elif key == "preset":
            spec.preset = value
        else:
            check_key(key, f"--set {text}")
            set_dotted(spec.base, key, value)
        spec.changes.append(f"{key} = {value!r}")
    if seeds is not None:
        spec.seeds = _int_list(list(seeds), "--seeds", "command line")
        spec.changes.append(f"seeds = {spec.seeds!r}")
    return spec


# --- cells ------------------------------------------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def short_names(keys: list[str]) -> dict[str, str]:
    """The last part of each dotted key, or the whole key where two keys (or the seed) would share it."""
    last = [k.rsplit(".", 1)[-1] for k in keys]
    taken = [*last, "seed"]
    return {k: (s if taken.count(s) == 1 else k) for k, s in zip(keys, last)}


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict):
        return "+".join(f"{k}-{_format_value(x)}" for k, x in v.items()) or "none"
    if isinstance(v, list):
        return "+".join(_format_value(x) for x in v) or "none"
    return str(v)


def cell_id(values: dict[str, Any], seed: int, names: dict[str, str]) -> str:
    """A readable folder name, e.g. ``preset=seed,T=10,schedule=poly,seed=0``."""
    parts = [f"{_UNSAFE.sub('-', names[k])}={_UNSAFE.sub('-', _format_value(v))}" for k, v in values.items()]
    return ",".join([*parts, f"seed={seed}"])


def _refusal(cfg: RunConfig, where: str) -> str | None:
    """Why a cell's config cannot work (a combination :func:`difflab.assemble.check_config` refuses), or None:
    such a cell is recorded as refused with the reason and never runs. An unknown name stops the whole grid."""
    from difflab.assemble import check_config

    try:
        check_config(cfg)
    except UnworkableConfig as e:
        return str(e)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return None


def expand(spec: GridSpec) -> list[Cell]:
    """All cells: each product of axes × seeds, resolved and checked; duplicates (same config) dropped."""
    names = short_names(spec.keys)
    planned = sum(math.prod(len(v) for v in axes.values()) * len(own or spec.seeds)
                  for axes, own in zip(spec.axes, spec.grid_seeds, strict=True))
    check("cells", planned, label=f"{spec.source}: a grid of")  # before any cell is resolved
    cells: list[Cell] = []
    seen: set[str] = set()
    for axes, own_seeds in zip(spec.axes, spec.grid_seeds, strict=True):
        keys = list(axes)
        for combo in itertools.product(*(axes[k] for k in keys)):
            values = dict(zip(keys, combo))
            for seed in own_seeds or spec.seeds:
                nested: dict[str, Any] = {}
                for key, value in values.items():
                    if key != "preset":
                        set_dotted(nested, key, value)
                for key in spec.seed_keys:
                    set_dotted(nested, key, seed)
                cid = cell_id(values, seed, names)
                preset = values.get("preset", spec.preset)
                try:
                    cfg = resolve_config(preset, overrides=_deep_merge(spec.base, nested))
                except ConfigError as e:
                    raise ConfigError(f"{spec.source}: cell {cid}: {str(e).removeprefix('config: ')}") from None
                refused = _refusal(cfg, f"{spec.source}: cell {cid}")
                fingerprint = cfg.model_dump_json()
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
                cells.append(Cell(cid, values, seed, cfg, refused))
    if not cells:
        raise ConfigError(f"{spec.source}: the grid has no cells (an axis is an empty list)")
    if all(c.refused for c in cells):  # nothing would run: most likely a typo, not a grid of impossible cells
        raise ConfigError(f"{spec.source}: cell {cells[0].id}: {cells[0].refused}")
    counts = Counter(c.id for c in cells)
    dup = next((i for i, k in counts.items() if k > 1), None)
    if dup is not None:
        raise ConfigError(f"{spec.source}: two different cells are both named '{dup}'; give the grids distinct keys")
    return cells


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
