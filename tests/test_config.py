"""Run configuration: presets, TOML, overrides, one-line errors, and the saved config's round trip."""

from __future__ import annotations

import numpy as np
import pytest

from difflab.config import (
    PRESETS,
    RunConfig,
    load_saved_config,
    merge_config,
    read_toml,
    resolve_config,
)
from difflab.errors import ConfigError


def _toml(tmp_path, text: str, name: str = "run.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_seed_preset_is_the_tutorials_recipe():
    """Every setting of shared/tutorial/settings.md, spelled out (not read back from the preset dict)."""
    cfg = resolve_config("seed")
    assert cfg.preset == "seed"
    assert (cfg.data.source, cfg.data.n, cfg.data.scaler) == ("moons", 1000, "minmax")
    d = cfg.diffusion
    assert (d.schedule, d.T, d.schedule_options, d.parameterization, d.betas) == ("poly", 10, {"power": 4.0}, "eps",
                                                                                    None)
    assert (cfg.model.name, cfg.model.options) == ("seed", {})
    t = cfg.train
    assert t.steps == 5000 and t.batch_size is None  # 5000 full-batch epochs = 5000 optimizer steps
    assert t.lr == 1e-2 and t.weight_decay == 1e-4 and t.adam_betas == (0.9, 0.999)
    assert t.lr_schedule == "constant" and t.warmup == 0 and t.ema is None and t.grad_clip is None
    s = cfg.sample
    assert (s.sampler, s.variance, s.steps) == ("ddpm", "small", None)


def test_seed_preset_builds_the_tutorials_schedule_and_data():
    """β_t = linspace(0, 0.99, T+1)^4 (the tutorial's numbers table) and 1000 noiseless moons points."""
    from sklearn.datasets import make_moons

    from difflab.assemble import build_process as build_diffusion
    from difflab.data.prepare import prepare_data

    cfg = resolve_config("seed")
    betas = build_diffusion(cfg).schedule.betas
    np.testing.assert_allclose(betas, (0.99 * np.arange(11) / 10) ** 4, rtol=1e-12)
    np.testing.assert_allclose(betas[[1, 5, 10]], [1e-4, 0.0600, 0.9606], atol=5e-5)
    data = prepare_data(cfg.data)
    assert data.train.shape == (1000, 2) and data.heldout is None
    # noise=None: every point lies exactly on one of the two unit half circles
    x, y = data.train.T
    r_outer, r_inner = np.hypot(x, y), np.hypot(x - 1, y - 0.5)
    assert np.all(np.minimum(abs(r_outer - 1), abs(r_inner - 1)) < 1e-9)
    reference = make_moons(n_samples=1000, noise=None, shuffle=True, random_state=cfg.data.seed)[0]
    np.testing.assert_allclose(np.sort(data.train, axis=0), np.sort(reference, axis=0))
    # minmax: each column scaled to exactly [-1, 1] (per coordinate, as the tutorial)
    scaled = data.scaled.numpy()
    np.testing.assert_allclose(scaled.min(0), [-1, -1], atol=1e-6)
    np.testing.assert_allclose(scaled.max(0), [1, 1], atol=1e-6)


def test_default_is_the_recommended_recipe_on_moons():
    assert resolve_config() == resolve_config("recommended")
    cfg = resolve_config(overrides={"data": {"source": "moons"}})
    rec = PRESETS["recommended"]
    assert cfg.preset == "recommended" and cfg.data.source == "moons"
    assert cfg.diffusion.schedule == rec["diffusion"]["schedule"] and cfg.diffusion.T == rec["diffusion"]["T"]
    assert cfg.model.name == rec["model"]["name"] and cfg.model.options == rec["model"]["options"]
    assert cfg.train.batch_size == rec["train"]["batch_size"] and cfg.train.ema == rec["train"]["ema"]


def test_layers_toml_over_preset_and_options_over_toml(tmp_path):
    path = _toml(tmp_path, 'preset = "seed"\n[train]\nsteps = 7\nlr = 0.5\n[diffusion]\nT = 20\n')
    cfg = resolve_config(None, path, {"train": {"lr": 0.25, "seed": None}})
    assert cfg.preset == "seed" and cfg.train.steps == 7 and cfg.diffusion.T == 20
    assert cfg.train.lr == 0.25  # the option wins over the file
    assert cfg.train.seed == 0  # None means "not given"
    assert cfg.diffusion.schedule_options == {"power": 4.0}  # same schedule: its options stay


@pytest.mark.parametrize(
    ("preset", "overrides", "expected"),
    [
        ("recommended", {"model": {"name": "seed"}}, ("model", "options", {})),
        ("seed", {"diffusion": {"schedule": "cosine"}}, ("diffusion", "schedule_options", {})),
        ("seed", {"data": {"source": "table.csv"}}, ("data", "n", None)),
        ("recommended", {"model": {"name": "mlp"}}, ("model", "options", {"width": 128, "depth": 3})),
        ("seed", {"data": {"source": "circles", "n": 50}}, ("data", "n", 50)),
    ],
)
def test_settings_of_a_name_reset_when_the_name_changes(preset, overrides, expected):
    cfg = resolve_config(preset, overrides=overrides)
    section, key, value = expected
    assert getattr(getattr(cfg, section), key) == value


def test_partial_model_options_in_toml_keep_the_others(tmp_path):
    path = _toml(tmp_path, "[model.options]\nwidth = 64\n")
    assert resolve_config(None, path).model.options == {"width": 64, "depth": 3}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[train\nsteps = 3\n", "not valid TOML"),
        ("[train]\nstepz = 3\n", "unknown key 'train.stepz'; allowed: steps,"),
        ("stepz = 3\n", "unknown key 'stepz'; allowed: preset, data,"),
        ("[model.options]\nwidth = 64\n[model]\nnam = 'mlp'\n", "unknown key"),
        ("[train]\nsteps = 'many'\n", "train.steps: Input should be a valid integer"),
        ("[train]\nsteps = -3\n", "train.steps: Input should be greater than or equal to 1"),
        ("[train]\nadam_betas = [0.9, 1.5]\n", "Adam betas must lie in [0, 1)"),
        ("preset = 'nope'\n", "unknown preset 'nope'"),
        ("data = 3\n", "data: Input should be"),
    ],
)
def test_bad_toml_is_one_line_naming_the_file(tmp_path, text, needle):
    path = _toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        resolve_config(None, path)
    msg = str(info.value)
    assert "\n" not in msg and needle in msg
    assert msg.startswith(str(path))


def test_missing_or_folder_config(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        read_toml(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="is a folder"):
        read_toml(tmp_path)


def test_option_errors_name_the_option():
    labels = {"train.steps": "--steps", "diffusion.T": "--T"}
    with pytest.raises(ConfigError, match=r"^--steps: .*greater than or equal to 1, got -5$"):
        resolve_config(overrides={"train": {"steps": -5}}, labels=labels)
    with pytest.raises(ConfigError, match=r"^--T: "):
        resolve_config(overrides={"diffusion": {"T": 0}}, labels=labels)
    with pytest.raises(ConfigError, match=r"^--scaler|data.scaler"):
        resolve_config(overrides={"data": {"scaler": "log"}})


def test_saved_config_round_trips(tmp_path):
    cfg = resolve_config("recommended", overrides={"train": {"steps": 11}, "data": {"columns": ["a", "b"]}})
    import json

    raw = json.loads(json.dumps(cfg.model_dump(mode="json")))
    back = load_saved_config(raw, "config.json")
    assert back == cfg and isinstance(back.train.adam_betas, tuple)
    with pytest.raises(ConfigError, match=r"^config.json: unknown key 'train.foo'"):
        load_saved_config({**raw, "train": {**raw["train"], "foo": 1}}, "config.json")


def test_merge_config_applies_new_options_to_a_saved_run():
    cfg = resolve_config("seed", overrides={"train": {"steps": 10}})
    more = merge_config(cfg, {"train": {"steps": 20, "lr": None}})
    assert more.train.steps == 20 and more.train.lr == cfg.train.lr and more.preset == "seed"
    with pytest.raises(ConfigError, match="^--steps: "):
        merge_config(cfg, {"train": {"steps": 0}}, labels={"train.steps": "--steps"})


def test_every_preset_validates():
    for name in PRESETS:
        assert isinstance(resolve_config(name), RunConfig)
