"""The hierarchical paired bootstrap (report/hierarchical.py): seeds resampled per method, items resampled paired.
Known cases: seed noise alone that the item-only test calls significant, a real effect both find, the seed level
against its exact distribution, and which bootstrap a table gets. Fast: numpy only, plus tiny run folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from astra_repro.report.hierarchical import (
    HIERARCHICAL, ITEMS, HierarchicalComparison, choose_bootstrap, compare_records_auto, compare_runs,
    hierarchical_bootstrap, item_bootstrap,
)
from astra_repro.report.significance import Comparison, Unavailable, paired_bootstrap, pool_seeds
from astra_repro.runs import load_records

N_ITEMS = 400


def seeded_runs(offsets, rng, difficulty):
    """One run per seed offset: item i is right with probability difficulty[i] + offset (clipped), drawn per seed."""
    return [{f"q{i}": float(rng.random() < min(1.0, max(0.0, p + offset))) for i, p in enumerate(difficulty)}
            for offset in offsets]


@pytest.fixture
def rng():
    return np.random.default_rng(1)


@pytest.fixture
def difficulty(rng):
    return rng.uniform(0.2, 0.9, N_ITEMS)


def test_seed_noise_alone_is_significant_item_only_but_not_hierarchical(rng, difficulty):
    # Method a has no effect: its seeds only scatter (offsets +25, +15, -10 points around b's level, as unstable
    # training would), and their mean happens to land above b's. Per item, a and b are otherwise alike.
    a = seeded_runs([0.25, 0.15, -0.10], rng, difficulty)
    b = seeded_runs([0.0, 0.0, 0.0], rng, difficulty)
    items_only = item_bootstrap(a, b)
    hierarchical = hierarchical_bootstrap(a, b)
    assert items_only.difference == hierarchical.difference > 3  # the same point estimate: seed-averaged accuracy
    assert items_only.significant and items_only.low > 0 and items_only.p_value < 0.05
    assert not hierarchical.significant and hierarchical.low < 0 < hierarchical.high
    assert hierarchical.p_value > 0.2
    assert hierarchical.marker() == "" and items_only.marker() == "L+"
    # the chooser gives this table (3 seeds each) the hierarchical test
    assert compare_runs(a, b).bootstrap == HIERARCHICAL and not compare_runs(a, b).significant


def test_a_real_consistent_effect_is_significant_in_both(rng, difficulty):
    a = seeded_runs([0.10, 0.09, 0.11], rng, difficulty)  # +10 points on every seed
    b = seeded_runs([0.0, 0.01, -0.01], rng, difficulty)
    items_only, hierarchical = item_bootstrap(a, b), hierarchical_bootstrap(a, b)
    for result in (items_only, hierarchical):
        assert result.significant and result.low > 0 and result.p_value < 0.01, result.describe()
    assert hierarchical.high - hierarchical.low > items_only.high - items_only.low  # seed variance widens it
    flipped = hierarchical_bootstrap(b, a)  # the other direction: the same test, mirrored
    assert flipped.difference == -hierarchical.difference and flipped.marker() == "L-ʰ"  # marked: seeds resampled
    assert item_bootstrap(b, a).marker() == "L-"  # the item-only test's cells carry no such mark


def test_the_seed_level_matches_its_exact_distribution():
    # Every item of a run has the same outcome, so resampling items changes nothing and the statistic is the mean of
    # two seeds drawn from a's {1, 0} (b is 0 everywhere): 0 / 50 / 100 points with probability 1/4, 1/2, 1/4.
    a = [{f"q{i}": 1.0 for i in range(50)}, {f"q{i}": 0.0 for i in range(50)}]
    b = [{f"q{i}": 0.0 for i in range(50)}] * 2
    result = hierarchical_bootstrap(a, b, n_resamples=20_000)
    assert result.difference == 50.0
    assert (result.low, result.high) == (0.0, 100.0)
    assert result.p_value == pytest.approx(2 * 0.25, abs=0.02)  # share at or below 0 (1/4), doubled
    assert not result.significant


def test_identical_seeds_reduce_to_the_item_bootstrap(rng, difficulty):
    # all seeds of a method equal: resampling seeds is a no-op, so the interval is the item bootstrap's up to
    # Monte Carlo error (the draws differ)
    a1, b1 = seeded_runs([0.05], rng, difficulty)[0], seeded_runs([0.0], rng, difficulty)[0]
    hierarchical = hierarchical_bootstrap([a1, a1], [b1, b1, b1])
    items_only = paired_bootstrap(a1, b1)
    assert hierarchical.difference == pytest.approx(items_only.difference, abs=1e-9)
    assert hierarchical.low == pytest.approx(items_only.low, abs=0.6)
    assert hierarchical.high == pytest.approx(items_only.high, abs=0.6)


def test_item_bootstrap_is_significance_paired_bootstrap_with_a_p(rng, difficulty):
    a, b = seeded_runs([0.05, 0.0], rng, difficulty), seeded_runs([0.0], rng, difficulty)
    ours = item_bootstrap(a, b, seed=3)
    pooled_a, pooled_b, _ = pool_seeds(a, b)
    theirs = paired_bootstrap(pooled_a, pooled_b, seed=3)
    assert (ours.difference, ours.low, ours.high, ours.n_items) == (theirs.difference, theirs.low, theirs.high, theirs.n_items)
    assert ours.bootstrap == ITEMS and 0 <= ours.p_value <= 1


def test_deterministic_given_the_seed(rng, difficulty):
    a = seeded_runs([0.2, 0.0, -0.1], rng, difficulty)
    b = seeded_runs([0.0, 0.05], rng, difficulty)
    first, again = hierarchical_bootstrap(a, b, seed=7), hierarchical_bootstrap(a, b, seed=7)
    assert first == again
    other = hierarchical_bootstrap(a, b, seed=8)
    assert (other.low, other.high) != (first.low, first.high)
    assert other.difference == first.difference


def test_choose_bootstrap_by_seed_count_and_input_checks(rng, difficulty):
    assert choose_bootstrap(2, 2) == choose_bootstrap(3, 5) == HIERARCHICAL
    assert choose_bootstrap(1, 3) == choose_bootstrap(3, 1) == choose_bootstrap(1, 1) == ITEMS
    a, b = seeded_runs([0.0, 0.0], rng, difficulty), seeded_runs([0.0], rng, difficulty)
    assert compare_runs(a, b).bootstrap == ITEMS
    with pytest.raises(ValueError, match="seeds per side"):
        hierarchical_bootstrap(a, b)
    with pytest.raises(ValueError, match="confidence"):
        hierarchical_bootstrap(a, a, confidence=1.0)
    # items not in every run are left out and counted, as the item bootstrap does
    shorter = [dict(list(run.items())[:-3]) for run in a]
    result = hierarchical_bootstrap(shorter, a)
    assert (result.n_items, result.n_dropped) == (N_ITEMS - 3, 3)


def write_folder(root, name, items: dict, seed: int, label: str):
    """A finished run folder: these per-item outcomes (id -> bool) and the record's matching accuracy."""
    folder = root / name
    folder.mkdir(parents=True)
    rows = [{"evaluator": "gsm8k", "question": q, "correct": ok} for q, ok in items.items()]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    record = {"task": "math", "model": "m", "method": label, "method_label": label, "rank": 8, "seed": seed,
              "global_batch_size": 32, "metrics": {"gsm8k": {"accuracy": 100.0 * sum(items.values()) / len(items)}},
              "eval_data": {"gsm8k": {"data_source": "real", "primary_metric": "accuracy"}}}
    (folder / "metrics.json").write_text(json.dumps(record))


def test_compare_records_auto_picks_by_seed_count(tmp_path, rng, difficulty):
    root = tmp_path / "runs"
    runs = {"a": seeded_runs([0.25, 0.15, -0.10], rng, difficulty), "b": seeded_runs([0.0, 0.0, 0.0], rng, difficulty)}
    for label, seeds in runs.items():
        for seed, outcome in enumerate(seeds, 1):
            write_folder(root, f"{label}_s{seed}", {q: v == 1.0 for q, v in outcome.items()}, seed, label)
    records = load_records(root)
    side = {label: sorted((r for r in records if r["method_label"] == label), key=lambda r: r["seed"]) for label in runs}
    three = compare_records_auto(side["a"], side["b"], "gsm8k", "accuracy")
    assert isinstance(three, HierarchicalComparison) and isinstance(three, Comparison)
    assert three.bootstrap == HIERARCHICAL and (three.n_seeds_a, three.n_seeds_b) == (3, 3)
    assert three == hierarchical_bootstrap(runs["a"], runs["b"])
    single = compare_records_auto(side["a"][:1], side["b"], "gsm8k", "accuracy")
    assert single.bootstrap == ITEMS and single.n_seeds_a == 1
    assert "hierarchical" in three.describe() and "p=" in three.describe()
    assert isinstance(compare_records_auto([], side["b"], "gsm8k", "accuracy"), Unavailable)
