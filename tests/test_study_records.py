"""The committed SST-2 study (results/studies/study_sst2_smollm2/, docs/findings.md): complete, unedited records,
and `make tables` / `make report` rebuild its tables and figure from them on a fresh clone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from astra_repro import sweep
from astra_repro.paths import PROJECT_ROOT
from astra_repro.study import best_rates, load_runs, mean_of, progress, report_half

NAME = "study_sst2_smollm2"
FOLDER = PROJECT_ROOT / "results" / "studies" / NAME
RECORD_FILES = {"config.yaml", "metrics.json", "predictions.jsonl", "train_log.jsonl"}


@pytest.fixture(scope="module")
def study_and_runs():
    study = sweep.load_study(NAME)
    return study, load_runs(study, FOLDER)


def test_every_method_ran_at_every_rate_and_at_its_best_rate_with_every_seed(study_and_runs):
    study, study_runs = study_and_runs
    best = best_rates(study, study_runs)
    for variant in study.variants:
        mine = [r for r in study_runs if r.variant.key == variant.key]
        assert {(r.lr, r.seed) for r in mine if r.seed in study.grid_seeds} >= {(lr, s) for lr in study.rates for s in study.grid_seeds}
        assert best[variant.key].lr in study.rates
        assert {r.seed for r in mine if r.lr == best[variant.key].lr} == set(study.seeds), variant.key
    assert any(r.variant.key == "base" for r in study_runs)  # the untrained baseline
    assert progress(study, study_runs) is None  # so its tables carry no "in progress" note


def test_the_records_are_the_runners_own(study_and_runs):
    study, study_runs = study_and_runs
    for run in study_runs:
        record, run_dir = run.record, Path(run.record["run_dir"])
        trained = run.variant.key != "base"  # the untrained baseline has no training log
        expected = RECORD_FILES if trained else RECORD_FILES - {"train_log.jsonl"}
        assert {p.name for p in run_dir.iterdir() if not p.name.startswith(".")} == expected  # no weights
        assert len(run.outcomes) == 872  # the whole SST-2 dev set, both halves
        assert record["metrics"]["glue_dev"]["accuracy"] == pytest.approx(100 * sum(run.outcomes) / len(run.outcomes))
        assert record["eval_data"]["glue_dev"]["data_source"] == "local" and record["data"]["n_train"] == 512
        forgetting = record["metrics"]["forgetting"]
        assert forgetting["n_rows"] == 100 and forgetting["forgetting"] == pytest.approx(
            forgetting["ce_after"] - forgetting["ce_before"])
        assert record["eval_data"]["forgetting"]["sha256"]  # the text file is named by its content
        if run.variant.key == "base":
            assert forgetting["forgetting"] == pytest.approx(0.0, abs=1e-6)  # the untouched base against itself
    half = report_half(study)
    assert all(0 < mean_of(r.half(half)) < 100 for r in study_runs)


def test_make_tables_and_make_report_rebuild_the_study_from_its_records(study_and_runs, tmp_path, monkeypatch):
    from astra_repro import tables
    from astra_repro.report.page import write_report

    results = tmp_path / "results"
    shutil.copytree(FOLDER, results / "studies" / NAME)
    monkeypatch.setenv("ASTRA_RESULTS", str(results))
    tables.main([])
    best_rate = (results / "tables" / f"{NAME}_best_rate.md").read_text()
    study, _ = study_and_runs
    for variant in study.variants:
        assert f"| {variant.display} |" in best_rate
    assert "hierarchical" in best_rate  # 3 seeds per side: seeds and items resampled
    assert (results / "figures" / f"{NAME}_lr.png").stat().st_size > 10_000
    page = write_report().read_text()
    assert "Studies (real data" in page and f"{NAME}_lr" in page and "Astra smallest (theorem)" in page
