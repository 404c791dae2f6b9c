"""Paired bootstrap over per-item correctness: known answers, per-item data from run folders, seed pooling,
which groups are compared, and the table markers. Fast: no model, fixture run folders only."""

import json
import logging
import math
import random

import numpy as np
import pytest
from run_fixtures import paper_like_runs, write_run

from astra_repro.report import significance as sig
from astra_repro.report.significance import (
    MARK_ABOVE,
    MARK_BELOW,
    MARK_VS_ASTRA,
    MARK_VS_LORA,
    MARKER_LEGEND,
    Comparison,
    Unavailable,
    compare_records,
    format_markers,
    item_outcomes,
    load_item_outcomes,
    paired_bootstrap,
    pool_seeds,
    significance_table,
)
from astra_repro.runs import load_records


def outcomes(values) -> dict[str, float]:
    return {f"item {i}": float(v) for i, v in enumerate(values)}


def select(records, label, rank, task="math", model="llama2_7b"):
    return [r for r in records if r["method_label"] == label and r["rank"] == rank and r["task"] == task and r["model"] == model]


def write_folder(root, name, evaluator, items: dict, metric="accuracy", id_field="question", extra_fields=None, **record):
    """A finished run folder with exactly these per-item outcomes (id -> bool) and a matching record."""
    folder = root / name
    folder.mkdir(parents=True)
    rows = [{"evaluator": evaluator, id_field: item, "correct": ok, **(extra_fields or {})} for item, ok in items.items()]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    value = 100.0 * sum(items.values()) / len(items)
    base = {"task": "math", "task_variant": None, "model": "m", "method": name, "method_label": name, "rank": 8, "seed": 1,
            "global_batch_size": 32, "metrics": {evaluator: {metric: value}},
            "eval_data": {evaluator: {"data_source": "real", "primary_metric": metric}}}
    (folder / "metrics.json").write_text(json.dumps({**base, **record}))
    return folder


# ---------------------------------------------------------------------------------------------- the bootstrap
def test_known_difference_matches_the_analytic_interval():
    # 2000 items; b right on 500, a right on the same 500 and 100 more: paired differences d_i in {0, 1}, mean 0.05.
    n, extra = 2000, 100
    b = outcomes([i < 500 for i in range(n)])
    a = outcomes([i < 500 + extra for i in range(n)])
    result = paired_bootstrap(a, b)
    assert result.difference == 5.0
    assert (result.n_items, result.n_dropped, result.n_resamples, result.confidence) == (2000, 0, 10_000, 0.95)
    # Normal approximation: mean ± 1.96 sd(d)/sqrt(n), sd the plug-in sqrt(p(1-p)) the bootstrap resamples from:
    # half-width 1.96 * 0.2179 / sqrt(2000) * 100 = 0.955 pp. Tolerance 0.1 pp: the bootstrap's 2.5%/97.5% ends carry
    # Monte Carlo error ~0.013 pp (10k resamples), sit on a 0.05 pp grid (1 item / 2000) and are shifted ~0.02 pp by
    # the skew of Binomial(2000, 0.05); 0.1 pp is ~10% of the half-width, so an interval from unpaired resampling
    # (half-width ~2.8 pp) or from the wrong spread fails.
    p = extra / n
    half = 1.96 * math.sqrt(p * (1 - p)) / math.sqrt(n) * 100
    assert result.low == pytest.approx(5.0 - half, abs=0.1)
    assert result.high == pytest.approx(5.0 + half, abs=0.1)
    assert result.significant and result.marker() == MARK_VS_LORA + MARK_ABOVE
    assert "+5.00 pp" in result.describe()


def test_identical_outcomes_give_a_zero_interval():
    a = outcomes(random.Random(3).random() < 0.4 for _ in range(500))
    result = paired_bootstrap(a, dict(a))
    assert (result.difference, result.low, result.high) == (0.0, 0.0, 0.0)
    assert not result.significant and result.marker() == "" and result.marker(MARK_VS_ASTRA) == ""


def test_a_small_difference_in_noisy_outcomes_is_not_significant():
    rng = random.Random(7)
    b = outcomes(rng.random() < 0.5 for _ in range(1000))
    a = outcomes(rng.random() < 0.5 for _ in range(1000))  # independent of b: per-item noise of ~0.7 per item
    flip = [k for k, v in a.items() if v == 0][: 5 + round(sum(b.values()) - sum(a.values()))]
    a.update({k: 1.0 for k in flip})  # a now right on 5 more items than b: +0.5 pp
    result = paired_bootstrap(a, b)
    assert result.difference == pytest.approx(0.5, abs=1e-9)
    assert result.low < 0 < result.high and result.high - result.low > 4  # ±~4.4 pp at n=1000
    assert not result.significant and result.marker() == ""


def test_an_interval_that_touches_zero_is_not_significant():
    # a right on one item more out of 10: 0.9^10 = 35% of resamples miss it, so the 2.5% end is exactly 0
    a, b = outcomes([1] + [0] * 9), outcomes([0] * 10)
    result = paired_bootstrap(a, b)
    assert result.low == 0.0 and result.high > 0
    assert not result.significant


def test_float_noise_of_pooled_thirds_does_not_decide_significance():
    # Items where a pooled 3/3 vs b 2/3 (+1/3) and items where a 1/3 vs b 2/3 (-1/3): in floats the two do not cancel
    # (1 - 2/3 = 0.33333333333333337, 1/3 - 2/3 = -0.3333333333333333). With 5 "+" items and 1 "-", the 2.5% end falls
    # on resamples with three of each (P(< 0) = 0.9%, P(<= 0) = 6.2%): exactly 0, in floats +1e-16 before rounding.
    runs_a = [{f"p{i}": 1.0 for i in range(5)} | {"m": float(s == 0)} for s in range(3)]
    runs_b = [{f"p{i}": float(s < 2) for i in range(5)} | {"m": float(s < 2)} for s in range(3)]
    a, b, dropped = pool_seeds(runs_a, runs_b)
    assert dropped == 0 and a["m"] == 1 / 3 and b["m"] == 2 / 3
    result = paired_bootstrap(a, b, n_seeds_a=3, n_seeds_b=3)
    assert result.difference == pytest.approx(100 * (5 / 3 - 1 / 3) / 6, abs=1e-9)
    assert result.low == 0.0 and math.copysign(1, result.low) == 1  # not -0.0, not ±1e-16
    assert not result.significant
    # and an exactly-zero difference reads as 0.0, not 1e-15
    a2, b2, _ = pool_seeds([{"p": 1.0, "m": 1.0}, {"p": 1.0, "m": 0.0}, {"p": 1.0, "m": 0.0}],
                           [{"p": 1.0, "m": 1.0}, {"p": 1.0, "m": 1.0}, {"p": 0.0, "m": 0.0}])
    assert paired_bootstrap(a2, b2).difference == 0.0


def test_bootstrap_is_deterministic_given_the_seed_and_antisymmetric():
    rng = random.Random(11)
    a = outcomes(rng.random() < 0.55 for _ in range(300))
    b = outcomes(rng.random() < 0.45 for _ in range(300))
    first = paired_bootstrap(a, b, n_resamples=2000, seed=5)
    assert paired_bootstrap(a, b, n_resamples=2000, seed=5) == first
    others = {(paired_bootstrap(a, b, n_resamples=2000, seed=s).low, paired_bootstrap(a, b, n_resamples=2000, seed=s).high)
              for s in range(4)}
    assert len(others) > 1  # the seed drives the resampling
    swapped = paired_bootstrap(b, a, n_resamples=2000, seed=5)
    assert swapped.difference == -first.difference
    assert swapped.low == pytest.approx(-first.high, abs=1e-9)
    assert swapped.high == pytest.approx(-first.low, abs=1e-9)
    assert swapped.significant == first.significant


def test_chunked_resampling_matches_one_index_matrix(monkeypatch):
    # The chunking only bounds memory: the same random stream row by row, so the result is identical.
    rng = random.Random(2)
    a = outcomes(rng.random() < 0.6 for _ in range(400))
    b = outcomes(rng.random() < 0.5 for _ in range(400))
    one_chunk = paired_bootstrap(a, b, n_resamples=3000, seed=1)
    monkeypatch.setattr(sig, "CHUNK_ENTRIES", 400 * 7)  # 7 rows at a time, a ragged last chunk
    assert paired_bootstrap(a, b, n_resamples=3000, seed=1) == one_chunk
    # and by hand: the percentile interval of mean(a*) - mean(b*) over the same index draws
    items = sorted(a)
    d = np.array([a[i] - b[i] for i in items])
    index = np.random.default_rng(1).integers(0, 400, size=(3000, 400))
    low, high = np.quantile(d[index].mean(axis=1) * 100, [0.025, 0.975])
    assert (one_chunk.low, one_chunk.high) == (pytest.approx(low, abs=1e-9), pytest.approx(high, abs=1e-9))


def test_bootstrap_pairs_items_by_id_and_counts_unshared_ones():
    a = {"x": 1.0, "y": 0.0, "z": 1.0, "only_a": 1.0}
    b = {"z": 0.0, "y": 0.0, "x": 1.0, "only_b": 0.0}  # other key order: pairing is by id, not by position
    result = paired_bootstrap(a, b, confidence=0.9)
    assert (result.n_items, result.n_dropped, result.confidence) == (3, 2, 0.9)
    assert result.difference == pytest.approx(100 / 3, abs=1e-9)
    with pytest.raises(ValueError, match="no item in common"):
        paired_bootstrap({"a": 1.0}, {"b": 1.0})
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap(a, b, confidence=95)


# ----------------------------------------------------------------------------------------------- per-item data
def test_item_outcomes_reproduce_every_evaluators_metric(tmp_path):
    math_run = write_run(tmp_path, "math", "llama2_7b", "lora", 8, 1, {"gsm8k": 41.0, "math": 5.5})
    code_run = write_run(tmp_path, "code", "llama2_7b", "lora", 8, 1, {"humaneval": 22.0, "mbpp": 35.0}, n_items=164)
    cs_run = write_run(tmp_path, "commonsense", "llama3_8b", "lora", 32, 1, {"boolq": 70.0, "siqa": 66.0}, n_items=100)
    glue_run = write_run(tmp_path, "glue", "t5_base", "lora", 8, 1, {"glue_dev": 83.0}, glue_task="cola", n_items=100)
    cases = [(math_run, "gsm8k", "accuracy", 200), (math_run, "gsm8k", "accuracy_flexible", 200),
             (math_run, "math", "accuracy", 200), (math_run, "math", "accuracy_fixed", 200),
             (code_run, "humaneval", "pass@1", 164), (code_run, "mbpp", "pass@1", 164),
             (cs_run, "boolq", "acc", 100), (cs_run, "siqa", "acc", 100), (glue_run, "glue_dev", "accuracy", 100)]
    for run_dir, evaluator, metric, n in cases:
        record = json.loads((run_dir / "metrics.json").read_text())
        got = item_outcomes(run_dir, evaluator, metric)
        assert got is not None and len(got) == n, (evaluator, metric)
        assert set(got.values()) <= {0.0, 1.0}
        assert 100 * sum(got.values()) / n == pytest.approx(record["metrics"][evaluator][metric], abs=1e-6)
    assert sorted(item_outcomes(code_run, "humaneval", "pass@1"))[:2] == ["HUMANEVAL/0", "HUMANEVAL/1"]
    assert "0" in item_outcomes(cs_run, "boolq", "acc")  # doc ids; only this evaluator's rows (siqa shares the file)
    assert all(k.startswith("cola: ") for k in item_outcomes(glue_run, "glue_dev", "accuracy"))


def test_metrics_without_a_per_item_field_have_no_significance(tmp_path):
    code_run = write_run(tmp_path, "code", "llama2_7b", "lora", 8, 1, {"humaneval": 22.0}, n_items=164)
    glue_run = write_run(tmp_path, "glue", "t5_base", "lora", 8, 1, {"glue_dev": 83.0}, glue_task="cola", n_items=100)
    plus = load_item_outcomes(code_run, "humaneval", "pass@1_plus")  # the fixtures write no correct_plus
    assert plus.outcomes is None and "correct_plus" in plus.reason
    assert item_outcomes(code_run, "humaneval", "pass@1_plus") is None
    for run_dir, evaluator, metric in [(glue_run, "glue_dev", "mcc"), (code_run, "humaneval", "n_timeout"),
                                       (code_run, "unknown_evaluator", "accuracy")]:
        loaded = load_item_outcomes(run_dir, evaluator, metric)
        assert loaded.outcomes is None and "no per-item field" in loaded.reason


def test_code_pass_at_1_is_the_base_tests_and_plus_its_own_field(tmp_path):
    # the real code evaluator: correct = base tests passed; correct_plus = base and plus tests passed
    items = {"HumanEval/0": True, "HumanEval/1": True, "HumanEval/2": False}
    folder = write_folder(tmp_path, "code_run", "humaneval", items, metric="pass@1", id_field="task_id",
                          extra_fields={"correct_plus": False},
                          metrics={"humaneval": {"pass@1": 200 / 3, "pass@1_plus": 0.0}})
    assert item_outcomes(folder, "humaneval", "pass@1") == {"HumanEval/0": 1.0, "HumanEval/1": 1.0, "HumanEval/2": 0.0}
    assert item_outcomes(folder, "humaneval", "pass@1_plus") == {"HumanEval/0": 0.0, "HumanEval/1": 0.0, "HumanEval/2": 0.0}
    # plus tests unavailable: correct_plus None on every item -> no per-item outcomes
    none_plus = write_folder(tmp_path, "no_plus", "humaneval", items, metric="pass@1", id_field="task_id",
                             extra_fields={"correct_plus": None}, metrics={"humaneval": {"pass@1": 200 / 3, "pass@1_plus": 0.0}})
    loaded = load_item_outcomes(none_plus, "humaneval", "pass@1_plus")
    assert loaded.outcomes is None and "None" in loaded.reason


def test_repeated_item_ids_stay_distinct_items(tmp_path):
    folder = tmp_path / "dup"
    folder.mkdir()
    rows = [{"evaluator": "glue_dev", "prompt": p, "correct": ok} for p, ok in [("same", True), ("other", False), ("same", False)]]
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "metrics.json").write_text(json.dumps({"metrics": {"glue_dev": {"accuracy": 100 / 3}}}))
    assert item_outcomes(folder, "glue_dev", "accuracy") == {"same": 1.0, "other": 0.0, "same#2": 0.0}


def test_predictions_that_disagree_with_the_metric_are_never_compared(tmp_path, caplog):
    runs_root = tmp_path / "runs"
    lora = write_run(runs_root, "math", "llama2_7b", "lora", 8, 1, {"gsm8k": 41.0})
    write_run(runs_root, "math", "llama2_7b", "astra", 8, 1, {"gsm8k": 47.0})
    path = lora / "predictions.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    flipped = next(r for r in rows if r["correct"] is False)
    flipped["correct"] = True  # one item tampered: the mean is 41.5, the record says 41.0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="astra_repro"):
        assert item_outcomes(lora, "gsm8k", "accuracy") is None
    assert "disagree" in caplog.text
    loaded = load_item_outcomes(lora, "gsm8k", "accuracy")
    assert loaded.outcomes is None and "41.5" in loaded.reason and "41.0" in loaded.reason
    records = load_records(runs_root)
    result = compare_records(select(records, "astra", 8), select(records, "lora", 8), "gsm8k", "accuracy")
    assert isinstance(result, Unavailable) and not result and "disagree" in result.reason
    assert not result.significant and result.marker() == "" and result.describe().startswith("n/a")
    (lora / "predictions.jsonl").unlink()
    assert "no predictions.jsonl" in load_item_outcomes(lora, "gsm8k", "accuracy").reason


# ------------------------------------------------------------------------------------------------------- pooling
def test_pool_seeds_averages_per_item_and_drops_items_not_in_every_run():
    a1 = {"x": 1.0, "y": 0.0, "z": 1.0}
    a2 = {"x": 0.0, "y": 0.0, "z": 1.0, "w": 1.0}
    b1 = {"x": 0.0, "y": 1.0, "w": 0.0}  # lacks z
    pooled_a, pooled_b, dropped = pool_seeds([a1, a2], [b1])
    assert pooled_a == {"x": 0.5, "y": 0.0} and pooled_b == {"x": 0.0, "y": 1.0}
    assert dropped == 2  # z (not in b1) and w (not in a1)
    with pytest.raises(ValueError):
        pool_seeds([], [b1])


def test_compare_records_pools_seeds_from_run_folders(tmp_path):
    root = tmp_path / "runs"
    a_runs = [write_folder(root, "a_s1", "gsm8k", {"q1": True, "q2": True, "q3": False, "q4": True}, method_label="a", seed=1),
              write_folder(root, "a_s2", "gsm8k", {"q1": True, "q2": False, "q4": False}, method_label="a", seed=2)]  # no q3
    write_folder(root, "b_s1", "gsm8k", {"q1": False, "q2": False, "q3": True, "q4": True, "q9": True}, method_label="b")
    records = load_records(root)
    assert {r["run_dir"] for r in records if r["method_label"] == "a"} == {str(p) for p in a_runs}
    result = compare_records([r for r in records if r["method_label"] == "a"], [r for r in records if r["method_label"] == "b"],
                             "gsm8k", "accuracy")
    assert isinstance(result, Comparison)
    assert (result.n_items, result.n_dropped, result.n_seeds_a, result.n_seeds_b) == (3, 2, 2, 1)  # q3 and q9 left out
    # a pooled: q1 1, q2 0.5, q4 0.5 (mean 2/3); b: q1 0, q2 0, q4 1 (mean 1/3)
    assert result.difference == pytest.approx(100 / 3, abs=1e-9)
    assert "2 dropped" in result.describe()
    assert compare_records([], records[:1], "gsm8k", "accuracy").reason == "no runs on one side"


# ------------------------------------------------------------------------------------------ paper-like fixtures
@pytest.fixture
def paper_records(tmp_path):
    return load_records(paper_like_runs(tmp_path / "runs"))


def test_astra_vs_lora_three_seeds_on_paper_like_runs(paper_records, tmp_path):
    astra, lora = select(paper_records, "astra", 128), select(paper_records, "lora", 128)
    result = compare_records(astra, lora, "gsm8k", "accuracy")
    assert (result.n_items, result.n_dropped, result.n_seeds_a, result.n_seeds_b) == (200, 0, 3, 3)
    assert result.difference == pytest.approx(6.0, abs=1e-9)  # 47 vs 41 averaged over seeds 1..3
    # The fixtures shuffle each seed's outcomes independently, so per-item pooled differences are noisy
    # (sd ~0.4 per item): the interval's half-width is the normal-approximation 1.96 sd(d)/sqrt(200), ~6 pp.
    d = np.array(_pooled_differences(astra, lora))
    half = 1.96 * d.std() / math.sqrt(len(d)) * 100
    assert (result.high - result.low) / 2 == pytest.approx(half, rel=0.15)
    assert result.low <= 0.5 and result.high > 11  # at the edge: 6 pp on 200 items is ~2 standard errors
    # the same 47 vs 41 on 2000 items per seed (a full-size test set) is clearly significant
    assert _bigger_test_set_result(tmp_path / "big").significant


def _pooled_differences(records_a, records_b):
    runs_a = [item_outcomes(r["run_dir"], "gsm8k", "accuracy") for r in records_a]
    runs_b = [item_outcomes(r["run_dir"], "gsm8k", "accuracy") for r in records_b]
    a, b, _ = pool_seeds(runs_a, runs_b)
    return [a[k] - b[k] for k in a]


def _bigger_test_set_result(root):
    for method, accuracy in (("lora", 41.0), ("astra", 47.0)):
        for seed in (1, 2, 3):
            write_run(root, "math", "llama2_7b", method, 128, seed, {"gsm8k": accuracy + (seed - 2) * 0.5}, n_items=2000)
    records = load_records(root)
    result = compare_records(select(records, "astra", 128), select(records, "lora", 128), "gsm8k", "accuracy")
    assert result.difference == pytest.approx(6.0, abs=1e-9) and result.n_items == 2000
    return result


def test_clear_and_null_differences_on_paper_like_runs(paper_records):
    pissa = compare_records(select(paper_records, "pissa", 128), select(paper_records, "lora", 128), "gsm8k", "accuracy")
    assert pissa.difference == pytest.approx(10.0, abs=1e-9) and pissa.significant and pissa.marker() == "L+"
    assert compare_records(select(paper_records, "lora", 128), select(paper_records, "pissa", 128), "gsm8k",
                           "accuracy").marker(MARK_VS_ASTRA) == MARK_VS_ASTRA + MARK_BELOW
    # Table 4's windows: 40.7 vs 40.5 on 200 items (both round to 81 right), one seed each
    top = compare_records(select(paper_records, "astra (Top)", 128), select(paper_records, "astra (Random)", 128),
                          "gsm8k", "accuracy")
    assert (top.n_items, top.n_seeds_a, top.n_seeds_b) == (200, 1, 1)
    assert abs(top.difference) <= 0.5 and top.low < 0 < top.high and not top.significant


def test_significance_table_matches_groups_by_context_and_rank(tmp_path):
    root = paper_like_runs(tmp_path / "runs")
    # an Astra rank LoRA does not have on commonsense: compared with LoRA's only rank (32)
    write_run(root, "commonsense", "llama3_8b", "astra", 16, 1, {"boolq": 75.0}, n_items=100)
    # a real-data smollm2 LoRA run with the same item ids as the synthetic ones: a context of its own
    write_run(root, "math", "smollm2_135m", "lora", 16, 7, {"gsm8k": 60.0}, n_items=100)
    records = load_records(root)

    gsm = significance_table(records, "gsm8k", "accuracy")
    by_group = {(k.model, k.method_label, k.rank): row for k, row in gsm.items()}
    assert by_group[("llama2_7b", "astra", 8)]["lora"].difference == pytest.approx(7.0, abs=1e-9)  # 43 vs 36 at rank 8
    assert by_group[("llama2_7b", "astra", 32)]["lora"].difference == pytest.approx(6.5, abs=1e-9)  # 45 vs 38.5
    assert set(by_group[("llama2_7b", "lora", 128)]) == {"astra"}  # a reference is not compared with itself
    assert set(by_group[("llama2_7b", "astra", 128)]) == {"lora"}
    wikitext = by_group[("llama2_7b", "astra (wikitext2)", 128)]
    assert wikitext["astra"].n_seeds_b == 3 and wikitext["lora"].n_seeds_b == 3
    fft = by_group[("llama2_7b", "fft", 0)]["lora"]  # LoRA has ranks 8, 32, 128 here: no single one to pick
    assert isinstance(fft, Unavailable) and "[8, 32, 128]" in fft.reason
    # synthetic-data rows are compared only among themselves (smollm2), never with the real-data llama2 runs
    synthetic = [k for k in gsm if k.data_source == "synthetic"]
    assert {(k.model, k.method_label) for k in synthetic} == {("smollm2_135m", "lora"), ("smollm2_135m", "astra")}
    synthetic_astra = gsm[next(k for k in synthetic if k.method_label == "astra")]["lora"]
    assert synthetic_astra.difference == pytest.approx(-15.0, abs=1e-9) and synthetic_astra.n_seeds_b == 1
    real_lora = next(k for k in gsm if k.model == "smollm2_135m" and k.data_source == "real")
    assert isinstance(gsm[real_lora]["astra"], Unavailable)  # no real-data smollm2 Astra run

    boolq = significance_table(records, "boolq", "acc")
    rows = {(k.method_label, k.rank): row for k, row in boolq.items()}
    assert rows[("astra", 16)]["lora"].difference == pytest.approx(5.0, abs=1e-9)  # vs LoRA's only rank, 32
    assert rows[("lora", 32)]["astra"].difference == pytest.approx(-3.0, abs=1e-9)  # the same rank when it exists
    hellaswag = significance_table(records, "hellaswag", "acc")  # no Astra run scored hellaswag
    assert [(k.method_label, k.rank) for k in hellaswag] == [("lora", 32)]
    assert isinstance(hellaswag[next(iter(hellaswag))]["astra"], Unavailable)

    glue = significance_table(records, "glue_dev", "accuracy")
    assert len(glue) == 20  # 5 GLUE tasks x 2 batch sizes x 2 methods, each its own context
    for key, row in glue.items():
        if key.method_label == "astra":
            assert key._replace(method_label="lora") in glue
            assert row["lora"].difference == pytest.approx(1.0, abs=1e-9), key
            assert row["lora"].n_items == 100
    assert {k.task_variant for k in glue} == {"mnli", "sst2", "qnli", "cola", "mrpc"}
    assert {k.global_batch_size for k in glue} == {32, 128}


def test_markers_are_plain_ascii_and_documented():
    for mark in (MARK_VS_LORA, MARK_VS_ASTRA, MARK_ABOVE, MARK_BELOW):
        assert mark.isascii() and mark and mark != "†"
    assert MARK_VS_LORA != MARK_VS_ASTRA and MARK_ABOVE != MARK_BELOW
    assert all(m in MARKER_LEGEND for m in (MARK_VS_LORA + MARK_ABOVE, MARK_VS_ASTRA + MARK_BELOW, "95%"))
    above = Comparison(difference=2.0, low=0.5, high=3.5, n_items=100)
    below = Comparison(difference=-2.0, low=-3.5, high=-0.5, n_items=100)
    flat = Comparison(difference=0.2, low=-1.0, high=1.4, n_items=100)
    assert format_markers({"lora": above, "astra": below}) == "L+ A-"
    assert format_markers({"lora": flat, "astra": Unavailable("no runs")}) == ""
    assert format_markers({"lora": below, "astra": above}) == "L- A+"


def test_mcnemar_exact_on_counted_cases():
    from math import comb

    from astra_repro.report.significance import mcnemar_exact

    # 10 items: a alone right on 6, b alone right on 1, both right on 3 -> p = 2 * P(X <= 1), X ~ Bin(7, 1/2)
    a = {str(i): float(i < 9) for i in range(10)}
    b = {str(i): float(i < 3 or i == 9) for i in range(10)}
    only_a, only_b, p = mcnemar_exact(a, b)
    assert (only_a, only_b) == (6, 1) and p == pytest.approx(2 * (comb(7, 0) + comb(7, 1)) / 2**7)
    assert mcnemar_exact(b, a)[2] == p  # symmetric
    assert mcnemar_exact(a, a) == (0, 0, 1.0)  # no discordant item: no evidence
    # balanced discordance: p = 1
    assert mcnemar_exact({"x": 1.0, "y": 0.0}, {"x": 0.0, "y": 1.0})[2] == 1.0
