"""`make bench-load`: does a training step or a scoring batch collapse beside a competing busy process? (issue 20)

Two fixed workloads, each timed idle and then beside one busy process (`yes > /dev/null`, or a Python busy loop
with --load python), for each candidate thread setting:

  training step   LoRA r=16 on a random-weight Llama of SmolLM2-135M's shape (scripts/bench.py), batch 4 x 256
                  tokens, fp32: forward + backward + clip + AdamW
  scoring batch   greedy generation of 16 synthetic math prompts x 64 new tokens (batch 16, the GSM8K stop strings)
                  through astra_repro.evaluators.generation.generate_greedy, on the embedded SmolLM2-135M when it
                  is converted (cache/models/smollm2_135m), else on the random-weight shape with the tiny tokenizer

Settings (N = the CPUs this process may run on):
  active    N threads, OMP_WAIT_POLICY=ACTIVE    (threads spin while they wait for work)
  passive   N threads, OMP_WAIT_POLICY=PASSIVE   (the project's default since issue 20: threads sleep)
  one       1 thread
  unset     N threads, no OMP_WAIT_POLICY        (libgomp's default, the policy before issue 20; not run unless
            named: --settings unset active passive one)
The wait policy is read once, when torch loads its OpenMP runtime, so each setting runs in its own child process
(this script again, with the setting's environment). A child warms each workload up idle, times it idle, starts
the competitor, times it again and stops the competitor.

    python scripts/bench_load.py             # ~5 min on 2 cores
    python scripts/bench_load.py --quick     # < 1 min: 6 layers, smaller batches, random-weight scoring model
    python scripts/bench_load.py --dry-run   # seconds per setting: the tiny shape, checks the machinery only

Prints a markdown table (per workload and setting: idle s, loaded s, loaded/idle, the child's CPU seconds, the
competitor's CPU share while loaded) and writes results/bench/load.json (--out). Timings are only comparable from
one machine left otherwise quiet.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import importlib.util
import inspect
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from astra_repro import threads  # before anything loads torch: the thread policy (astra_repro/threads.py)
from astra_repro import paths
from astra_repro.paths import PROJECT_ROOT

SCRIPTS = Path(__file__).resolve().parent
# Per mode: training shape and batch, scoring prompts / new tokens / batch, timed repeats, the scoring model.
SIZES = {
    "full": {"shape": "smollm2_135m", "layers": None, "batch": 4, "seq_len": 256, "prompts": 16, "new_tokens": 64,
             "score_batch": 16, "repeats": 1, "scoring_model": "auto"},
    "quick": {"shape": "smollm2_135m", "layers": 6, "batch": 2, "seq_len": 128, "prompts": 8, "new_tokens": 16,
              "score_batch": 8, "repeats": 1, "scoring_model": "random"},
    "dry_run": {"shape": "tiny", "layers": None, "batch": 1, "seq_len": 16, "prompts": 2, "new_tokens": 4,
                "score_batch": 2, "repeats": 1, "scoring_model": "random"},
}
DEFAULT_SETTINGS = ("active", "passive", "one")
ALL_SETTINGS = ("unset", "active", "passive", "spin", "one")
WORKLOADS = {"train": "training step", "score": "scoring batch"}
# The variables a setting decides; a child starts with none of them from this environment.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "MKL_NUM_THREADS",
                    threads.DEFAULTS_MARK, threads.OPT_OUT)
LORA_RANK = 16
SHORT_SPIN = 20000  # `spin`: wait actively this many iterations (~tens of µs), then sleep (libgomp default: 300k)
SETTLE_S = 0.5  # the competitor is given this long to be scheduled before the loaded timing starts


# ------------------------------------------------------------------------------------------------- settings
def settings(cpus: int, spin_count: int = SHORT_SPIN) -> dict[str, dict]:
    """The candidate settings for a machine whose process may use `cpus` CPUs, by name (`spin`: `spin_count`)."""
    n = max(1, cpus)
    plural = "s" if n > 1 else ""
    return {
        "unset": {"name": "unset", "label": f"{n} thread{plural}, no OMP_WAIT_POLICY (libgomp default)",
                  "threads": n, "omp_wait_policy": None},
        "active": {"name": "active", "label": f"{n} thread{plural}, ACTIVE", "threads": n, "omp_wait_policy": "ACTIVE"},
        "passive": {"name": "passive", "label": f"{n} thread{plural}, PASSIVE", "threads": n,
                    "omp_wait_policy": "PASSIVE"},
        "spin": {"name": "spin", "label": f"{n} thread{plural}, no OMP_WAIT_POLICY, GOMP_SPINCOUNT={spin_count}",
                 "threads": n, "omp_wait_policy": None, "gomp_spincount": str(spin_count)},
        "one": {"name": "one", "label": "1 thread, PASSIVE", "threads": 1, "omp_wait_policy": "PASSIVE"},
    }


def child_env(setting: dict, base: dict[str, str]) -> dict[str, str]:
    """The environment a setting's child process starts with: `base` without any thread variable, then the
    setting's own (the wait policy must be in the environment before the child's torch loads libgomp)."""
    env = {k: v for k, v in base.items() if k not in THREAD_VARIABLES}
    env["OMP_NUM_THREADS"] = str(setting["threads"])
    if setting["omp_wait_policy"]:
        env["OMP_WAIT_POLICY"] = setting["omp_wait_policy"]
    else:  # libgomp's own default: astra_repro must not put PASSIVE in
        env[threads.OPT_OUT] = "1"
    if setting.get("gomp_spincount"):
        env["GOMP_SPINCOUNT"] = setting["gomp_spincount"]
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", TQDM_DISABLE="1")
    return env


# ------------------------------------------------------------------------------------------------- the competitor
_PR_SET_PDEATHSIG = 1
try:  # resolved before any fork: the child of a fork in a threaded process should only call it
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None


def _die_with_parent() -> None:
    """In the competitor, between fork and exec: SIGKILL it when the process that started it dies, so a killed
    benchmark never leaves a busy process behind."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def start_load(kind: str) -> subprocess.Popen | None:
    """One busy process: `yes` writing to /dev/null, or a Python busy loop (`python`, or when `yes` is missing)."""
    if kind == "none":
        return None
    command = ["yes"] if kind == "yes" and shutil.which("yes") else [sys.executable, "-c", "while True: pass"]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
    time.sleep(SETTLE_S)
    return process


def cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds of a process, from /proc (None where there is no /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def stop_load(process: subprocess.Popen | None) -> None:
    if process is None:
        return
    process.kill()
    process.wait()


# ------------------------------------------------------------------------------------------------- workloads
def _bench_module():
    """scripts/bench.py (build_model, SHAPES, TARGETS), loaded by path: this script also runs imported by tests."""
    spec = importlib.util.spec_from_file_location("astra_bench", SCRIPTS / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def training_step(sizes: dict):
    """A fixed LoRA training step (forward, backward, clip, AdamW) on random tokens; returns (run_once, info)."""
    import torch
    from peft import LoraConfig, get_peft_model

    bench = _bench_module()
    model = bench.build_model(sizes["shape"], torch.float32, "cpu", sizes["layers"])
    model = get_peft_model(model, LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, lora_dropout=0.0,
                                             target_modules=bench.TARGETS))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    vocab = bench.SHAPES[sizes["shape"]][5]
    ids = torch.randint(3, vocab, (sizes["batch"], sizes["seq_len"]), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}

    def run_once() -> dict:
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return {"loss": round(loss.item(), 4)}

    layers = sizes["layers"] or bench.SHAPES[sizes["shape"]][2]
    return run_once, {"model": f"random-weight {sizes['shape']} shape, {layers} layers, LoRA r={LORA_RANK}",
                      "batch": sizes["batch"], "seq_len": sizes["seq_len"], "dtype": "float32"}


def scoring_model(sizes: dict):
    """(model, tokenizer, description): the converted embedded SmolLM2 when asked for (`real`) or available
    (`auto`), else the random-weight shape with the tiny tokenizer."""
    import torch

    from astra_repro.models import converted_model_problem, load_pretrained, tiny_tokenizer

    models = paths.model_cache_dir() if hasattr(paths, "model_cache_dir") else paths.cache_dir() / "models"
    folder = models / "smollm2_135m"
    wanted = sizes["scoring_model"]
    if wanted == "real" or (wanted == "auto" and converted_model_problem(folder) is None):
        model, tokenizer = load_pretrained(str(folder), "causal_lm", torch.float32)
        return model, tokenizer, f"embedded SmolLM2-135M ({folder})"
    bench = _bench_module()
    model = bench.build_model(sizes["shape"], torch.float32, "cpu", sizes["layers"])
    layers = sizes["layers"] or bench.SHAPES[sizes["shape"]][2]
    return model, tiny_tokenizer(), f"random-weight {sizes['shape']} shape, {layers} layers, tiny tokenizer"


def scoring_batch(sizes: dict, generation_path: str | None = None):
    """Greedy generation of a fixed set of synthetic math prompts, as the GSM8K evaluator runs it."""
    import torch

    from astra_repro.data import synthetic_math
    from astra_repro.data.prompts import MATH_STOP_STRINGS, math_eval_prompt
    from astra_repro.evaluators.generation import generate_greedy

    model, tokenizer, description = scoring_model(sizes)
    model.eval()
    prompts = [math_eval_prompt(r["question"]) for r in synthetic_math.generate("test", sizes["prompts"], seed=0)]
    extra = {}
    if generation_path and "path" in inspect.signature(generate_greedy).parameters:
        extra["path"] = generation_path

    def run_once(prompt_list=prompts, new_tokens=sizes["new_tokens"]) -> dict:
        with torch.no_grad():
            result = generate_greedy(model, tokenizer, prompt_list, new_tokens, sizes["score_batch"],
                                     MATH_STOP_STRINGS, desc="bench-load", **extra)
        texts, info = result if isinstance(result, tuple) else (result, {})  # (texts, info) since issue 20
        new = info.get("new_tokens")
        if new is None:  # the path that does not count them
            new = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        return {"new_tokens": new, "generation_path": info.get("generation_path")}

    def warm_up() -> None:
        run_once(prompts[:2], min(4, sizes["new_tokens"]))

    return run_once, warm_up, {"model": description, "prompts": sizes["prompts"], "new_tokens": sizes["new_tokens"],
                               "batch": sizes["score_batch"]}


def timed(run_once) -> tuple[float, float, dict]:
    """(wall seconds, this process's CPU seconds, what the workload reported) of one call."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = usage.ru_utime + usage.ru_stime
    t0 = time.perf_counter()
    out = run_once() or {}
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return wall, usage.ru_utime + usage.ru_stime - cpu0, out


def measure(run_once, repeats: int, load: str) -> dict:
    """Idle timings, then the same beside one competitor (median of `repeats` each)."""
    result: dict = {}
    for phase in ("idle", "loaded"):
        competitor = start_load(load) if phase == "loaded" else None
        try:
            cpu_before = cpu_seconds_of(competitor.pid) if competitor else None
            t0 = time.perf_counter()
            runs = [timed(run_once) for _ in range(repeats)]
            elapsed = time.perf_counter() - t0
            cpu_after = cpu_seconds_of(competitor.pid) if competitor else None
        finally:
            stop_load(competitor)
        result[f"{phase}_s"] = [round(w, 3) for w, _, _ in runs]
        result[f"{phase}_median_s"] = round(statistics.median(w for w, _, _ in runs), 3)
        result[f"{phase}_cpu_s"] = round(statistics.median(c for _, c, _ in runs), 3)
        result[f"{phase}_output"] = runs[-1][2]
        if cpu_before is not None and cpu_after is not None:
            result["competitor_cpu_share"] = round((cpu_after - cpu_before) / max(elapsed, 1e-9), 3)
    result["ratio"] = round(result["loaded_median_s"] / max(result["idle_median_s"], 1e-9), 3)
    return result


def run_child(setting: dict, sizes: dict, load: str, generation_path: str | None = None) -> dict:
    """One setting, in this process: both workloads, warmed up, idle then loaded. The process's environment must
    already hold the setting (child_env) for the wait policy to be the setting's."""
    import torch

    runtime = threads.apply_runtime()  # threads from OMP_NUM_THREADS, the policy the runtime started with
    torch.manual_seed(0)
    row = {"setting": setting["name"], "label": setting["label"], "runtime": runtime, "workloads": {}}
    step, info = training_step(sizes)
    step()  # warm-up: optimizer state, allocator, kernels
    row["workloads"]["train"] = {**info, **measure(step, sizes["repeats"], load)}
    del step  # the training model's memory, before the scoring model loads
    gc.collect()
    score, warm_up, info = scoring_batch(sizes, generation_path)
    warm_up()
    row["workloads"]["score"] = {**info, **measure(score, sizes["repeats"], load)}
    return row


# ------------------------------------------------------------------------------------------------- parent
def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "affinity_cpus": threads.affinity_cpus(), "python": platform.python_version(),
            "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None}


def run_setting(setting: dict, args, timeout_s: float) -> dict:
    """This script in a child process with the setting's environment; its row, or the error it ended with."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "row.json"
        command = [sys.executable, str(Path(__file__).resolve()), f"--child={setting['name']}", f"--child-out={out}",
                   f"--mode={args.mode}", f"--load={args.load}", f"--spin-count={args.spin_count}"]
        if args.generation:
            command.append(f"--generation={args.generation}")
        try:
            done = subprocess.run(command, env=child_env(setting, dict(os.environ)), capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"setting": setting["name"], "label": setting["label"], "error": f"timed out after {timeout_s:.0f} s"}
        if done.returncode == 0 and out.exists():
            return json.loads(out.read_text())
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"setting": setting["name"], "label": setting["label"], "error": last[:300]}


def table(rows: list[dict]) -> str:
    lines = ["| workload | setting | idle s | loaded s | loaded / idle | CPU s idle / loaded | competitor's CPU share |",
             "|---|---|---|---|---|---|---|"]
    for workload, title in WORKLOADS.items():
        for row in rows:
            if "error" in row:
                lines.append(f"| {title} | {row['label']} | error: {row['error'][:80]} | | | | |")
                continue
            w = row["workloads"][workload]
            share = w.get("competitor_cpu_share")
            lines.append(f"| {title} | {row['label']} | {w['idle_median_s']:.2f} | {w['loaded_median_s']:.2f} | "
                         f"{w['ratio']:.2f}x | {w['idle_cpu_s']:.1f} / {w['loaded_cpu_s']:.1f} | "
                         f"{'—' if share is None else f'{share:.2f}'} |")
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_const", dest="mode", const="quick", help="< 1 min: smaller workloads")
    mode.add_argument("--dry-run", action="store_const", dest="mode", const="dry_run",
                      help="the tiny shape: checks the machinery, measures nothing")
    mode.add_argument("--mode", choices=sorted(SIZES), help=argparse.SUPPRESS)
    parser.add_argument("--settings", nargs="+", choices=ALL_SETTINGS, default=list(DEFAULT_SETTINGS),
                        help=f"settings to run, in order (default: {' '.join(DEFAULT_SETTINGS)})")
    parser.add_argument("--load", choices=["yes", "python", "none"], default="yes",
                        help="the competitor: `yes > /dev/null` (default), a Python busy loop, or none")
    parser.add_argument("--generation", default=None, help="eval.generation path for the scoring batch (default: "
                        "generate_greedy's own)")
    parser.add_argument("--spin-count", type=int, default=SHORT_SPIN,
                        help=f"GOMP_SPINCOUNT of the `spin` setting (default {SHORT_SPIN}; libgomp's own: 300000)")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per setting (default: by mode)")
    parser.add_argument("--out", type=Path, default=None, help="default results/bench/load.json "
                        "(load_quick.json, load_dry_run.json)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.mode = args.mode or "full"
    return args


def main(argv=None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    sizes = SIZES[args.mode]
    candidates = settings(threads.affinity_cpus(), args.spin_count)
    if args.child:  # one setting, in this process (started by the parent with the setting's environment)
        row = run_child(candidates[args.child], sizes, args.load, args.generation)
        args.child_out.write_text(json.dumps(row))
        return
    timeout_s = args.timeout or {"full": 300.0, "quick": 60.0, "dry_run": 120.0}[args.mode]
    print(json.dumps({"mode": args.mode, **sizes, "load": args.load, "settings": args.settings, **machine()}),
          flush=True)
    start, at_start = time.perf_counter(), machine()
    rows = []
    for name in dict.fromkeys(args.settings):  # each once, in the order given
        print(f"-- {candidates[name]['label']}", flush=True)
        row = run_setting(candidates[name], args, timeout_s)
        rows.append(row)
        print(json.dumps(row), flush=True)
    report = {"mode": args.mode, "sizes": sizes, "load": args.load, "machine": at_start,
              "load_average_at_end": machine()["load_average"],  # another busy process here spoils the figures
              "seconds": round(time.perf_counter() - start, 1), "rows": rows}
    suffix = {"full": "", "quick": "_quick", "dry_run": "_dry_run"}[args.mode]
    out = args.out or PROJECT_ROOT / "results" / "bench" / f"load{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print()
    print(table(rows))
    print(f"\nloaded = beside one busy process ({args.load}); {report['seconds']:.0f} s in all; wrote {out}")


if __name__ == "__main__":
    main()
