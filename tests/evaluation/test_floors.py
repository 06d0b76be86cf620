"""evaluate_samples: the value/floor protocol, its output layout and errors; format_table; memorisation ratio."""

import json

import numpy as np
import pytest

from difflab.errors import ConfigError, DataError, DifflabError
from difflab.evaluation import METRICS, Metric, evaluate_samples, format_table, nearest_neighbour_ratio

DIMS = [1, 2, 10]


def gaussian_sampler(d: int, mean: float = 0.0):
    def sample(n: int, seed: int) -> np.ndarray:
        return mean + np.random.default_rng(seed).standard_normal((n, d))

    return sample


def test_output_layout_is_json_able_and_in_registry_order():
    sampler = gaussian_sampler(2)
    results = evaluate_samples(sampler(400, 99), sampler, n=150, repeats=2, floor_pairs=3)
    assert list(results) == list(METRICS)
    for entry in results.values():
        assert list(entry) == ["value", "value_se", "floor", "floor_se", "ratio", "ratio_se", "repeats",
                               "floor_pairs"]
        assert (entry["repeats"], entry["floor_pairs"]) == (2, 3)
        assert all(type(entry[k]) is float for k in ("value", "value_se", "floor", "floor_se", "ratio", "ratio_se"))
    assert json.loads(json.dumps(results)) == results


def test_metric_subset_is_reported_in_registry_order():
    sampler = gaussian_sampler(2)
    results = evaluate_samples(sampler(300, 99), sampler, n=100, repeats=1, metrics=["c2st", "w1", "c2st"],
                               floor_pairs=2)
    assert list(results) == ["w1", "c2st"]


@pytest.mark.parametrize("d", DIMS)
def test_same_distribution_is_near_the_floor_and_a_shift_is_far_above(d):
    sampler = gaussian_sampler(d)
    good = evaluate_samples(sampler(1000, 99), sampler, n=300, repeats=3, seed=1, floor_pairs=6)
    bad = evaluate_samples(sampler(1000, 99) + 1.0, sampler, n=300, repeats=3, seed=1, floor_pairs=6)
    for name in METRICS:
        assert 0.3 < good[name]["ratio"] < 3.5, (name, good[name])
        assert bad[name]["ratio"] > 1.5, (name, bad[name])
        assert bad[name]["ratio"] > 1.5 * good[name]["ratio"], (name, good[name], bad[name])
        # the floor does not involve the generated points: same seed, same floor
        assert bad[name]["floor"] == good[name]["floor"]


def test_ratio_is_metric_ratio_of_mean_value_and_floor():
    sampler = gaussian_sampler(2)
    results = evaluate_samples(sampler(500, 99) * 1.5, sampler, n=200, repeats=2, floor_pairs=4)
    assert results["w1"]["ratio"] == pytest.approx(results["w1"]["value"] / results["w1"]["floor"])
    c = results["c2st"]  # excesses over chance clipped at the null sd of one comparison's n scored points
    assert c["ratio"] == METRICS["c2st"].ratio(c["value"], c["floor"], n_test=200)


@pytest.mark.parametrize("d", DIMS)
def test_floors_are_positive_and_shrink_with_n(d):
    sampler = gaussian_sampler(d)
    distances = ["w1", "energy", "mmd", "swd"]
    small = evaluate_samples(sampler(100, 99), sampler, n=100, repeats=3, metrics=distances, floor_pairs=3)
    large = evaluate_samples(sampler(800, 99), sampler, n=800, repeats=2, metrics=distances, floor_pairs=3)
    for name in small:
        assert 0 < large[name]["floor"] < small[name]["floor"], (name, small[name], large[name])


def test_reference_array_gives_floor_like_a_sampler():
    # A finite array of true points: floors from disjoint subsets match the sampler's floors statistically.
    sampler = gaussian_sampler(2)
    from_array = evaluate_samples(sampler(600, 99), sampler(5000, 7), n=300, repeats=3, metrics=["w1", "swd"],
                                  floor_pairs=20)
    from_sampler = evaluate_samples(sampler(600, 99), sampler, n=300, repeats=3, metrics=["w1", "swd"],
                                    floor_pairs=20)
    for name in from_array:
        assert from_array[name]["floor"] == pytest.approx(from_sampler[name]["floor"], rel=0.25)


@pytest.fixture
def spy(monkeypatch):
    """A registered metric that records every (x, y) pair it is called with."""
    calls = []

    def record(x, y, *, rng):
        calls.append((x.copy(), y.copy(), rng.random()))
        return 1.0

    monkeypatch.setitem(METRICS, "spy", Metric(record, "records its inputs"))
    return calls


def rows(a: np.ndarray) -> set:
    return {tuple(r) for r in a}


@pytest.mark.parametrize("array_reference", [True, False])
def test_protocol_floor_pairs_and_sample_repeats_are_independent_draws(spy, array_reference):
    n, repeats, pairs = 50, 3, 4
    samples = np.random.default_rng(1).standard_normal((120, 3))
    reference = np.random.default_rng(2).standard_normal((100, 3)) if array_reference else gaussian_sampler(3)
    results = evaluate_samples(samples, reference, n=n, repeats=repeats, metrics=["spy"], floor_pairs=pairs)
    assert {k: results["spy"][k] for k in ("value", "floor", "ratio", "repeats", "floor_pairs")} == {
        "value": 1.0, "floor": 1.0, "ratio": 1.0, "repeats": repeats, "floor_pairs": pairs}
    assert results["spy"]["ratio_se"] == 0.0  # no spread on either side
    assert len(spy) == pairs + repeats
    floors, values = spy[:pairs], spy[pairs:]  # the floor first (it is cached apart from the samples)
    for true_b, true_a, _ in floors:
        assert true_a.shape == true_b.shape == (n, 3)
        assert not rows(true_a) & rows(true_b)  # A and B are disjoint / independent
        if array_reference:
            assert rows(true_a) | rows(true_b) <= rows(reference)
    for gen, true, _ in values:
        assert rows(gen) <= rows(samples) and len(rows(gen)) == n  # a subset without replacement
        assert not any(rows(true) == rows(a) for _, a, _ in floors)  # its own true sample, not a floor's
    assert len({u for *_, u in spy}) == len(spy)  # every call gets its own random stream
    assert rows(values[0][1]) != rows(values[1][1])  # a fresh reference sample each repeat


def test_a_metric_scores_alike_alone_or_with_others():
    sampler = gaussian_sampler(2)
    samples = sampler(400, 99) * 1.2
    alone = evaluate_samples(samples, sampler, n=100, repeats=3, metrics=["swd"], floor_pairs=5)
    together = evaluate_samples(samples, sampler, n=100, repeats=3, metrics=["w1", "swd", "c2st"], floor_pairs=5)
    assert alone["swd"] == together["swd"]


def test_samples_may_be_a_sampler_drawn_fresh_every_repeat(spy):
    calls = []

    def draw(n, seed):
        calls.append(seed)
        return np.random.default_rng(seed).standard_normal((n, 2))

    evaluate_samples(draw, gaussian_sampler(2), n=20, repeats=4, metrics=["spy"], floor_pairs=2)
    assert len(set(calls)) == len(calls) == 4  # a fresh draw per repeat


def test_same_seed_same_result_other_seed_differs():
    sampler = gaussian_sampler(2)
    samples = sampler(400, 99)
    a = evaluate_samples(samples, sampler, n=150, repeats=2, seed=3, metrics=["swd", "c2st"], floor_pairs=3)
    b = evaluate_samples(samples, sampler, n=150, repeats=2, seed=3, metrics=["swd", "c2st"], floor_pairs=3)
    c = evaluate_samples(samples, sampler, n=150, repeats=2, seed=4, metrics=["swd", "c2st"], floor_pairs=3)
    assert a == b
    assert a["swd"]["floor"] != c["swd"]["floor"]


def test_format_table_lists_every_metric_aligned_with_its_se():
    sampler = gaussian_sampler(2)
    results = evaluate_samples(sampler(300, 99), sampler, n=100, repeats=2, floor_pairs=20)
    table = format_table(results, n=100)
    lines = table.splitlines()
    assert "n = 100" in lines[0] and "delta method" in lines[1]
    assert lines[2].split() == ["metric", "value", "floor", "ratio", "±", "se", "draws", "pairs"]
    body = lines[4:]
    assert [line.split()[0] for line in body] == list(METRICS)
    assert len({len(line) for line in lines[2:]}) == 1  # columns aligned
    for line, entry in zip(body, results.values()):
        ratio, pm, se, draws, pairs = line.split()[3:]
        assert pm == "±" and (draws, pairs) == ("2", "20")
        assert float(ratio) == pytest.approx(entry["ratio"], abs=0.006 + 1e-3 * entry["ratio"])
        assert float(se) == pytest.approx(entry["ratio_se"], abs=0.006 + 0.1 * entry["ratio_se"])


# --- errors ------------------------------------------------------------------------------------------------


def test_unknown_metric_lists_available():
    sampler = gaussian_sampler(2)
    with pytest.raises(ConfigError, match="unknown metric 'fid'; available: w1, energy, mmd, swd, c2st"):
        evaluate_samples(sampler(100, 1), sampler, n=10, metrics=["w1", "fid"])


def test_width_mismatch_with_array_and_sampler():
    samples = np.zeros((100, 3)) + np.arange(100)[:, None]
    with pytest.raises(DataError, match="^samples have 3 columns, reference has 2$"):
        evaluate_samples(samples, np.random.default_rng(0).standard_normal((100, 2)), n=10)
    with pytest.raises(DataError, match="^samples have 3 columns, reference has 2$"):
        evaluate_samples(samples, gaussian_sampler(2), n=10)


def test_n_larger_than_samples():
    with pytest.raises(ConfigError, match="samples have 50 points, fewer than n=100 — use --n 50 or fewer"):
        evaluate_samples(np.ones((50, 2)), gaussian_sampler(2), n=100)


def test_n_larger_than_half_the_reference():
    reference = np.random.default_rng(0).standard_normal((900, 2))
    message = "reference has 900 points; n=2000 needs 2 × n disjoint points — use --n 450 or fewer"
    with pytest.raises(ConfigError, match=message):
        evaluate_samples(np.ones((3000, 2)), reference, n=2000)
    evaluate_samples(np.random.default_rng(1).standard_normal((450, 2)), reference, n=450, repeats=1, metrics=["swd"])


def test_non_finite_samples_are_counted():
    samples = np.random.default_rng(0).standard_normal((100, 2))
    samples[3, 0] = np.nan
    samples[3, 1] = np.inf
    samples[7, 1] = -np.inf
    with pytest.raises(DataError, match="samples contain 3 non-finite values .* in 2 of 100 rows"):
        evaluate_samples(samples, gaussian_sampler(2), n=10)


def test_non_finite_reference_is_reported():
    reference = np.random.default_rng(0).standard_normal((100, 2))
    reference[0, 0] = np.nan
    with pytest.raises(DataError, match="reference points contain 1 non-finite"):
        evaluate_samples(np.ones((100, 2)), reference, n=10)


@pytest.mark.parametrize("n", [1, 0, -5])
def test_n_below_two(n):
    with pytest.raises(ConfigError, match=f"n={n} is too small"):
        evaluate_samples(np.ones((100, 2)), gaussian_sampler(2), n=n)


def test_bad_shapes_and_repeats():
    with pytest.raises(DataError, match=r"samples must be a 2-D array .* got shape \(100,\)"):
        evaluate_samples(np.ones(100), gaussian_sampler(1), n=10)
    with pytest.raises(ConfigError, match="repeats=0"):
        evaluate_samples(np.ones((100, 2)), gaussian_sampler(2), n=10, repeats=0)
    with pytest.raises(DataError, match="reference returned 9 points when asked for n=10"):
        evaluate_samples(np.ones((100, 2)), lambda n, seed: np.zeros((n - 1, 2)), n=10)


def test_errors_are_difflab_errors_with_one_line():
    with pytest.raises(DifflabError) as info:
        evaluate_samples(np.ones((100, 2)), np.ones((100, 3)), n=10)
    assert "\n" not in str(info.value)


# --- memorisation --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("d", DIMS)
def test_nearest_neighbour_ratio_copies_vs_fresh(d):
    sample = gaussian_sampler(d)
    train, heldout = sample(2000, 1), sample(800, 2)
    copies = train[np.random.default_rng(3).choice(2000, size=800)]
    copied = nearest_neighbour_ratio(copies, train, heldout, n=800, seed=0)
    assert copied["generated_to_train"] == 0.0 and copied["ratio"] == 0.0
    assert copied["heldout_to_train"] > 0
    fresh = nearest_neighbour_ratio(sample(800, 4), train, heldout, n=800, seed=0)
    assert 0.8 < fresh["ratio"] < 1.25
    # slightly perturbed copies sit in between
    jitter = fresh["heldout_to_train"] * 0.1
    noisy = nearest_neighbour_ratio(copies + jitter * sample(800, 5) / np.sqrt(d), train, heldout, n=800)
    assert 0.0 < noisy["ratio"] < 0.5


def test_nearest_neighbour_ratio_matches_brute_force_and_subsamples():
    rng = np.random.default_rng(0)
    train, heldout, samples = rng.normal(size=(60, 2)), rng.normal(size=(40, 2)), rng.normal(size=(30, 2)) * 2

    def median_nn(points):
        return np.median(np.min(np.linalg.norm(points[:, None] - train[None], axis=-1), axis=1))

    result = nearest_neighbour_ratio(samples, train, heldout, n=100, seed=0)
    assert result["n_generated"] == 30 and result["n_heldout"] == 40
    assert result["generated_to_train"] == pytest.approx(median_nn(samples))
    assert result["heldout_to_train"] == pytest.approx(median_nn(heldout))
    assert result["ratio"] == pytest.approx(median_nn(samples) / median_nn(heldout))
    capped = nearest_neighbour_ratio(samples, train, heldout, n=20, seed=0)
    assert capped["n_generated"] == capped["n_heldout"] == 20


def test_nearest_neighbour_ratio_errors():
    with pytest.raises(DataError, match="samples have 3 columns, training data has 2"):
        nearest_neighbour_ratio(np.ones((5, 3)), np.ones((5, 2)), np.ones((5, 2)), n=5)
    with pytest.raises(DataError, match="held-out points have 1 columns, training data has 2"):
        nearest_neighbour_ratio(np.ones((5, 2)), np.ones((5, 2)), np.ones((5, 1)), n=5)
    with pytest.raises(DataError, match="training points contain 1 non-finite"):
        nearest_neighbour_ratio(np.ones((5, 2)), np.array([[0.0, np.nan]]), np.ones((5, 2)), n=5)
