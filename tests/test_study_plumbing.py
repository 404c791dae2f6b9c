"""What a study needs from the runner: the GLUE soft score batched by length equals scoring each prompt alone, the
generated-label pass can be switched off, keep_weights=false leaves only the record, and records name the code's
commit."""

from __future__ import annotations

import json
import re

import torch
from helpers import tiny_cfg

from astra_repro import runs
from astra_repro.evaluators.glue import causal_next_token_logits
from astra_repro.train import run


def test_length_sorted_last_position_logits_equal_each_prompt_scored_alone(tiny_model):
    model, tokenizer = tiny_model
    prompts = ["a b c d e f g h i j k l", "x", "hello there, general", "ab", "the quick brown fox jumps", "zz top"]
    batched = causal_next_token_logits(model, tokenizer, prompts, batch_size=4, max_length=64)
    alone = torch.stack([causal_next_token_logits(model, tokenizer, [p], batch_size=1, max_length=64)[0] for p in prompts])
    assert batched.shape == (len(prompts), model.config.vocab_size)
    torch.testing.assert_close(batched, alone, rtol=1e-4, atol=1e-4)  # in the prompts' order, not the sorted one
    full = model(**tokenizer(["hello there, general"], return_tensors="pt")).logits[0, -1]
    torch.testing.assert_close(batched[2], full, rtol=1e-4, atol=1e-4)  # logits_to_keep=1 is the last position


def test_a_study_run_keeps_only_its_record_and_scores_without_generating(tmp_path):
    cfg = tiny_cfg("task=glue", "method=lora", "task.glue_task=sst2", "task.train.max_length=128", "keep_weights=false",
                   "task.evaluators.glue_dev.generated_label=false", f"output_root={tmp_path}")
    run_dir = run(cfg)
    assert sorted(p.name for p in run_dir.iterdir() if p.name != runs.LOCK_FILE) == [
        "config.yaml", "metrics.json", "predictions.jsonl", "train_log.jsonl"]
    record = json.loads((run_dir / "metrics.json").read_text())
    assert set(record["metrics"]["glue_dev"]) == {"accuracy"}  # no accuracy_generated without generation
    assert record["eval_data"]["glue_dev"]["generated_label"] is False
    samples = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert samples and all(s["generated"] is None and s["pred_generated"] is None for s in samples)
    commit = record["software"]["astra_repro_commit"]
    assert commit is None or re.fullmatch(r"[0-9a-f]{40}(-dirty)?", commit)
    assert run(cfg) == run_dir  # finished: only reported, not redone
    assert not (run_dir / "trained").exists()
