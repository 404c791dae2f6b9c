"""`python -m astra_repro.evaluate`: score a base model, a finished run and a saved model folder with a task's
evaluators, writing the same record format as a training run."""

import json
import subprocess
import sys

import pytest
from helpers import tiny_cfg, tiny_evaluator_overrides

from astra_repro import runs
from astra_repro.errors import ConfigError
from astra_repro.evaluate import evaluate
from astra_repro.train import run

TINY_EVAL = ["model=tiny_llama", *tiny_evaluator_overrides("math")]


def read(folder):
    return json.loads((folder / runs.METRICS_FILE).read_text())


def test_base_model_is_scored_into_a_record_and_not_redone(capsys):
    out = evaluate(["base", *TINY_EVAL, "evaluators=[gsm8k]"])
    record = read(out)
    assert out.parent.name == "math" and out.name.startswith("eval_base_tiny_llama_")
    assert record["method"] == "base" and record["evaluated_by"] == "astra_repro.evaluate"
    assert set(record["metrics"]) == {"gsm8k"} and record["eval_data"]["gsm8k"]["n_eval"] == 4
    assert record["eval_data"]["gsm8k"]["backend"] == "hf" and record["eval_data"]["gsm8k"]["seconds"] > 0
    assert record["runtime"]["threads"] >= 1 and record["runtime"]["source"]["threads"].startswith(("auto", "environment"))
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4
    mtime = (out / runs.METRICS_FILE).stat().st_mtime_ns
    assert evaluate(["base", *TINY_EVAL, "evaluators=[gsm8k]"]) == out
    assert "already scored" in capsys.readouterr().out and (out / runs.METRICS_FILE).stat().st_mtime_ns == mtime


def test_a_finished_run_is_rescored_from_its_merged_export_on_another_task():
    run_dir = run(tiny_cfg("method=pissa", "skip_eval=true", "rank=4"))
    out = evaluate([str(run_dir), "task=code", "evaluators=[humaneval]", *tiny_evaluator_overrides("code"), "task.evaluators.humaneval.n=1"])
    record = read(out)
    assert out.parent.name == "code" and out.name.startswith(f"eval_{run_dir.name}_")
    assert record["method"] == "pissa" and record["method_label"] == "pissa [math run]" and record["rank"] == 4
    assert record["source"] == {"kind": "run", "path": str(run_dir.resolve())}
    assert record["metrics"]["humaneval"]["pass@1"] == 0.0
    # the merged export is what was scored: vLLM would get the same folder
    assert record["eval_data"]["humaneval"]["backend"] == "hf"


def test_a_run_rescored_on_its_own_task_is_labelled_and_matches_the_run(tmp_path):
    run_dir = run(tiny_cfg("method=lora", "evaluators=[gsm8k]"))
    out = evaluate([str(run_dir), "evaluators=[gsm8k]", *TINY_EVAL[1:]])
    a, b = read(run_dir), read(out)
    assert b["method_label"] == "lora (rescored)" and b["task"] == "math"
    assert a["metrics"]["gsm8k"] == b["metrics"]["gsm8k"]
    run_outputs = [json.loads(l)["output"] for l in (run_dir / "predictions.jsonl").read_text().splitlines()]
    rescored = [json.loads(l)["output"] for l in (out / "predictions.jsonl").read_text().splitlines()]
    assert run_outputs == rescored  # merged export in fp32 reproduces the in-memory adapter's greedy outputs


def test_a_model_folder_is_scored(tmp_path):
    run_dir = run(tiny_cfg("method=lora", "skip_eval=true"))
    out = evaluate([str(run_dir / "export" / "merged"), *TINY_EVAL, "evaluators=[math]"])
    assert read(out)["method"] == "external" and read(out)["method_label"] == "merged"


@pytest.mark.parametrize("argv, message", [
    (["/no/such/folder"], "neither `base` nor an existing folder"),
    ([], "give exactly one TARGET"),
    (["base", "task=nope"], "unknown task 'nope'"),
])
def test_bad_targets_are_one_line_errors(argv, message):
    with pytest.raises(ConfigError, match=message):
        evaluate(argv)


def test_cli_prints_one_line_and_exits_2():
    proc = subprocess.run([sys.executable, "-m", "astra_repro.evaluate", "/no/such/folder"], capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: TARGET")
