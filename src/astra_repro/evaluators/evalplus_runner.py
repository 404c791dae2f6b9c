"""HumanEval(+)/MBPP(+) scoring through EvalPlus 0.3.1, in a subprocess of its own.

`score_with_evalplus` (our process) writes the solutions to a temporary directory and starts this file as
`python -I -B evalplus_runner.py ...` there: new session, minimal environment, its own network namespace when the
machine allows it, an overall timeout after which the whole process group is killed. The runner (that process)
uses only the standard library, EvalPlus and the guard in `astra_repro/_sandbox_child.py` (loaded by path):

1. points EvalPlus at the given problems file (`HUMANEVAL_OVERRIDE_PATH` / `MBPP_OVERRIDE_PATH`, set before EvalPlus
   is imported) and its cache at `--cache-dir`; downloads are impossible (no inet sockets, `make_cache` refuses);
2. loads the problems with EvalPlus (MBPP+ inputs deserialised as EvalPlus does), keeps the tasks that have a
   sample, and computes the ground truth from the trusted canonical solutions FIRST, cached under a key naming
   the file, the EvalPlus version and (for a subset) the task ids, so a subset never reuses a full-set cache;
3. wraps `evalplus.eval.reliability_guard` (what `unsafe_execute` calls in each per-sample process) in the
   checking workers only, so EvalPlus's guard is followed by ours (no sockets, writes only in the sample's temp
   dir, no process creation); the trusted ground truth runs in this process, which never has it;
4. runs `evalplus.evaluate.check_correctness` per sample in a ProcessPoolExecutor (fast_check, base and plus,
   EvalPlus's default time limits) whose workers were forked before any problem or expected output was loaded,
   and writes per task the statuses and the first failing input.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import pickle
import reprlib
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

DATASETS = ("humaneval", "mbpp")
OVERRIDE_ENV = {"humaneval": "HUMANEVAL_OVERRIDE_PATH", "mbpp": "MBPP_OVERRIDE_PATH"}
CHILD_GUARD_FILE = Path(__file__).resolve().parents[1] / "_sandbox_child.py"
RUNNER_FILE = Path(__file__).resolve()
FAILING_INPUT_CHARS = 300
RUNNER_OUTPUT_NAME = "evalplus_results.json"


class EvalPlusScoringError(RuntimeError):
    """The scoring subprocess failed or ran out of time; the message carries its exit status and stderr tail."""


# ---------------------------------------------------------------------------------------------------------------
# Our process: launch the runner
# ---------------------------------------------------------------------------------------------------------------
def score_with_evalplus(
    dataset: str,
    problems_path: str | os.PathLike,
    samples: list[dict],
    *,
    workers: int = 2,
    cache_dir: str | os.PathLike,
    timeout_s: float = 600,
) -> dict:
    """Score `samples` ([{task_id, solution}], one per task; solution = prompt + completion) against the plain
    .jsonl EvalPlus release at `problems_path`. Returns the runner's JSON (per-task statuses, pass@1 in percent)
    plus how the runner was isolated. Raises EvalPlusScoringError if the runner fails or times out."""
    from astra_repro.sandbox import (
        file_tail, isolating_prefix, isolation_info, limit_resources, minimal_env, wait_then_kill_group,
    )

    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="astra_evalplus_"))
    try:
        (root / "tmp").mkdir()
        samples_path = root / "samples.jsonl"
        with open(samples_path, "w", encoding="utf-8") as f:
            for sample in samples:
                f.write(json.dumps({"task_id": sample["task_id"], "solution": sample["solution"]}) + "\n")
        out_path = root / RUNNER_OUTPUT_NAME
        command = [
            *isolating_prefix(), sys.executable, "-I", "-B", str(RUNNER_FILE), "--dataset", dataset,
            "--problems", str(Path(problems_path).resolve()), "--samples", str(samples_path), "--out", str(out_path),
            "--workers", str(max(1, int(workers))), "--cache-dir", str(cache_dir),
        ]
        env = minimal_env(str(root))
        env.update(TMPDIR=str(root / "tmp"), XDG_CACHE_HOME=str(cache_dir), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
        start = time.monotonic()
        with open(root / "stdout", "wb") as stdout, open(root / "stderr", "wb") as stderr:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, cwd=root, env=env,
                start_new_session=True, preexec_fn=limit_resources(None, None, None, None), close_fds=True,
            )
            timed_out = wait_then_kill_group(proc, timeout_s)
        if timed_out:
            raise EvalPlusScoringError(
                f"EvalPlus scoring of {len(samples)} {dataset} samples exceeded {timeout_s:.0f}s and was killed "
                f"(raise task.evaluators.{dataset}.timeout_s); stderr tail:\n{file_tail(root / 'stderr')}"
            )
        if proc.returncode != 0 or not out_path.exists():
            raise EvalPlusScoringError(
                f"EvalPlus scoring of {dataset} failed (exit status {proc.returncode}); stderr tail:\n"
                f"{file_tail(root / 'stderr')}"
            )
        result = json.loads(out_path.read_text(encoding="utf-8"))
        result["seconds_total"] = time.monotonic() - start
        result["isolation"] = isolation_info()
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------
# The runner process
# ---------------------------------------------------------------------------------------------------------------
def _refuse(what: str):
    def refuse(*args, **kwargs):
        raise RuntimeError(f"{what}: the EvalPlus runner never downloads; pass a local problems file")

    return refuse


def block_inet_sockets() -> None:
    """The trusted runner itself needs no network: no inet sockets, no name resolution. Unix sockets stay
    (multiprocessing may use them)."""
    import socket

    real_socket = socket.socket

    class LocalOnlySocket(real_socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
                raise RuntimeError("the EvalPlus runner has no network access")
            super().__init__(family, type, proto, fileno)

    socket.socket = LocalOnlySocket
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex"):
        setattr(socket, name, _refuse(f"socket.{name}"))


def stub_datasets_module() -> None:
    """evalplus.data imports HF `datasets` at top level for EvalPerf only. A stub keeps pyarrow & co. (native file
    and network I/O the Python guard cannot see) out of the processes that run untrusted code, and saves ~2 s."""
    stub = types.ModuleType("datasets")
    stub.load_dataset = _refuse("datasets.load_dataset")
    sys.modules["datasets"] = stub


def load_child_guard():
    spec = importlib.util.spec_from_file_location("astra_sandbox_child_guard", CHILD_GUARD_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def file_md5(path: str) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def groundtruth_key(dataset: str, problems_path: str, evalplus_version: str, task_ids: list[str], full: bool) -> str:
    """Cache key of the expected outputs: the file's md5 (what EvalPlus itself keys on), the EvalPlus version
    (its trusted_exec defines the oracle) and, for a subset, the subset."""
    key = f"{dataset}-{file_md5(problems_path)}-evalplus{evalplus_version}"
    if not full:
        subset = hashlib.md5("\n".join(sorted(task_ids)).encode()).hexdigest()[:16]
        key += f"-subset{len(task_ids)}-{subset}"
    return key


def load_or_compute_groundtruth(problems: dict, key: str, cache_dir: str, not_none_tasks: list) -> tuple[dict, dict]:
    """EvalPlus's get_groundtruth, cached at <cache_dir>/<key>.pkl. A fresh computation goes to a private folder
    first and is moved into place atomically, so concurrent runs never read a half-written pickle."""
    import evalplus.evaluate as ev

    final = Path(cache_dir) / f"{key}.pkl"
    start = time.monotonic()
    if final.exists():
        with open(final, "rb") as f:
            expected = pickle.load(f)
        return expected, {"cache_file": str(final), "cached": True, "seconds": time.monotonic() - start}
    private = Path(tempfile.mkdtemp(prefix=".groundtruth-", dir=cache_dir))
    try:
        ev.CACHE_DIR = str(private)
        expected = ev.get_groundtruth(problems, key, not_none_tasks)
        os.replace(private / f"{key}.pkl", final)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return expected, {"cache_file": str(final), "cached": False, "seconds": time.monotonic() - start}


def install_sample_guard() -> None:
    """Pool initializer: in this checking worker, every per-sample process EvalPlus starts runs EvalPlus's guard,
    then ours. `unsafe_execute` calls the module attribute `evalplus.eval.reliability_guard` right after
    entering the sample's temp dir, so the cwd at that moment is the only place the sample may write. The
    process that runs the trusted canonical solutions never has it installed."""
    import evalplus.eval as epe

    guard_module = load_child_guard()
    evalplus_guard = epe.reliability_guard

    def evalplus_guard_then_contain(maximum_memory_bytes=None):
        sample_dir = os.path.realpath(os.getcwd())  # before EvalPlus's guard disables os.getcwd
        evalplus_guard(maximum_memory_bytes=maximum_memory_bytes)
        guard_module.contain(sample_dir)

    epe.reliability_guard = evalplus_guard_then_contain


def start_checking_workers(workers: int):
    """The pool, its workers forked NOW, while this process is small: forked after the ground truth (up to ~1 GB
    of Python objects for MBPP+), every per-sample process would inherit it, which slows each fork and eats
    into EvalPlus's 4 GB address-space limit. Each task's expected outputs travel to the workers with the task,
    as in evalplus.evaluate."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("fork")  # workers inherit the imported modules; nothing is re-imported
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=install_sample_guard)
    for future in [executor.submit(os.getpid) for _ in range(workers)]:
        future.result()
    return executor


_short_repr = reprlib.Repr()
_short_repr.maxlevel, _short_repr.maxlist, _short_repr.maxtuple, _short_repr.maxdict = 4, 8, 8, 8
_short_repr.maxstring, _short_repr.maxother, _short_repr.maxlong = 120, 120, 60


def first_failing_input(status: str | None, details, inputs) -> str | None:
    """The input a failed check stopped at, as a short repr. With fast_check EvalPlus stops at the first failing
    input (its detail is False); a timeout stops inside the input after the last finished one; an empty detail
    list means the solution failed before any input ran (it did not even define the function)."""
    if status in (None, "pass") or not details:
        return None
    details = list(details)
    if False in details:
        index = details.index(False)
    elif len(details) < len(inputs):
        index = len(details)
    else:
        return None
    return _short_repr.repr(inputs[index])[:FAILING_INPUT_CHARS]


def run_checks(executor, dataset: str, problems: dict, solutions: dict, expected: dict) -> dict:
    from evalplus.evaluate import check_correctness

    results = {}
    with executor:
        futures = {
            task_id: executor.submit(
                check_correctness, dataset, 0, problems[task_id], solution, expected[task_id],
                False,  # base_only
                True,  # fast_check (evalplus.evaluate's default: not test_details)
                task_id,
            )
            for task_id, solution in solutions.items()
        }
        for task_id, future in futures.items():
            outcome = future.result()
            base_status, base_details = outcome["base"]
            plus_status, plus_details = outcome["plus"]
            problem = problems[task_id]
            if base_status != "pass":
                stage, failing = "base", first_failing_input(base_status, base_details, problem["base_input"])
            elif plus_status != "pass":
                stage, failing = "plus", first_failing_input(plus_status, plus_details, problem["plus_input"])
            else:
                stage, failing = None, None
            results[task_id] = {
                "base_status": base_status,
                "plus_status": plus_status,
                "failing_stage": stage,
                "first_failing_input": failing,
                "n_base_inputs": len(problem["base_input"]),
                "n_plus_inputs": len(problem["plus_input"]),
            }
    return results


def read_samples(path: str) -> dict:
    solutions = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                sample = json.loads(line)
                if sample["task_id"] in solutions:
                    raise ValueError(f"two samples for {sample['task_id']}: the runner scores one greedy sample per task")
                solutions[sample["task_id"]] = sample["solution"]
    return solutions


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--problems", required=True, help="plain .jsonl EvalPlus release file")
    parser.add_argument("--samples", required=True, help="jsonl of {task_id, solution}")
    parser.add_argument("--out", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--cache-dir", required=True)
    args = parser.parse_args(argv)
    if args.problems.endswith(".gz"):
        parser.error("EvalPlus opens the override path as a plain file: decompress the .jsonl.gz first")

    block_inet_sockets()
    os.environ[OVERRIDE_ENV[args.dataset]] = args.problems  # read by evalplus.data.* at import time
    os.environ["XDG_CACHE_HOME"] = args.cache_dir  # appdirs -> evalplus.data.utils.CACHE_DIR
    stub_datasets_module()
    import evalplus
    import evalplus.data.humaneval
    import evalplus.data.mbpp
    import evalplus.data.utils
    import evalplus.evaluate
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS

    for module in (evalplus.data.utils, evalplus.data.humaneval, evalplus.data.mbpp):
        module.make_cache = _refuse("evalplus make_cache")
    executor = start_checking_workers(max(1, args.workers))  # before any problem or expected output is loaded
    if args.dataset == "humaneval":
        all_problems, not_none_tasks = evalplus.data.humaneval.get_human_eval_plus(), []
    else:
        all_problems, not_none_tasks = evalplus.data.mbpp.get_mbpp_plus(), MBPP_OUTPUT_NOT_NONE_TASKS

    solutions = read_samples(args.samples)
    unknown = sorted(set(solutions) - set(all_problems))
    if unknown:
        raise SystemExit(f"samples name tasks missing from {args.problems}: {unknown[:5]}")
    problems = {task_id: p for task_id, p in all_problems.items() if task_id in solutions}
    full = len(problems) == len(all_problems)
    key = groundtruth_key(args.dataset, args.problems, evalplus.__version__, list(problems), full)

    expected, groundtruth_info = load_or_compute_groundtruth(problems, key, args.cache_dir, not_none_tasks)
    start = time.monotonic()
    results = run_checks(executor, args.dataset, problems, solutions, expected)
    n = max(len(results), 1)
    base_pass = sum(r["base_status"] == "pass" for r in results.values())
    plus_pass = sum(r["base_status"] == r["plus_status"] == "pass" for r in results.values())
    output = {
        "dataset": args.dataset,
        "evalplus_version": evalplus.__version__,
        "problems_md5": file_md5(args.problems),
        "n_tasks": len(results),
        "full_set": full,
        "pass@1": 100.0 * base_pass / n,
        "pass@1_plus": 100.0 * plus_pass / n,
        "groundtruth": groundtruth_info,
        "seconds_checking": time.monotonic() - start,
        "results": results,
    }
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(output, f)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
