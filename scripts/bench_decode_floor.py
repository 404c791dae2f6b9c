"""What one greedy decoding step costs on this CPU as the batch grows, and so the least time a scoring run can take.

A decoding step reads every weight once whatever the row count (memory-bound at few rows) and computes
2 x params FLOPs per row (compute-bound at many). A run that must decode `steps` tokens for its longest-running
rows costs at least steps x step(rows), whichever path schedules the rows. Prints the per-step cost for several
row counts (the embedded SmolLM2, fp32, a KV cache of --cache tokens), and the prefill rate in tokens/s:

    python scripts/bench_decode_floor.py                # rows 1 2 4 8 16 20 32 50, cache 200
    python scripts/bench_decode_floor.py --rows 20 --cache 450
Writes results/bench/decode_floor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import astra_repro  # noqa: E402,F401  (first: the CPU thread policy before torch loads)
import torch  # noqa: E402

from astra_repro import threads  # noqa: E402
from astra_repro.evaluators import decoding  # noqa: E402
from astra_repro.models import load_model, model_config  # noqa: E402
from astra_repro.paths import PROJECT_ROOT  # noqa: E402


@torch.no_grad()
def step_seconds(model, rows: int, cache_tokens: int, repeats: int) -> float:
    """Median seconds of one decoding forward for `rows` rows over a cache of `cache_tokens` columns."""
    cache = decoding.new_cache(model)
    kw = decoding.cache_keyword(model)
    ids = torch.randint(0, min(1000, model.config.vocab_size), (rows, cache_tokens))
    model(input_ids=ids, use_cache=True, logits_to_keep=1, **{kw: cache})
    mask, last = torch.ones(rows, cache_tokens, dtype=torch.long), ids[:, -1]
    times = []
    for step in range(repeats + 1):
        started = time.perf_counter()
        mask, last = decoding.decode_step(model, last, mask, cache, kw)  # the default path's own step
        if step:  # the first step after the prefill is a warm-up
            times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


@torch.no_grad()
def prefill_tokens_per_s(model, tokens: int = 2048, length: int = 128) -> float:
    ids = torch.randint(0, min(1000, model.config.vocab_size), (tokens // length, length))
    model(input_ids=ids[:2], logits_to_keep=1)
    started = time.perf_counter()
    model(input_ids=ids, logits_to_keep=1)
    return ids.numel() / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 4, 8, 16, 20, 32, 50])
    parser.add_argument("--cache", type=int, default=200, help="KV-cache columns each step reads (prompt + generated)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--model", default="smollm2_135m", help="a configs/model name (tiny_llama: a smoke test)")
    parser.add_argument("--out", default=str(PROJECT_ROOT / "results" / "bench" / "decode_floor.json"))
    args = parser.parse_args()
    threads.apply_runtime()
    model, _ = load_model(model_config(args.model))
    model.eval()
    rows = []
    for n in args.rows:
        seconds = step_seconds(model, n, args.cache, args.repeats)
        rows.append({"rows": n, "step_ms": round(seconds * 1e3, 1), "ms_per_row": round(seconds * 1e3 / n, 2)})
        print(f"[decode_floor] {n:3d} rows, cache {args.cache}: {rows[-1]['step_ms']} ms a step, "
              f"{rows[-1]['ms_per_row']} ms a row", flush=True)
    prefill = prefill_tokens_per_s(model)
    print(f"[decode_floor] prefill: {prefill:.0f} tokens/s (16 x 128 tokens in one forward)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"model": args.model, "cache": args.cache, "steps": rows, "prefill_tokens_per_s": round(prefill, 1),
                               "runtime": threads.runtime_record()}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
