"""`make bench`: what each LoRA initialisation costs, measured the same way for every method.

For every method: the init's wall time (calibration / gradients / SVDs included) and peak memory, then the
training step time (forward + backward + AdamW) at a fixed batch. Models are random-weight Llamas of a real
shape (timings do not depend on the weights' values), so this runs anywhere, offline, and on a GPU can use
the paper's LLaMA-2-7B shape without downloading it.

    python scripts/bench.py                                   # CPU default: SmolLM2-135M shape, r=16
    python scripts/bench.py --shape llama2_7b --rank 128 --dtype bfloat16 --methods lora astra pissa
Writes a JSON list to --out (default results/bench/<shape>_<device>.json) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import sys
import time
from pathlib import Path

from astra_repro import threads  # first, before torch loads: the thread policy (astra_repro/threads.py)
import torch
from omegaconf import OmegaConf

from astra_repro.data import synthetic_math
from astra_repro.data.sft import SFTCollator, tokenize_records
from astra_repro.data.sources import normalize_math_training_record
from astra_repro.methods import HyperParams, InitContext, METHODS
from astra_repro.models import tiny_tokenizer
from astra_repro.paths import CONFIG_DIR, PROJECT_ROOT

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab
    "tiny": (64, 128, 2, 4, 2, 32000),
    "smollm2_135m": (576, 1536, 30, 9, 3, 49152),
    "llama2_7b": (4096, 11008, 32, 32, 32, 32000),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def build_model(shape: str, dtype: torch.dtype, device: str, n_layers: int | None = None):
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, inter, layers, heads, kv, vocab = SHAPES[shape]
    layers = n_layers or layers
    config = LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=4096,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2)
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    return model


def method_options(name: str) -> OmegaConf:
    cfg = OmegaConf.load(CONFIG_DIR / "method" / f"{name}.yaml")
    return cfg


def peak_memory_gb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # process peak RSS (monotone)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench_method(name, args, tokenizer, records, features, collate, dtype) -> dict:
    method_cls = METHODS.get(name)
    method = method_cls()
    options = method_options(name)
    model = build_model(args.shape, dtype, args.device, args.layers)
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    calibration = OmegaConf.create({
        "source": "task", "n_samples": args.n_samples, "seq_len": args.seq_len, "batch_size": args.calib_batch,
        "seed": 42, "padding": "max_length", "padding_side": "tokenizer", "path": None, "prompt": "reference",
        "include_padding": True, "normalize": "absmax", "center": False, "accumulate_dtype": "model",
    })
    ctx = InitContext(
        hp=HyperParams(rank=args.rank, alpha=args.rank, dropout=0.0, target_modules=TARGETS, learning_rate=1e-5,
                       use_rslora=bool(options.get("use_rslora", False)), use_dora=bool(options.get("use_dora", False))),
        options=options, tokenizer=tokenizer, seed=42, train_records=records, train_features=features,
        collate_fn=collate, calibration=calibration, model_dtype=args.dtype,
        cache_identity={"bench": args.shape, "time": time.time()},  # never reuse a cached calibration
    )
    sync(args.device)
    t0 = time.perf_counter()
    model = method.initialize(model, ctx)
    sync(args.device)
    init_s = time.perf_counter() - t0
    init_peak = peak_memory_gb(args.device)
    row = {"method": name, "init_s": round(init_s, 2), "init_peak_gb": round(init_peak, 2)}
    if method.trains:
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        row["trainable_params"] = sum(p.numel() for p in params)
        optimizer = torch.optim.AdamW(params, lr=1e-5)
        batch = collate(features[: args.batch])
        batch = {k: v[:, : args.seq_len].to(args.device) for k, v in batch.items()}
        times = []
        for step in range(args.steps + 1):
            sync(args.device)
            t0 = time.perf_counter()
            with torch.autocast(args.device.split(":")[0], dtype=dtype, enabled=dtype != torch.float32):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            sync(args.device)
            if step > 0:  # the first step warms up kernels and allocators
                times.append(time.perf_counter() - t0)
        row["step_ms"] = round(1000 * sum(times) / len(times), 1)
        row["train_peak_gb"] = round(peak_memory_gb(args.device), 2)
    del model
    gc.collect()
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="smollm2_135m", choices=sorted(SHAPES))
    parser.add_argument("--methods", nargs="+", default=["lora", "dora", "pissa", "milora", "corda", "loraga", "astra"])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--n-samples", type=int, default=32, help="calibration samples")
    parser.add_argument("--seq-len", type=int, default=128, help="calibration and training sequence length")
    parser.add_argument("--calib-batch", type=int, default=1)
    parser.add_argument("--batch", type=int, default=8, help="training batch")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps (after one warm-up)")
    parser.add_argument("--layers", type=int, default=None, help="keep only this many decoder layers (init cost is per layer)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    runtime = threads.apply_runtime()
    dtype = getattr(torch, args.dtype)
    tokenizer = tiny_tokenizer()  # ids only matter for timing; a character tokenizer gives long, real-text sequences
    records = [normalize_math_training_record(p) for p in synthetic_math.generate("train", 512, seed=0)]
    features = tokenize_records(tokenizer, records, args.seq_len)
    collate = SFTCollator(tokenizer.pad_token_id)
    env = {"shape": args.shape, "layers": args.layers or SHAPES[args.shape][2], "rank": args.rank, "dtype": args.dtype, "device": args.device,
           "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine(),
           "threads": torch.get_num_threads(), "n_samples": args.n_samples, "seq_len": args.seq_len,
           "batch": args.batch, "torch": torch.__version__, "runtime": runtime}
    print(json.dumps(env), flush=True)
    rows = []
    for name in args.methods:
        try:
            row = bench_method(name, args, tokenizer, records, features, collate, dtype)
        except Exception as err:  # a failing method must not hide the others' numbers
            row = {"method": name, "error": f"{type(err).__name__}: {err}"[:300]}
        row.update(env)
        rows.append(row)
        print(json.dumps(row), flush=True)
    out = args.out or PROJECT_ROOT / "results" / "bench" / f"{args.shape}_{args.device.split(':')[0]}_r{args.rank}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    print("\n| method | init s | init peak GB | step ms | train peak GB | trainable |\n|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | error: {r['error'][:80]} | | | | |")
        else:
            print(f"| {r['method']} | {r['init_s']} | {r['init_peak_gb']} | {r.get('step_ms', '—')} | {r.get('train_peak_gb', '—')} | {r.get('trainable_params', 0):,} |")
    print(f"wrote {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
