"""`make bench`, part 1: what the calibration stage and the data-driven inits cost next to a plain forward pass.

On the embedded SmolLM2-135M-Instruct (real weights, fp32, this machine's threads), with the same calibration
batches for every figure, in one process:

  * forward_s            a plain `model(**batch)` over the calibration samples (what a user compares against)
  * astra, corda         calibration_s and eigen_s (the decompositions alone) from the run-record fields the init
                         writes, and init_s, the whole init (+ PEFT wrapping, A = VᵀW, residual writes)
  * (calib + eigen) / forward   target ≤ 1.5; init / forward beside it
  * extra_peak_gb        peak RSS during the init minus RSS before it, on a model that has already run one forward
                         (its weights paged in); a 2 ms sampling thread (target ≤ 0.4)
  * corda, milora, loraga init seconds and their ratios to LoRA-GA (target ≤ 5)
  * astra_smallest       Astra with subspace=smallest: float64 statistics and eigh (accumulate_dtype auto, D13),
                         what resolving the small end of the spectrum costs next to the fp32 reference selection
  * with --compare: the straightforward path (`calibration.algorithm=direct`) measured the same way

    python scripts/bench_calibration.py                      # N=64, 256 tokens, r=32 (the issue's setting)
    python scripts/bench_calibration.py --compare            # also the straightforward path, for the speed-up
    python scripts/bench_calibration.py --model tiny_llama   # seconds; for a smoke test

Writes results/bench/calibration_<model>_<device>.json and prints a markdown table. Every init gets a fresh cache
identity (no cached statistics are reused), a freshly loaded model and its own process (clean memory peaks); a
calibrating init's process also times the plain forward, so each ratio is taken in one process.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

from astra_repro import threads  # first, before torch loads: the thread policy (astra_repro/threads.py)
import torch
from omegaconf import OmegaConf

from astra_repro.calibration import CalibrationSpec
from astra_repro.calibration.data import build_samples, iterate_model_batches
from astra_repro.data import synthetic_math
from astra_repro.data.sft import SFTCollator, tokenize_records
from astra_repro.data.sources import normalize_math_training_record
from astra_repro.methods import METHODS, HyperParams, InitContext
from astra_repro.models import load_model, model_config
from astra_repro.paths import CONFIG_DIR, PROJECT_ROOT

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak resident memory above the level at entry, sampled every 2 ms (CPU), or CUDA's allocator peak."""

    def __init__(self, device: str):
        self.device = device
        self.extra_gb = 0.0

    def __enter__(self):
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start = torch.cuda.memory_allocated()
            return self
        self.start = rss_bytes()
        self.peak = self.start
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, rss_bytes())
            time.sleep(0.002)

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.extra_gb = (torch.cuda.max_memory_allocated() - self.start) / 2**30
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.peak, rss_bytes())
            self.extra_gb = (self.peak - self.start) / 2**30
        return False


def calibration_cfg(args, algorithm: str):
    return OmegaConf.create({
        "source": "task", "n_samples": args.n_samples, "seq_len": args.seq_len, "batch_size": args.calib_batch,
        "seed": 42, "padding": "max_length", "padding_side": "tokenizer", "path": None, "prompt": "reference",
        "include_padding": True, "normalize": "absmax", "center": False, "accumulate_dtype": "model",
        "seq2seq_forward": "teacher_forced", "algorithm": algorithm,
    })


def fresh_model(args):
    model_cfg = model_config(args.model)
    model, tokenizer = load_model(model_cfg, args.dtype)
    return model.to(args.device), tokenizer


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def plain_forward_seconds(model, tokenizer, records, args) -> float:
    """A plain forward over exactly the batches calibration runs (after one warm-up batch)."""
    spec = CalibrationSpec.from_config(calibration_cfg(args, "fast"))
    samples = build_samples(tokenizer, records, spec)
    pad_id = tokenizer.eos_token_id
    batches = list(iterate_model_batches(samples, spec.batch_size, pad_id))
    with torch.no_grad():
        model(**{k: v.to(args.device) for k, v in batches[0][0].items()}, use_cache=False)
        sync(args.device)
        t0 = time.perf_counter()
        for inputs, _ in batches:
            model(**{k: v.to(args.device) for k, v in inputs.items()}, use_cache=False)
        sync(args.device)
    return time.perf_counter() - t0


def run_init(name: str, args, records, algorithm: str = "fast") -> dict:
    model, tokenizer = fresh_model(args)
    with torch.no_grad():  # page the weights in first: their first touch is not the init's memory
        model(input_ids=torch.randint(0, 100, (args.calib_batch, args.seq_len), device=args.device), use_cache=False)
    yaml, options_override = VARIANTS.get(name, (name, {}))
    options = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "method" / f"{yaml}.yaml"), options_override)
    ctx = InitContext(
        hp=HyperParams(rank=args.rank, alpha=args.rank, dropout=0.0, target_modules=TARGETS, learning_rate=1e-5),
        options=options, tokenizer=tokenizer, seed=42, train_records=records,
        train_features=tokenize_records(tokenizer, records[: 4 * args.n_samples], args.seq_len),
        collate_fn=SFTCollator(tokenizer.pad_token_id), calibration=calibration_cfg(args, algorithm),
        model_dtype=args.dtype, cache_identity={"bench": args.model, "time": time.time_ns()},
    )
    with PeakMemory(args.device) as memory:
        sync(args.device)
        t0 = time.perf_counter()
        METHODS.get(yaml)().initialize(model, ctx)
        sync(args.device)
        seconds = time.perf_counter() - t0
    calibration, eigen = ctx.report.get("calibration", {}), ctx.report.get("eigen", {})
    if calibration.get("cache_file"):  # every init here used a fresh identity: leave no statistics behind
        Path(calibration["cache_file"]).unlink(missing_ok=True)
    timing = {**calibration, **eigen}
    row = {"method": name, "algorithm": algorithm, "init_s": round(seconds, 2), "extra_peak_gb": round(memory.extra_gb, 3)}
    if "astra" in ctx.report:
        row["accumulate_dtype"] = ctx.report["astra"]["accumulate_dtype"]
    for key in ("calibration_s", "calibration_peak_gb", "samples_per_s", "eigen_s", "layers_s", "layers_peak_gb"):
        if key in timing:
            row[key] = timing[key]
    del model, ctx
    gc.collect()
    return row


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2_135m", help="a configs/model name (default: the embedded model)")
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--calib-batch", type=int, default=1, help="calibration batch (the reference used 1)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--methods", nargs="+", default=["astra", "astra_smallest", "corda", "milora", "loraga"])
    parser.add_argument("--compare", action="store_true", help="also measure the straightforward path (slow)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--no-7b", action="store_true", help="on a GPU, skip the LLaMA-2-7B-shape init figures")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # METHOD:ALGORITHM, one init per process
    return parser.parse_args(argv)


RATIO_METHODS = ("astra", "astra_smallest", "corda")  # the calibrating inits: their children also time the forward
# Bench names that are a method YAML with options: name -> (yaml, options)
VARIANTS = {"astra_smallest": ("astra", {"subspace": "smallest"})}


def child(args) -> None:
    """One init in a fresh process (so its memory peak is its own), after the plain forward when it calibrates:
    the ratio is taken in one process, same threads, same batches."""
    name, algorithm = args.child.split(":")
    records = [normalize_math_training_record(p) for p in synthetic_math.generate("train", 1024, seed=0)]
    forward_s = None
    if name in RATIO_METHODS:
        model, tokenizer = fresh_model(args)
        forward_s = plain_forward_seconds(model, tokenizer, records, args)
        del model
        gc.collect()
    row = run_init(name, args, records, algorithm)
    if forward_s:
        row["forward_s"] = round(forward_s, 2)
        row["calib_eigen_ratio"] = round((row["calibration_s"] + row["eigen_s"]) / forward_s, 3)
        row["init_ratio"] = round(row["init_s"] / forward_s, 3)
    print("RESULT " + json.dumps(row), flush=True)


def main(argv=None) -> None:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    runtime = threads.apply_runtime()
    if args.child:
        child(args)
        return
    env = {"model": args.model, "device": args.device, "dtype": args.dtype, "threads": torch.get_num_threads(),
           "cpu": platform.processor() or platform.machine(), "torch": torch.__version__,
           "n_samples": args.n_samples, "seq_len": args.seq_len, "rank": args.rank, "calib_batch": args.calib_batch,
           "runtime": runtime}
    if args.device.startswith("cuda"):
        env["device_name"] = torch.cuda.get_device_name()
    print(json.dumps(env), flush=True)
    plan = [(m, "fast") for m in args.methods]
    if args.compare:
        plan += [(m, "direct") for m in args.methods if m in RATIO_METHODS]
    passthrough = [f"--model={args.model}", f"--n-samples={args.n_samples}", f"--seq-len={args.seq_len}",
                   f"--rank={args.rank}", f"--calib-batch={args.calib_batch}", f"--dtype={args.dtype}", f"--device={args.device}"]
    rows = []
    for name, algorithm in plan:
        print(f"-- {name} ({algorithm})", flush=True)
        done = subprocess.run([sys.executable, __file__, *passthrough, f"--child={name}:{algorithm}"],
                              capture_output=True, text=True)
        results = [line[len("RESULT "):] for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode == 0 and results:
            row = json.loads(results[-1])
        else:  # one failing method must not hide the other figures
            row = {"method": name, "algorithm": algorithm, "error": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}
        rows.append(row)
        print(json.dumps(row), flush=True)
    loraga = next((r for r in rows if r["method"] == "loraga" and "init_s" in r), None)
    for row in rows:
        if loraga and "init_s" in row:
            row["ratio_to_loraga"] = round(row["init_s"] / loraga["init_s"], 3)

    out = args.out or PROJECT_ROOT / "results" / "bench" / f"calibration_{args.model}_{args.device.split(':')[0]}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"env": env, "rows": rows}, indent=2) + "\n")
    print(f"\n{args.model}, {args.n_samples} samples x {args.seq_len} tokens, r = {args.rank}, batch {args.calib_batch}, "
          f"{args.dtype}, {args.device} ({env['threads']} threads)\n")
    print("| method | path | forward s | calibration s | eigen s | (calib + eigen) / forward | init s | init / forward "
          "| init / LoRA-GA | extra peak GB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    dash = "—"
    for r in rows:
        if "error" in r:
            print(f"| {r['method']} | {r['algorithm']} | error: {r['error'][:90]} | | | | | | | |")
            continue
        ratio = f"**{r['calib_eigen_ratio']}×**" if "calib_eigen_ratio" in r else dash
        init_ratio = f"{r['init_ratio']}×" if "init_ratio" in r else dash
        print(f"| {r['method']} | {r['algorithm']} | {r.get('forward_s', dash)} | {r.get('calibration_s', dash)} "
              f"| {r.get('eigen_s', dash)} | {ratio} | {r['init_s']} | {init_ratio} | {r.get('ratio_to_loraga', dash)}× "
              f"| {r['extra_peak_gb']} |")
    print(f"wrote {out}")
    if args.device.startswith("cuda") and not args.no_7b:
        gpu_7b_figures(args)


def gpu_7b_figures(args) -> None:
    """The issue's GPU rows: a LLaMA-2-7B-shape model (random weights: timings do not depend on their values), bf16,
    r = 128, N = 64 x 512, through scripts/bench.py; then CorDA's and MiLoRA's init time over LoRA-GA's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_methods", Path(__file__).with_name("bench.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = PROJECT_ROOT / "results" / "bench" / "llama2_7b_init_cuda.json"
    for dtype_args in (["--dtype", "bfloat16"],):
        bench.main(["--shape", "llama2_7b", "--rank", "128", *dtype_args, "--n-samples", "64", "--seq-len", "512",
                    "--methods", "loraga", "astra", "corda", "milora", "--steps", "1", "--out", str(out)])
    rows = {r["method"]: r for r in json.loads(out.read_text()) if "init_s" in r}
    if "loraga" in rows:
        for name in ("corda", "milora", "astra"):
            if name in rows:
                print(f"{name} init / LoRA-GA init (7B shape): {rows[name]['init_s'] / rows['loraga']['init_s']:.2f}x")


if __name__ == "__main__":
    main(sys.argv[1:])
