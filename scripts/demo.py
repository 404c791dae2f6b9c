"""`make demo`: the whole pipeline on the embedded SmolLM2-135M-Instruct, offline, on a laptop CPU, asking the
question this framework exists for: the released code adapts the LARGEST-eigenvalue directions, the paper's
theorem argues for the SMALLEST. Which one helps, and is the gap more than noise?

Rows, all scored on the same held-out problems (GSM8K format):
  base                          the pretrained model as shipped
  LoRA                          lr 1e-3 (configs/method/lora.yaml, demo scale)
  Astra released, 2e-4          method.subspace=largest at lr 2e-4 (configs/method/astra.yaml, demo scale): its best
                                rate of the grid {2e-4, 1e-3} - at 4e-4 and above its early gradient norms of 20-60
                                make training diverge (docs/benchmarks.md)
  Astra theorem, 2e-4           method.subspace=smallest at the SAME rate: the two Astra rows differ in the subspace
                                alone, so their gap is the subspace's
  Astra theorem, 1e-3           method.subspace=smallest at its best rate of the grid: along the smallest directions
                                A = VᵀW is tiny and B orthonormal, so it starts like LoRA and takes LoRA's rate
Each row is compared with LoRA on the per-problem outcomes: the difference in points with a 95 % paired-bootstrap
interval and the exact McNemar p-value, so the reader sees which gaps are noise; the two selections are compared
with each other at the same rate too. Each Astra row says how many of its adapted directions the calibration data
determine, and how many a convention does (the structural null space's fixed basis on gate/up, or an order that
rounding decides): docs/astra_fidelity.md D13.

The released selection calibrates in the model's dtype (fp32 here, the reference's arithmetic); the theorem's in
float64 (accumulate_dtype auto); its two rows differ only in the learning rate, so the second reuses the first's
saved init (artifacts.init_identity), and every row shares one model conversion. Finished runs are reused (their
records exist), so a second `make demo` only prints. Extra
Hydra overrides can follow:
    .venv/bin/python scripts/demo.py seed=1
    .venv/bin/python scripts/demo.py --jobs 2        # the rows in two lanes of processes

Lanes (`--jobs 2`; the default, 1, runs the rows one after another in this process): the rows run as `python -m astra_repro.train`
processes in two lanes, each with an equal share of the CPUs (OMP_NUM_THREADS), the two theorem rows in one lane so
that the second reuses the first's init. Timed back to back on 2 idle cores: 227 s in two lanes, 232 s in one
process (docs/benchmarks.md), a 2 % gain, too little to be the default. Each row's output goes
to <results>/demo_logs/<row>.log; a row's scores differ from a one-lane run's only in fp32 rounding (the thread
count changes reduction order), never in what they mean.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from astra_repro import threads  # first, before torch loads: the thread policy (astra_repro/threads.py)
from hydra import compose, initialize_config_dir

from astra_repro import runs
from astra_repro.paths import CONFIG_DIR, results_dir
from astra_repro.report import significance
from astra_repro.spec import plan_run
from astra_repro.tables import write_tables

EVALUATOR, METRIC = "gsm8k", "accuracy"
RELEASED, THEOREM_SAME_RATE, THEOREM_OWN_RATE = (
    "Astra released (largest), 2e-4", "Astra theorem (smallest), 2e-4", "Astra theorem (smallest), 1e-3")
DEMO_ROWS = {  # row name -> overrides (the learning rates are documented in the module docstring)
    "base": ["method=base"],
    "LoRA": ["method=lora"],
    RELEASED: ["method=astra", "method.subspace=largest", "lr=2e-4"],
    THEOREM_SAME_RATE: ["method=astra", "method.subspace=smallest", "lr=2e-4"],
    THEOREM_OWN_RATE: ["method=astra", "method.subspace=smallest", "lr=1e-3"],
}
SAME_RATE_PAIR = (THEOREM_SAME_RATE, RELEASED)  # differ in the subspace alone
# Two lanes of about equal work (idle, 2 threads: base + LoRA + released ~130 s, the theorem rows ~120 s); the
# theorem rows share a lane because the second reuses the first's saved init.
LANES = [["base", "LoRA", RELEASED], [THEOREM_SAME_RATE, THEOREM_OWN_RATE]]
PAPER_SCALE = "python -m astra_repro.train model=llama2_7b task=math method=astra method.subspace=smallest"


def row_overrides(name: str, extra_overrides: list[str]) -> list[str]:
    # GSM8K only: the synthetic MATH stand-in would add ~1 min per row and measure nothing new here.
    return [*DEMO_ROWS[name], f"evaluators=[{EVALUATOR}]", *extra_overrides]


def run_rows(extra_overrides: list[str], jobs: int) -> dict[str, dict]:
    """Every row's record: in this process one after another (jobs=1), or in `jobs` lanes of subprocesses."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        configs = {name: compose("config", overrides=row_overrides(name, extra_overrides)) for name in DEMO_ROWS}
    if jobs <= 1:
        from astra_repro.train import run

        for name, cfg in configs.items():
            print(f"\n===== {name} =====", flush=True)
            run(cfg)
    else:
        run_in_lanes(extra_overrides, jobs)
    records = {}
    for name, cfg in configs.items():
        run_dir = runs.run_dir(plan_run(cfg), cfg.get("output_root"))
        records[name] = {**json.loads((run_dir / runs.METRICS_FILE).read_text()), "run_dir": str(run_dir)}
    return records


def run_in_lanes(extra_overrides: list[str], jobs: int) -> None:
    """LANES (folded into `jobs` lanes) in parallel, each row a `python -m astra_repro.train` process with
    cpus // jobs threads; a failed row stops its lane and is reported with its log."""
    # (the embedded model is converted once: the lane that comes second waits on the conversion's lock)
    lanes = [[] for _ in range(min(jobs, len(LANES)))]
    for i, lane in enumerate(LANES):
        lanes[i % len(lanes)].extend(lane)
    logs = results_dir() / "demo_logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, threads.affinity_cpus() // len(lanes))))
    print(f"{len(DEMO_ROWS)} rows in {len(lanes)} lanes of {env['OMP_NUM_THREADS']} thread(s); logs in {logs}", flush=True)
    started = time.time()

    def run_lane(names: list[str]) -> None:
        for name in names:
            log_path = logs / f"{re.sub(r'[^A-Za-z0-9]+', '_', name).strip('_')}.log"
            print(f"  [{time.time() - started:5.0f} s] {name}: started", flush=True)
            with open(log_path, "w") as log_file:
                done = subprocess.run([sys.executable, "-m", "astra_repro.train", *row_overrides(name, extra_overrides)],
                                      stdout=log_file, stderr=subprocess.STDOUT, env=env)
            if done.returncode != 0:
                raise RuntimeError(f"demo row '{name}' failed (exit {done.returncode}); its log: {log_path}")
            print(f"  [{time.time() - started:5.0f} s] {name}: done", flush=True)

    with ThreadPoolExecutor(len(lanes)) as pool:
        for future in [pool.submit(run_lane, lane) for lane in lanes]:
            future.result()


def compare(record: dict, other: dict) -> str:
    """`difference [95% interval]   p=...  (only this / only other)  verdict` on the per-problem outcomes."""
    ours = significance.item_outcomes(record["run_dir"], EVALUATOR, METRIC)
    theirs = significance.item_outcomes(other["run_dir"], EVALUATOR, METRIC)
    if not (ours and theirs):
        return ""
    comparison = significance.paired_bootstrap(ours, theirs)
    only_ours, only_other, p = significance.mcnemar_exact(ours, theirs)
    verdict = "a real gap" if comparison.significant else "within noise"
    return (f"{comparison.difference:+6.1f} pts [{comparison.low:+6.1f}, {comparison.high:+6.1f}]"
            f"   p={p:.3f}  ({only_ours} / {only_other})  {verdict}")


def directions(record: dict) -> str:
    """How many adapted directions the data determine vs a convention, the latter per layer type (Astra rows; from
    the run record)."""
    init = record.get("init") or {}
    shares, by_type = init.get("astra_directions"), init.get("astra_selected_percentiles") or {}
    if not shares:
        return ""

    def per_type(key: str) -> str:
        return ", ".join(f"{t.removesuffix('_proj')} {row[key]}" for t, row in by_type.items() if row.get(key))

    text = f"{shares['data']}/{shares['columns']} from data"
    if shares["structural_null"]:
        text += f"; {shares['structural_null']} structural null, fixed basis ({per_type('null_columns')})"
    if shares["rounding_level"]:
        text += f"; {shares['rounding_level']} at rounding level ({per_type('rounding_columns')})"
    return text


def print_comparison(records: dict[str, dict]) -> None:
    lora = records["LoRA"]
    first = next(iter(records.values()))
    info = first["eval_data"][EVALUATOR]
    print(f"\n===== {info['n_eval']} held-out problems ({info['data_source']} data), the same for every row =====")
    print(f"  {'row':<34} {'accuracy':>8}   vs LoRA: difference [95% interval]   McNemar  (only this / only LoRA)")
    for name, record in records.items():
        accuracy = record["metrics"][EVALUATOR][METRIC]
        line = f"  {name:<34} {accuracy:7.1f}%"
        if name != "LoRA":
            line += "   " + compare(record, lora)
        print(line)
    theorem, released = SAME_RATE_PAIR
    if theorem in records and released in records:
        print(f"\n  Same rate, subspace alone: theorem - released   {compare(records[theorem], records[released])}")
    print("\n  Adapted directions (q/k/v/o/gate/up/down, every layer):")
    for name, record in records.items():
        if directions(record):
            print(f"  {name:<34} {directions(record)}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1,
                        help="rows run at once as processes, each on an equal share of the CPUs (1: in this process)")
    args, extra_overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s %(name)s] %(message)s")
    logging.getLogger("transformers").setLevel(logging.WARNING)
    start = time.time()
    records = run_rows(extra_overrides, args.jobs)
    print_comparison(records)
    write_tables()
    model, task = next(iter(records.values()))["model"], next(iter(records.values()))["task"]
    tables, figures = results_dir() / "tables", results_dir() / "figures"
    print("\nWhere things are:")
    print(f"  table    {tables / f'{task}_{model}.md'}  (paper layout: {tables / f'table2_{model}_synthetic.md'})")
    print(f"  figure   {figures / f'fig1_{task}_{model}.png'}  (loss and gradient norm per step)")
    print(f"  records  {results_dir() / 'runs' / task}/<run>/metrics.json, one folder per row")
    print(f"  any row at paper scale (LLaMA-2-7B, MetaMathQA, GPUs):  {PAPER_SCALE}")
    print(f"\ndemo wall time: {time.time() - start:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
