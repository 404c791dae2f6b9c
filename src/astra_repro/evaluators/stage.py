"""The evaluation stage, shared by a training run and `astra_repro.evaluate`: every evaluator of the plan on one
target, each finished evaluator's result kept so an interrupted evaluation resumes where it stopped."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from astra_repro import runs
from astra_repro.evaluators import EvalTarget, get_evaluator
from astra_repro.models import is_seq2seq

log = logging.getLogger("astra_repro")


def evaluate_stage(plan, target: EvalTarget, run_dir: Path) -> tuple[dict, dict, dict]:
    """Every evaluator of the plan on one target; all their samples go to predictions.jsonl (an `evaluator` field
    tells them apart)."""
    from astra_repro.evaluators.generation import resolve_backend

    recipe = plan["recipe"]
    model = target.model
    # vLLM serves causal LMs here; encoder-decoder models (T5 on GLUE) are always scored in memory
    seq2seq = model is not None and is_seq2seq(model)
    use_vllm = not seq2seq and resolve_backend(target.backend, target.path) == "vllm"
    if torch.cuda.is_available() and not use_vllm:
        model.cuda()
    merged = hasattr(model, "merge_adapter")
    if merged:
        model.merge_adapter()  # generation at plain-model speed; the record on disk keeps the adapter
    metrics, info, versions, predictions = {}, {}, {}, []
    task_evaluators = OmegaConf.create(plan["task"]["evaluators"])
    try:
        for name in task_evaluators:
            evaluator_cls = get_evaluator(name)
            settings = OmegaConf.to_container(task_evaluators[name], resolve=True)
            result_file = run_dir / runs.EVAL_PARTS_DIR / f"{name}.json"
            part = finished_evaluator(result_file, settings, evaluator_cls.version)
            if part is None:
                started = time.time()
                result = evaluator_cls(task_evaluators[name], recipe).evaluate(target)
                part = {
                    "settings": settings, "version": evaluator_cls.version, "metrics": result.metrics,
                    "info": dict(result.info, primary_metric=evaluator_cls.primary_metric,
                                 seconds=round(time.time() - started, 2)),
                    "predictions": result.predictions,
                }
                # a kill during the next evaluator keeps this one; key order kept, so predictions.jsonl is unchanged
                runs.atomic_write_text(result_file, json.dumps(part, default=str))
            metrics[name], info[name], versions[name] = part["metrics"], part["info"], part["version"]
            predictions.extend(part["predictions"])
    finally:
        if merged:
            model.unmerge_adapter()
    runs.write_jsonl(run_dir / runs.PREDICTIONS_FILE, predictions)
    return metrics, info, versions


def finished_evaluator(result_file: Path, settings: dict, version) -> dict | None:
    """An evaluator's saved result from an interrupted evaluation of this run, if its settings and version match."""
    if not result_file.exists():
        return None
    try:
        part = runs.read_json(result_file)
    except ValueError:
        return None
    if runs.canonical_json(part.get("settings")) != runs.canonical_json(settings) or part.get("version") != version:
        return None
    log.info("eval: %s already scored before an interruption; reusing %s", result_file.stem, result_file)
    return part


def print_metrics(record: dict) -> None:
    label = record.get("method_label", record.get("method"))
    for evaluator, values in record.get("metrics", {}).items():
        info = record.get("eval_data", {}).get(evaluator, {})
        if not values:
            print(f"[astra_repro] {label} {evaluator}: not scored ({info.get('skipped') or info.get('scoring_error') or 'no metrics'})")
            continue
        shown = ", ".join(f"{k}={v:.2f}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in values.items())
        print(f"[astra_repro] {label} {evaluator}: {shown}  (data: {info.get('data_source', '?')})")
