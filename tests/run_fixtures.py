"""Run folders written from numbers, in the runner's formats (config.yaml, metrics.json, train_log.jsonl,
predictions.jsonl), for the tables, significance, figures and report tests: no model runs.

`write_run` writes one; `paper_like_runs` writes a small sweep that touches every paper table and figure
(several methods, ranks and seeds; real and synthetic data; a missing benchmark; Table 4's windows; GLUE at
two batch sizes; a WikiText-2-calibrated Astra; runs off the paper's protocol: commonsense scored on LLM-Adapters
files with their prompt differences, a constructed code prompt, a global batch other than the paper's, a real run
scored on a synthetic stand-in). Everything is deterministic, so outputs can be golden files.
"""

from __future__ import annotations

import json
import math
import random
import zlib
from pathlib import Path

import yaml

# evaluator -> (metric -> per-item field in predictions.jsonl, the item-id field)
ITEM_FIELDS = {
    "gsm8k": ({"accuracy": "correct", "accuracy_flexible": "correct_flexible"}, "question"),
    "math": ({"accuracy": "correct", "accuracy_fixed": "correct_fixed"}, "question"),
    "humaneval": ({"pass@1": "correct"}, "task_id"),
    "mbpp": ({"pass@1": "correct"}, "task_id"),
    "glue_dev": ({"accuracy": "correct"}, "prompt"),
}
COMMONSENSE = ["boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "siqa"]
PRIMARY = {"humaneval": "pass@1", "mbpp": "pass@1", **{name: "acc" for name in COMMONSENSE}}


def item_outcomes(n_items: int, accuracy: float, seed: int) -> list[bool]:
    """n_items outcomes with exactly round(accuracy% * n) correct, shuffled by seed."""
    n_correct = round(accuracy / 100 * n_items)
    outcomes = [True] * n_correct + [False] * (n_items - n_correct)
    random.Random(seed).shuffle(outcomes)
    return outcomes


def prediction_rows(evaluator: str, outcomes: list[bool], glue_task: str | None = None) -> list[dict]:
    if evaluator in COMMONSENSE:
        return [{"evaluator": evaluator, "doc_id": i, "correct": ok} for i, ok in enumerate(outcomes)]
    fields, id_field = ITEM_FIELDS[evaluator]
    prefix = f"{glue_task}: " if glue_task else ""
    item_id = (lambda i: f"{evaluator.upper()}/{i}") if id_field == "task_id" else (lambda i: f"{prefix}item {i}")
    return [{"evaluator": evaluator, id_field: item_id(i), **{f: ok for f in fields.values()}}
            for i, ok in enumerate(outcomes)]


def loss_curve(steps: int, start: float, floor: float, speed: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for step in range(1, steps + 1):
        loss = floor + (start - floor) * math.exp(-speed * step) + rng.uniform(-0.02, 0.02)
        rows.append({"step": step, "epoch": step / steps, "loss": round(loss, 4),
                     "grad_norm": round(0.3 + 2.0 * math.exp(-speed * step) + rng.uniform(0, 0.05), 4),
                     "learning_rate": 2e-5})
    return rows


def write_run(
    root: Path, task: str, model: str, method: str, rank: int, seed: int, scores: dict[str, float], *,
    method_label: str | None = None, n_items: int = 200, data_source: str = "real", glue_task: str | None = None,
    global_batch_size: int = 128, calibration_source: str = "task", subspace: str | None = None,
    window_start: str | None = None, recipe: str | None = None, eval_info: dict[str, dict] | None = None,
    loss: tuple[float, float, float] = (1.2, 0.4, 0.05), steps: int = 40, wall_s: float = 3600.0,
) -> Path:
    """One finished run folder. `scores` maps evaluator -> primary accuracy (%); per-item outcomes are drawn to
    match it exactly, so the record's metric and its predictions agree as the runner's do. `recipe` defaults to
    the paper's for the task (glue: `glue`, else `paper`); `eval_info` adds or replaces fields of an evaluator's
    `eval_data` entry (e.g. {"humaneval": {"prompt_source": "constructed"}}, {"math": {"data_source": "synthetic"}})."""
    recipe = recipe or ("glue" if task == "glue" else "paper")
    label = method_label or method
    digest = zlib.crc32(repr((task, label, rank, seed, glue_task, global_batch_size)).encode())
    name = f"{method}_{model}_r{rank}_s{seed}_{digest:08x}"
    run_dir = Path(root) / task / name
    run_dir.mkdir(parents=True)
    offset = sum(map(ord, f"{label}{rank}{glue_task}{global_batch_size}{task}"))
    metrics, eval_data, predictions = {}, {}, []
    for evaluator, accuracy in scores.items():
        outcomes = item_outcomes(n_items, accuracy, seed * 1000 + offset + len(evaluator))
        real = 100 * sum(outcomes) / n_items
        primary = PRIMARY.get(evaluator, "accuracy")
        if evaluator in ("humaneval", "mbpp"):
            metrics[evaluator] = {"pass@1": real, "pass@1_plus": real - 5}
        elif evaluator in COMMONSENSE:
            metrics[evaluator] = {"acc": real, "acc_norm": real}
        else:
            fields = ITEM_FIELDS[evaluator][0]
            metrics[evaluator] = {m: real for m in fields}
        eval_data[evaluator] = {"data_source": data_source, "primary_metric": primary, "n_eval": n_items,
                                "seconds": 100.0, **({"glue_task": glue_task} if glue_task else {}),
                                **(eval_info or {}).get(evaluator, {})}
        predictions += prediction_rows(evaluator, outcomes, glue_task)
    plan = {
        "model": {"name": model, "dtype": "bfloat16"}, "recipe": recipe,
        "task": {"name": task, "data": {"n_train": 100000}},
        "method": {"name": method, **({"subspace": subspace} if subspace else {}),
                   **({"window_start": window_start} if window_start else {})},
        "hp": {"rank": rank, "alpha": 2.0 * rank, "learning_rate": 2e-5},
        **({"calibration": {"source": calibration_source, "n_samples": 256}} if method in ("astra", "corda") else {}),
        "seed": seed,
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(plan, sort_keys=False))
    log = loss_curve(steps, *loss, seed=seed + offset)
    if log:  # the untrained base model has no log
        (run_dir / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    (run_dir / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions))
    record = {
        "run_name": name, "config_hash": name[-8:], "task": task, "task_variant": glue_task, "model": model,
        "method": method, "method_label": label, "recipe": recipe, "rank": rank, "alpha": 2.0 * rank,
        "learning_rate": 2e-5, "seed": seed, "global_batch_size": global_batch_size,
        "n_trainable_params": rank * 2_500_000 if rank else 6_738_000_000, "n_total_params": 6_738_000_000,
        "data": {"data_source": data_source, "n_train": 100000}, "eval_data": eval_data,
        "evaluator_versions": {e: "1" for e in scores}, "metrics": metrics,
        "train": {"global_step": steps, "train_loss": log[-1]["loss"]} if log else {},
        "init": {"init_seconds": 30.0 if method in ("astra", "corda", "pissa", "milora", "lora_ga") else 0.1,
                 **({"astra": {"subspace": subspace or "largest", "window_start": window_start, "label_convention": "paper",
                               "calibration": {"source": calibration_source}}} if method == "astra" else {})},
        "timings": {"init_s": 0.01 * wall_s, "train_s": 0.8 * wall_s, "export_s": 0.02 * wall_s, "eval_s": 0.15 * wall_s,
                    "wall_s": wall_s},
        "cost": {"device": "NVIDIA H100 80GB HBM3", "n_devices": 4, "device_hours": round(4 * wall_s / 3600, 4),
                 "peak_memory_gb": 61.5, "tokens_trained": steps * 128 * 300 if steps else None,
                 "init_s": 0.01 * wall_s, "calibration_s": 0.005 * wall_s if method in ("astra", "corda") else None,
                 "resumed": False},
        "sweep": f"table_{task}" if data_source == "real" else None,
        "software": {"torch": "2.x", "transformers": "5.x", "peft": "0.21", "python": "3.11"},
    }
    (run_dir / "metrics.json").write_text(json.dumps(record, indent=2, sort_keys=True))
    return run_dir


def paper_like_runs(root: Path) -> Path:
    """A small sweep covering every table and figure; returns `root`."""
    # Table 2 (math + code) on llama2_7b: base, lora (3 seeds), pissa, astra (3 seeds), fft; code lacks pissa.
    # Off the paper's protocol: pissa trained at global batch 64, fft's code scored with constructed prompts.
    for method, seeds, gsm, mth, he, mb in [("lora", (1, 2, 3), 41.0, 5.5, 22.0, 35.0), ("astra", (1, 2, 3), 47.0, 7.5, 24.5, 37.5),
                                           ("pissa", (1,), 51.5, 7.0, None, None), ("fft", (1,), 58.5, 12.0, 33.0, 44.0)]:
        rank = 0 if method == "fft" else 128
        for seed in seeds:
            jitter = (seed - 2) * 0.5
            write_run(root, "math", "llama2_7b", method, rank, seed, {"gsm8k": gsm + jitter, "math": mth + jitter / 2},
                      loss=(1.1, 0.30 if method == "fft" else 0.38 if method == "astra" else 0.45, 0.06),
                      global_batch_size=64 if method == "pissa" else 128)
            if he is not None:
                prompts = {"prompt_source": "constructed" if method == "fft" else "pissa_file"}
                write_run(root, "code", "llama2_7b", method, rank, seed, {"humaneval": he + jitter, "mbpp": mb + jitter},
                          n_items=164, eval_info={"humaneval": prompts, "mbpp": prompts})
    write_run(root, "math", "llama2_7b", "base", 0, 42, {"gsm8k": 14.0, "math": 2.5}, steps=0)
    # Figure 1/2: Astra and LoRA at smaller ranks (one seed), and Astra calibrated on WikiText-2 (Figure 2d).
    for rank, (lora_acc, astra_acc) in {8: (36.0, 43.0), 32: (38.5, 45.0)}.items():
        write_run(root, "math", "llama2_7b", "lora", rank, 1, {"gsm8k": lora_acc, "math": 4.5})
        write_run(root, "math", "llama2_7b", "astra", rank, 1, {"gsm8k": astra_acc, "math": 6.0}, loss=(1.1, 0.40, 0.05))
    write_run(root, "math", "llama2_7b", "astra", 128, 1, {"gsm8k": 46.0, "math": 7.0}, method_label="astra (wikitext2)",
              calibration_source="wikitext2")
    # Table 4: eigenvector windows on math (labels as the runner writes them).
    for label, subspace, start, gsm, mth in [("astra (Random)", "random", None, 40.5, 5.6),
                                             ("astra (Top)", "smallest", None, 40.7, 5.5),
                                             ("astra (Upper Quartile (Q3))", "window", "d/4", 40.5, 5.6)]:
        write_run(root, "math", "llama2_7b", "astra", 128, 1, {"gsm8k": gsm, "math": mth}, method_label=label,
                  subspace=subspace, window_start=start)
    # Table 3 (commonsense) on llama3_8b: every benchmark for lora; astra lacks hellaswag (a missing cell). Scored
    # on the LLM-Adapters files, whose BoolQ and HellaSwag prompts differ from the paper's.
    for method, base_acc in (("lora", 70.0), ("astra", 73.0)):
        scores = {name: base_acc + i for i, name in enumerate(COMMONSENSE)}
        if method == "astra":
            scores.pop("hellaswag")
        write_run(root, "commonsense", "llama3_8b", method, 32, 1, scores, n_items=100,
                  eval_info=llm_adapters_info(scores, n_available=100))
    # Tables 1 and 9 (GLUE on t5_base): two batch sizes, two methods, all five tasks.
    for batch in (128, 32):
        for method, delta in (("lora", 0.0), ("astra", 1.0)):
            for i, glue_task in enumerate(("mnli", "sst2", "qnli", "cola", "mrpc")):
                write_run(root, "glue", "t5_base", method, 8, 1, {"glue_dev": 80.0 + i + delta}, glue_task=glue_task,
                          global_batch_size=batch, n_items=100)
    # Demo-style rows on synthetic data: they must never enter a paper table.
    write_run(root, "math", "smollm2_135m", "lora", 16, 42, {"gsm8k": 29.0, "math": 10.0}, data_source="synthetic",
              n_items=100, wall_s=120.0, recipe="demo")
    write_run(root, "math", "smollm2_135m", "astra", 16, 42, {"gsm8k": 14.0, "math": 8.0}, data_source="synthetic",
              n_items=100, wall_s=110.0, recipe="demo")
    # A real run whose MATH was scored on the synthetic stand-in (no MATH file): never in the paper's Table 2.
    write_run(root, "math", "llama3_8b", "lora", 128, 1, {"gsm8k": 60.0, "math": 20.0},
              eval_info={"math": {"data_source": "synthetic"}})
    return root


def llm_adapters_info(evaluators, n_available: int) -> dict[str, dict]:
    """The eval_data fields a commonsense evaluator records for an LLM-Adapters test file (`source: local`), with
    each benchmark's recorded prompt difference (evaluators/lm_eval_tasks/specs.py)."""
    from astra_repro.evaluators.lm_eval_tasks.specs import BENCHMARKS

    return {name: {"n_available": n_available, "lm_eval_task": BENCHMARKS[name].local_task,
                   "prompt_difference": BENCHMARKS[name].local_difference} for name in evaluators}
