"""The ± of every ratio: its delta-method standard error against the spread of the ratio over independent
evaluations (a simulation), how it is written, the automatic number of repeats, and the floor cache (key,
invalidation by version, atomic writes)."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from difflab.evaluation import evaluate_samples, floor_cache
from difflab.evaluation.draws import FLOOR_MAX_PAIRS, FLOOR_MIN_PAIRS, FLOOR_RSE
from difflab.evaluation.floors import MAX_REPEATS, MIN_REPEATS, OTHER_REPEATS
from difflab.evaluation.uncertainty import format_ratio, ratio_se


def gaussian(d: int, scale: float = 1.0, shift: float = 0.0):
    def sample(n: int, seed: int) -> np.ndarray:
        return shift + scale * np.random.default_rng(seed).standard_normal((n, d))

    return sample


@pytest.mark.parametrize(("d", "metric"), [(1, "w1"), (2, "swd"), (10, "swd")])
def test_se_matches_the_spread_of_the_ratio_over_independent_evaluations(d, metric):
    # 200 evaluations with independent seeds: fresh samples, fresh true samples, fresh floor pairs each time.
    # The sd of their ratios must match the delta-method se (its mean over the evaluations) within the sd's own
    # sampling error (~5 % at 200 draws), and both sides must count: the se of either side alone is far off.
    n, repeats, pairs = 60, 6, 6
    model, truth = gaussian(d, scale=1.25), gaussian(d)
    out = [evaluate_samples(model, truth, n=n, repeats=repeats, floor_pairs=pairs, metrics=[metric], seed=s)[metric]
           for s in range(200)]
    ratios = np.array([r["ratio"] for r in out])
    spread = ratios.std(ddof=1)
    se = np.sqrt(np.mean([r["ratio_se"] ** 2 for r in out]))
    value_only = np.sqrt(np.mean([(r["value_se"] / r["floor"]) ** 2 for r in out]))
    floor_only = np.sqrt(np.mean([(r["ratio"] * r["floor_se"] / r["floor"]) ** 2 for r in out]))
    assert se == pytest.approx(spread, rel=0.15)
    assert value_only < 0.8 * spread and floor_only < 0.8 * spread


def test_ratio_se_is_the_delta_method_of_two_independent_means():
    r, se = ratio_se(3.0, 0.3, 1.5, 0.05)
    assert r == 2.0
    assert se == pytest.approx(math.sqrt(0.3**2 + 4.0 * 0.05**2) / 1.5)
    assert ratio_se(0.0, 0.1, 0.0, 0.1)[0] == 1.0 and math.isinf(ratio_se(1.0, 0.1, 0.0, 0.1)[0])


@pytest.mark.parametrize(("r", "se", "text"), [
    (4.5213, 0.0817, "4.52 ± 0.08"), (1.18, 0.0042, "1.180 ± 0.004"), (12.3, 1.7, "12.30 ± 1.70"),
    (1.0, float("nan"), "1.00 ± ?"), (float("inf"), 0.1, "inf"),
])
def test_format_ratio(r, se, text):
    assert format_ratio(r, se) == text


def test_automatic_repeats_stop_at_the_target_or_the_cap():
    truth = gaussian(2)
    easy = evaluate_samples(gaussian(2, scale=3.0), truth, n=80, metrics=["w1"], floor_pairs=40, target_rse=0.2)
    assert easy["w1"]["repeats"] == MIN_REPEATS  # far from the truth: a precise ratio at once
    assert easy["w1"]["ratio_se"] / easy["w1"]["ratio"] <= 0.2
    hard = evaluate_samples(gaussian(2), truth, n=80, metrics=["w1"], floor_pairs=40, target_rse=0.001)
    assert hard["w1"]["repeats"] == MAX_REPEATS
    mid = evaluate_samples(gaussian(2, scale=1.3), truth, n=80, metrics=["w1"], floor_pairs=40, target_rse=0.035)
    assert MIN_REPEATS < mid["w1"]["repeats"] < MAX_REPEATS
    assert mid["w1"]["ratio_se"] / mid["w1"]["ratio"] <= 0.035


def test_the_floor_takes_at_least_20_pairs_and_more_until_precise():
    truth = gaussian(1)
    r = evaluate_samples(gaussian(1, shift=0.5), truth, n=40, repeats=2, metrics=["w1", "c2st"])
    assert r["c2st"]["floor_pairs"] == FLOOR_MIN_PAIRS
    assert r["w1"]["floor_pairs"] > FLOOR_MIN_PAIRS  # W1 at n = 40 varies ~40 %: 20 pairs are not 1.5 %
    assert r["w1"]["floor_se"] / r["w1"]["floor"] <= FLOOR_RSE or r["w1"]["floor_pairs"] == FLOOR_MAX_PAIRS


def test_automatic_repeats_extend_only_the_watched_metric():
    truth = gaussian(2)
    r = evaluate_samples(gaussian(2, scale=1.1), truth, n=60, metrics=["w1", "energy", "swd"], floor_pairs=30,
                         target_rse=0.001)  # out of reach: W1 draws to the cap
    assert r["w1"]["repeats"] == MAX_REPEATS
    assert r["energy"]["repeats"] == r["swd"]["repeats"] == OTHER_REPEATS
    alone = evaluate_samples(gaussian(2, scale=1.1), truth, n=60, metrics=["energy"], floor_pairs=30,
                             target_rse=0.001)  # without W1, the distances asked for are watched
    assert alone["energy"]["repeats"] == MAX_REPEATS
    # the first OTHER_REPEATS draws are the same points whichever metrics score them
    fixed = evaluate_samples(gaussian(2, scale=1.1), truth, n=60, metrics=["energy"], floor_pairs=30,
                             repeats=OTHER_REPEATS)
    assert fixed["energy"]["value"] == r["energy"]["value"]


# --- the floor cache ------------------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(floor_cache.ENV_DIR, str(tmp_path))
    return tmp_path / "floors"


def entries(folder):
    return sorted(folder.glob("*.json")) if folder.exists() else []


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(floor_cache.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert floor_cache.cache_dir() == tmp_path / "xdg" / "difflab" / "floors"
    monkeypatch.setenv(floor_cache.ENV_DIR, str(tmp_path / "mine"))
    assert floor_cache.cache_dir() == tmp_path / "mine" / "floors"


def test_a_keyed_floor_is_stored_once_and_read_back(cache):
    truth = gaussian(2)
    first = evaluate_samples(gaussian(2)(300, 5), truth, n=50, repeats=2, metrics=["swd"], reference_key="g2")
    files = entries(cache)
    assert len(files) == 1
    entry = json.loads(files[0].read_text())
    assert entry["key"] == {"reference": "g2", "n": 50, "metric": "swd", "seed": 0, "rule": entry["key"]["rule"],
                            "version": floor_cache.FLOOR_VERSION}
    assert len(entry["values"]) == first["swd"]["floor_pairs"]
    assert np.mean(entry["values"]) == pytest.approx(first["swd"]["floor"])
    # the cache is what the next evaluation reads: doctor the entry and the floor follows it
    entry["values"] = [1.0, 3.0]
    files[0].write_text(json.dumps(entry))
    again = evaluate_samples(gaussian(2)(300, 6), truth, n=50, repeats=2, metrics=["swd"], reference_key="g2")
    assert (again["swd"]["floor"], again["swd"]["floor_pairs"]) == (2.0, 2)
    # another n, seed or reference is another entry
    evaluate_samples(gaussian(2)(300, 5), truth, n=60, repeats=2, metrics=["swd"], reference_key="g2")
    evaluate_samples(gaussian(2)(300, 5), truth, n=50, repeats=2, metrics=["swd"], reference_key="g2", seed=1)
    evaluate_samples(gaussian(2)(300, 5), truth, n=50, repeats=2, metrics=["swd"], reference_key="other")
    assert len(entries(cache)) == 4


def test_a_new_version_invalidates_old_entries(cache, monkeypatch):
    truth = gaussian(2)
    evaluate_samples(gaussian(2)(300, 5), truth, n=50, repeats=2, metrics=["swd"], reference_key="g2")
    (old,) = entries(cache)
    entry = json.loads(old.read_text())
    entry["values"] = [7.0, 7.0]
    old.write_text(json.dumps(entry))
    monkeypatch.setattr(floor_cache, "FLOOR_VERSION", "floor-test-next")
    fresh = evaluate_samples(gaussian(2)(300, 5), truth, n=50, repeats=2, metrics=["swd"], reference_key="g2")
    assert fresh["swd"]["floor"] < 1.0  # recomputed, not the stale 7.0
    assert len(entries(cache)) == 2


def test_shipped_floors_are_read_where_the_cache_has_none(cache, monkeypatch, tmp_path):
    key = floor_cache.floor_key("g2", 50, "swd", 0, "r")
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    monkeypatch.setattr(floor_cache, "SHIPPED_DIR", shipped)
    assert floor_cache.load(key) is None
    (shipped / floor_cache.entry_name(key)).write_text(json.dumps({"key": key, "values": [4.0, 6.0]}))
    assert floor_cache.load(key) == [4.0, 6.0]  # nothing cached: the shipped entry
    floor_cache.store(key, [1.0, 2.0])
    assert floor_cache.load(key) == [1.0, 2.0]  # the user's cache first
    monkeypatch.setattr(floor_cache, "FLOOR_VERSION", "floor-test-next")
    assert floor_cache.load(floor_cache.floor_key("g2", 50, "swd", 0, "r")) is None  # another version: neither


def test_the_shipped_floors_are_the_demos_whole_and_current():
    folder = Path(floor_cache.__file__).parent / "shipped_floors"
    files = sorted(folder.glob("*.json"))
    assert {f.name.split("-")[0] for f in files} == {"w1", "energy", "mmd", "swd", "c2st"}
    for f in files:
        entry = json.loads(f.read_text())
        key = entry["key"]
        assert (key["version"], key["n"], key["seed"]) == (floor_cache.FLOOR_VERSION, 2000, 0), f.name
        assert "moons" in key["reference"] and f.name == floor_cache.entry_name(key)
        assert len(entry["values"]) >= 20 and all(v > 0 for v in entry["values"])


def test_unkeyed_samplers_are_not_cached_arrays_are_keyed_by_value(cache):
    truth = gaussian(2)
    evaluate_samples(truth(300, 5), truth, n=50, repeats=2, metrics=["swd"])
    assert entries(cache) == []
    ref = truth(400, 9)
    evaluate_samples(truth(300, 5), ref, n=50, repeats=2, metrics=["swd"])
    evaluate_samples(truth(300, 5), ref.copy(), n=50, repeats=2, metrics=["swd"])
    assert len(entries(cache)) == 1
    ref[0, 0] += 1e-9
    evaluate_samples(truth(300, 5), ref, n=50, repeats=2, metrics=["swd"])
    assert len(entries(cache)) == 2


def test_corrupt_entries_are_recomputed_and_replaced(cache):
    truth = gaussian(2)
    good = evaluate_samples(truth(300, 5), truth, n=50, repeats=2, metrics=["swd"], reference_key="g2")
    (path,) = entries(cache)
    for bad in ("{not json", json.dumps({"key": "x", "values": [1.0]}), json.dumps([1, 2])):
        path.write_text(bad)
        again = evaluate_samples(truth(300, 5), truth, n=50, repeats=2, metrics=["swd"], reference_key="g2")
        assert again["swd"]["floor"] == good["swd"]["floor"]
        assert json.loads(path.read_text())["values"]


def test_cache_writes_are_atomic(cache, monkeypatch):
    # A write that fails half-way leaves neither a torn entry nor a temporary file, and the evaluation goes on.
    def torn(obj, f, **kwargs):
        f.write('{"key": ')
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", torn)
    r = evaluate_samples(gaussian(2)(300, 5), gaussian(2), n=50, repeats=2, metrics=["swd"], reference_key="g2")
    assert r["swd"]["floor"] > 0
    assert list(cache.iterdir()) == []


def test_an_unwritable_cache_folder_is_skipped(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(floor_cache.ENV_DIR, str(blocker))
    r = evaluate_samples(gaussian(2)(300, 5), gaussian(2), n=50, repeats=2, metrics=["swd"], reference_key="g2")
    assert r["swd"]["floor"] > 0
