"""Evaluators declare their metrics once (evaluators/base.py `MetricSpec`, `Declaration`), write the declaration into
every result, and reports read it from the record: a new evaluator reaches significance, tables and figures without
an entry in report/. Fast: no model (generation is canned), fixture run folders only."""

from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

from astra_repro import tables
from astra_repro.evaluators import EVALUATORS, get_evaluator
from astra_repro.evaluators.base import (
    DECLARATION_KEY, DIRECTIONS, Declaration, EvalResult, EvalTarget, Evaluator, MetricSpec, percent_true,
)
from astra_repro.report import declarations, figures, significance
from astra_repro.runs import load_records


def assert_declared(result: EvalResult, cls: type[Evaluator]) -> None:
    """The result carries its class's declaration, and its predictions the declared fields: every item has its id,
    and a metric declared as the mean of a per-item field is that mean."""
    declared = cls.declaration()
    assert result.info[DECLARATION_KEY] == declared.to_dict()
    assert declared.primary_metric in result.metrics
    assert result.predictions
    for prediction in result.predictions:
        assert prediction.get(declared.item_id_field) is not None, declared.item_id_field
        for spec in declared.metrics:
            if spec.item_field is not None:
                assert spec.item_field in prediction, (cls.name, spec.item_field)
    for spec in declared.metrics:
        values = [p[spec.item_field] for p in result.predictions] if spec.item_field else []
        if values and all(isinstance(v, bool) for v in values) and result.metrics.get(spec.name) is not None:
            assert 100.0 * sum(values) / len(values) == pytest.approx(result.metrics[spec.name]), spec.name


# ------------------------------------------------------------------------------------------- every evaluator
@pytest.mark.parametrize("name", EVALUATORS.names())
def test_every_registered_evaluator_declares_its_metrics_primary_first(name):
    cls = get_evaluator(name)
    declared = cls.declaration()
    assert cls.primary_metric == declared.primary_metric == cls.metrics[0].name
    names = [m.name for m in declared.metrics]
    assert len(set(names)) == len(names)
    assert declared.metrics[0].item_field is not None  # the primary metric is a mean over items: significance needs it
    assert all(m.direction in DIRECTIONS and m.label and "{" not in m.label for m in declared.metrics)
    assert declared.label and declared.item_id_field and declared.evaluator == name
    assert Declaration.from_dict(json.loads(json.dumps(declared.to_dict()))) == declared  # survives the record


def test_a_metric_direction_is_checked():
    with pytest.raises(ValueError, match="direction"):
        MetricSpec("loss", None, "loss", direction="down")


def canned(evaluator: Evaluator, output: str) -> Evaluator:
    evaluator.generate = lambda target, prompts, **kwargs: ([output] * len(prompts), {"backend": "canned"})
    return evaluator


@pytest.mark.parametrize("name", ["gsm8k", "math"])
def test_math_evaluators_write_their_declaration_and_its_fields(name):
    cfg = OmegaConf.create({"path": None, "hub": None, "synthetic_seed": 0, "n": 6, "max_new_tokens": 8, "batch_size": 6})
    evaluator = canned(get_evaluator(name)(cfg, "demo"), "The answer is: 7")
    with pytest.warns(UserWarning, match="ynthetic"):
        result = evaluator.evaluate(EvalTarget(model=None, tokenizer=None))
    assert_declared(result, get_evaluator(name))


# ------------------------------------------------------------------------------------------ a new evaluator
class Puzzles(Evaluator):
    """An evaluator no report has heard of: its own id field, metric names, label and per-item field."""

    name = "puzzles"
    version = "1"
    description = "test-only"
    label = "Puzzles"
    item_id_field = "puzzle_id"
    metrics = (MetricSpec("solved", "is_solved", "{benchmark} solved"), MetricSpec("n_steps", None, "steps", "lower"))

    def evaluate(self, target: EvalTarget) -> EvalResult:
        rows = [{"evaluator": self.name, "puzzle_id": f"p{i}", "is_solved": ok} for i, ok in enumerate(target.model)]
        return EvalResult({"solved": percent_true(rows, "is_solved"), "n_steps": 3}, rows, {"data_source": "real"})


def write_run(root, method: str, seed: int, outcomes: list[bool], with_declaration: bool = True):
    """A finished run folder as the runner writes it: the result's info under eval_data, predictions.jsonl."""
    result = Puzzles(OmegaConf.create({}), "demo").evaluate(EvalTarget(model=outcomes, tokenizer=None))
    info = dict(result.info, primary_metric=Puzzles.primary_metric)
    if not with_declaration:  # a record written before evaluators declared their metrics
        info.pop(DECLARATION_KEY)
    folder = root / f"puzzles_{method}_s{seed}"
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in result.predictions))
    record = {"run_name": folder.name, "task": "puzzles", "task_variant": None, "model": "m", "method": method,
              "method_label": method, "rank": 8, "seed": seed, "global_batch_size": 32, "recipe": "demo",
              "data": {"data_source": "real"}, "metrics": {"puzzles": result.metrics}, "eval_data": {"puzzles": info}}
    (folder / "metrics.json").write_text(json.dumps(record))
    return folder


@pytest.fixture
def registered(monkeypatch):
    """Puzzles in the evaluator registry for one test only."""
    monkeypatch.setitem(EVALUATORS._entries, Puzzles.name, Puzzles)
    return Puzzles


def puzzle_runs(root, with_declaration=True):
    lora = [True] * 20 + [False] * 80
    astra = [True] * 80 + [False] * 20
    for seed in (1, 2):
        write_run(root, "lora", seed, lora, with_declaration)
        write_run(root, "astra", seed, astra, with_declaration)
    return load_records(root)


def check_reports_see_puzzles(records, tmp_path):
    assert_declared(Puzzles(OmegaConf.create({}), "demo").evaluate(EvalTarget([True, False], None)), Puzzles)
    # significance: the declared item field and item id, no entry in report/significance.py
    table = significance.significance_table(records, "puzzles", "solved", n_resamples=200)
    row = next(v for k, v in table.items() if k.method_label == "astra")
    assert row["lora"].significant and row["lora"].difference == pytest.approx(60.0) and row["lora"].n_items == 100
    unavailable = significance.load_item_outcomes(records[0]["run_dir"], "puzzles", "n_steps")
    assert unavailable.outcomes is None and "no per-item field" in unavailable.reason
    # labels and primary metric: figures, per-task tables
    assert figures.evaluator_label(records, "puzzles") == "Puzzles"
    assert declarations.metric_label(records, "puzzles", "solved") == "Puzzles solved"
    assert figures.primary_value(records[0], "puzzles") in (20.0, 80.0)
    assert tables.primary_metrics(records) == {"puzzles": "solved"}
    written = tables.write_tables(tmp_path / "runs", tmp_path / "tables", tmp_path / "figures")
    markdown = (tmp_path / "tables" / "puzzles_m.md").read_text()
    assert (tmp_path / "tables" / "puzzles_m.md") in written and "puzzles solved" in markdown


def test_a_new_evaluator_reaches_the_reports_from_its_record_alone(tmp_path):
    # never registered: only what its records hold
    assert "puzzles" not in EVALUATORS
    records = puzzle_runs(tmp_path / "runs")
    check_reports_see_puzzles(records, tmp_path)


def test_an_old_record_falls_back_to_the_registered_evaluator(tmp_path, registered):
    records = puzzle_runs(tmp_path / "runs", with_declaration=False)
    assert all(DECLARATION_KEY not in r["eval_data"]["puzzles"] for r in records)
    check_reports_see_puzzles(records, tmp_path)


def test_an_undeclared_unregistered_evaluator_has_no_significance_and_keeps_its_name(tmp_path):
    records = puzzle_runs(tmp_path / "runs", with_declaration=False)
    loaded = significance.load_item_outcomes(records[0]["run_dir"], "puzzles", "solved")
    assert loaded.outcomes is None and "no per-item field" in loaded.reason
    assert figures.evaluator_label(records, "puzzles") == "puzzles"
    assert not math.isnan(figures.primary_value(records[0], "puzzles"))  # the record's own primary_metric
