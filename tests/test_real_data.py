"""Integration with the real public files in ../shared/data (GSM8K), when they are beside the checkout.
The product never depends on them; these tests check that our loaders read the real formats."""

import warnings

import pytest
from omegaconf import OmegaConf

from astra_repro.data import sources
from astra_repro.evaluators import answer_extraction as ax
from astra_repro.evaluators.gsm8k import gold_value
from astra_repro.paths import PROJECT_ROOT

GSM8K = PROJECT_ROOT.parent / "shared" / "data" / "gsm8k"
pytestmark = pytest.mark.skipif(not (GSM8K / "test.jsonl").exists(), reason="../shared/data not beside this checkout")


def test_real_gsm8k_test_file_loads_with_reference_gold():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real file must never fall back to synthetic data
        records, info = sources.load_gsm8k_eval(OmegaConf.create({"path": str(GSM8K / "test.jsonl"), "hub": None}), None, 0)
    assert info == {"data_source": "local", "data_path": str(GSM8K / "test.jsonl"), "n_eval": 1319}
    assert gold_value(records[0]["answer"]) == "18"  # Janet's ducks
    golds = [gold_value(r["answer"]) for r in records]
    assert all(g.lstrip("-").isdigit() for g in golds)


def test_real_gsm8k_train_answers_convert_to_the_reference_extraction_format():
    records, info = sources.load_math_training(
        OmegaConf.create({"path": str(GSM8K / "train.jsonl"), "hub": None, "synthetic": {"n_train": 1, "seed": 0}}), None)
    assert info["data_source"] == "local" and len(records) == 7473
    raw = sources.read_json_records(GSM8K / "train.jsonl")
    for record, original in zip(records[:200], raw[:200]):
        assert "<<" not in record["output"]
        # the reference extraction reads the converted response back to the gold answer
        assert ax.extract_gsm8k_reference(record["output"]) == ax.gsm8k_gold(original["answer"])
