"""`make bench` (scoring part): samples/s of GSM8K, MATH and HumanEval scoring on the embedded SmolLM2, the
path before issue 20 (`eval.generation=padded`: HF generate on fixed left-padded batches) against the default
(`regroup`: finished rows leave the batch, new prompts join), in one run, through the real evaluators.

Each evaluator runs at the demo scale (n, token cap, batch size from configs/task_scale/*_demo.yaml) once per path; the table
gives generation seconds, samples/s, the speed-up, the scores, and how many outputs differ between the paths
(both are greedy; a difference is an fp32 near-tie that padding flipped). Real data when given, else the
synthetic stand-ins the evaluators fall back to:

    python scripts/bench_scoring.py --gsm8k ../shared/data/gsm8k/test.jsonl --math ../shared/data/math/math500_test.jsonl \
        --humaneval ../shared/data/evalplus/HumanEvalPlus.jsonl.gz
    python scripts/bench_scoring.py --n 16 --batch-size 32   # other sample counts / batch sizes
Writes results/bench/scoring.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import astra_repro  # noqa: E402,F401  (first: the CPU thread policy, astra_repro/threads.py, before torch loads)
import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from astra_repro import threads  # noqa: E402
from astra_repro.evaluators import EvalTarget, get_evaluator  # noqa: E402
from astra_repro.models import load_model, model_config
from astra_repro.paths import CONFIG_DIR, PROJECT_ROOT  # noqa: E402

BENCHMARKS = {"gsm8k": "math", "math": "math", "humaneval": "code"}  # evaluator -> task
# The demo scale's batch sizes when issue 20 was filed: the padded path is timed at these ("today's path"), unless
# --batch-size / --baseline-batch-size say otherwise. HumanEval's default has since moved to 32 (code_demo.yaml).
PADDED_BATCH_BEFORE = {"gsm8k": 50, "math": 50, "humaneval": 16}


def evaluator_settings(name: str, args, batch_size: int | None = None) -> OmegaConf:
    overrides = [f"task={BENCHMARKS[name]}"]
    path = getattr(args, name)
    if path:
        overrides.append(f"task.evaluators.{name}.path={Path(path).resolve()}")
    for key, value in (("n", args.n), ("batch_size", batch_size or args.batch_size), ("max_new_tokens", args.max_new_tokens)):
        if value is not None:
            overrides.append(f"task.evaluators.{name}.{key}={value}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=overrides).task.evaluators[name]


def padded_batch(name: str, args) -> int:
    """The padded path's rows per batch: --baseline-batch-size, else --batch-size, else the batch before issue 20."""
    return args.baseline_batch_size or args.batch_size or PADDED_BATCH_BEFORE[name]


def score(name: str, settings, model, tokenizer, path: str) -> dict:
    evaluator = get_evaluator(name)(settings, "demo")
    started = time.perf_counter()
    result = evaluator.evaluate(EvalTarget(model, tokenizer, None, backend="hf", generation=path))
    info = result.info
    return {
        "path": info.get("generation_path"), "samples": len(result.predictions), "batch_size": info.get("batch_size"),
        "max_new_tokens": info.get("max_new_tokens"), "generation_s": info.get("seconds"),
        "samples_per_s": info["throughput"]["samples_per_s"], "prefill_s": info["throughput"].get("prefill_s"),
        "decode_s": info["throughput"].get("decode_s"),
        "new_tokens": info.get("new_tokens"), "scoring_s": round(time.perf_counter() - started, 2),
        "metric": evaluator.primary_metric, "score": result.metrics.get(evaluator.primary_metric),
        "data": info.get("data_source") or info.get("source"), "outputs": [p.get("output", p.get("completion")) for p in result.predictions],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in BENCHMARKS:
        parser.add_argument(f"--{name}", help=f"a real {name} test file (default: what the evaluator finds, else synthetic)")
    parser.add_argument("--n", type=int, help="samples per benchmark (default: the demo scale's)")
    parser.add_argument("--batch-size", type=int, help="rows per batch for both paths (default: the demo scale's)")
    parser.add_argument("--baseline-batch-size", type=int,
                        help="rows per batch of the padded path only (default: --batch-size if given, else the demo "
                             f"scale's batch before issue 20: {PADDED_BATCH_BEFORE})")
    parser.add_argument("--max-new-tokens", type=int, help="token cap (default: the demo scale's)")
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--out", default=str(PROJECT_ROOT / "results" / "bench" / "scoring.json"))
    args = parser.parse_args()

    threads.apply_runtime()
    model_cfg = model_config("smollm2_135m")
    model, tokenizer = load_model(model_cfg)
    rows = []
    for name in args.benchmarks:
        settings = evaluator_settings(name, args)
        baseline = evaluator_settings(name, args, padded_batch(name, args))
        before = score(name, baseline, model, tokenizer, "padded")
        after = score(name, settings, model, tokenizer, "regroup")
        differ = sum(a != b for a, b in zip(before.pop("outputs"), after.pop("outputs")))
        rows.append({"benchmark": name, "padded": before, "regroup": after, "outputs_differing": differ,
                     "speedup": round(before["generation_s"] / max(after["generation_s"], 1e-9), 2)})
        print(f"[bench_scoring] {name}: padded {before['samples_per_s']} samples/s, regroup {after['samples_per_s']} "
              f"samples/s ({rows[-1]['speedup']}x), {differ} of {after['samples']} outputs differ", flush=True)

    print("\n| benchmark | data | n | max new tokens | batch (padded / regroup) | padded samples/s | regroup samples/s | "
          "speed-up | score padded | score regroup | outputs differing |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        b, a = r["padded"], r["regroup"]
        print(f"| {r['benchmark']} | {a['data']} | {a['samples']} | {a['max_new_tokens']} | {b['batch_size']} / {a['batch_size']} | "
              f"{b['samples_per_s']} | {a['samples_per_s']} | {r['speedup']}x | {b['score']} | {a['score']} | "
              f"{r['outputs_differing']} |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
               "python": sys.version.split()[0], "runtime": threads.runtime_record()}
    out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
