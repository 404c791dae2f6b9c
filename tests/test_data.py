"""Data resolution order, GSM8K -> MetaMath answer conversion, and the reference label masking."""

import json
import warnings

import pytest
from omegaconf import OmegaConf

from astra_repro.data import sources
from astra_repro.data.prompts import ALPACA_PROMPT
from astra_repro.data.sft import IGNORE_INDEX, SFTCollator, tokenize_example
from astra_repro.errors import ConfigError

DATA_CFG = {"path": None, "hub": {"id": "fxmeng/pissa-dataset", "split": "train", "types": ["GSM_AnsAug"]},
            "synthetic": {"n_train": 50, "seed": 0}}


def test_local_file_wins(tmp_path):
    path = tmp_path / "mm.jsonl"
    path.write_text("\n".join(json.dumps({"query": f"q{i}", "response": f"r{i}"}) for i in range(5)))
    cfg = OmegaConf.create({**DATA_CFG, "path": str(path)})
    records, info = sources.load_math_training(cfg, n_train=3)
    assert info["data_source"] == "local" and info["n_train"] == 3
    assert records == [{"instruction": f"q{i}", "output": f"r{i}"} for i in range(3)]  # first N, file order


def test_hub_is_tried_when_reachable_and_synthetic_is_last(monkeypatch):
    calls = []

    def fake_load_dataset(hub_id, split):
        calls.append(hub_id)
        from datasets import Dataset

        return Dataset.from_list([{"instruction": "a", "output": "b", "type": "GSM_AnsAug"},
                                  {"instruction": "c", "output": "d", "type": "python"}])

    import datasets

    monkeypatch.setattr(sources, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records, info = sources.load_math_training(OmegaConf.create(DATA_CFG), n_train=None)
    assert calls == ["fxmeng/pissa-dataset"] and info["data_source"] == "hub"
    assert records == [{"instruction": "a", "output": "b"}]  # filtered to the MetaMath types

    monkeypatch.setattr(sources, "hub_reachable", lambda: False)
    with pytest.warns(sources.SyntheticDataWarning):
        records, info = sources.load_math_training(OmegaConf.create(DATA_CFG), n_train=None)
    assert info["data_source"] == "synthetic" and len(records) == 50
    assert records[0]["output"].splitlines()[-1].startswith("The answer is: ")


def test_offline_mode_never_probes_the_network(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import socket

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("network probed offline"))
    assert sources.hub_reachable() is False


def test_missing_local_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="task.data.path"):
        sources.load_math_training(OmegaConf.create({**DATA_CFG, "path": str(tmp_path / "nope.jsonl")}), None)


def test_unknown_record_format_is_a_config_error(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"text": "hello"}))
    with pytest.raises(ConfigError, match="query/response"):
        sources.load_math_training(OmegaConf.create({**DATA_CFG, "path": str(path)}), None)


def test_gsm8k_answer_becomes_metamath_response():
    answer = "He buys 3*4 = <<3*4=12>>12 eggs.\nThen 12+1,000 = <<12+1000=1012>>1012.\n#### 1,012"
    assert sources.gsm8k_answer_to_metamath(answer) == "He buys 3*4 = 12 eggs.\nThen 12+1,000 = 1012.\nThe answer is: 1012"


def test_eval_resolution_synthetic_is_disjoint_from_training():
    cfg = OmegaConf.create({"path": None, "hub": None})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        test, info = sources.load_gsm8k_eval(cfg, n=200, synthetic_seed=0)
        train, _ = sources.load_math_training(OmegaConf.create({**DATA_CFG, "synthetic": {"n_train": 2000, "seed": 0}}), None)
    assert info["data_source"] == "synthetic" and len(test) == 200
    assert not {r["question"] for r in test} & {r["instruction"] for r in train}


def test_label_masking_covers_exactly_the_prompt(tiny_model):
    _, tok = tiny_model
    ex = tokenize_example(tok, "What is 2+3?", "2+3=5\nThe answer is: 5", max_length=512)
    source_len = len(tok(ALPACA_PROMPT.format(instruction="What is 2+3?"))["input_ids"])
    assert ex["labels"][:source_len] == [IGNORE_INDEX] * source_len
    assert ex["labels"][source_len:] == ex["input_ids"][source_len:]
    # the target ends with "\n" + EOS written as text
    assert tok.decode(ex["input_ids"][source_len:]) == "2+3=5\nThe answer is: 5\n</s>"


def test_label_masking_when_truncated_masks_everything(tiny_model):
    _, tok = tiny_model
    ex = tokenize_example(tok, "x" * 300, "answer", max_length=64)
    assert len(ex["input_ids"]) == 64 and all(l == IGNORE_INDEX for l in ex["labels"])


def test_collator_pads_right_with_ignore_labels():
    batch = SFTCollator(pad_token_id=0)([{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}, {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [8, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
