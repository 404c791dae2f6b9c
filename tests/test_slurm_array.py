"""slurm/array.sbatch without SLURM: the script runs under plain bash with the SLURM_* variables an array task has,
and a stand-in `scontrol` first on PATH that only records its arguments. Covered: array index -> manifest line
(shell quoting included), a clear error for an index past the end or a missing manifest, the time-limit signal
(USR1) -> `scontrol requeue <job>_<task>` + training stopped, the requeued task resuming from the last checkpoint,
and a finished run submitted again being skipped. Each run is tiny_llama for a few steps (~20 s on 2 CPU cores)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import TINY_OVERRIDES
from omegaconf import OmegaConf

from astra_repro import runs

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "slurm" / "array.sbatch"
JOB_ID = "4242"
TIMEOUT_S = 240  # one tiny run takes ~20 s here; generous for a loaded machine


def tiny_line(output_root: Path, seed: int, *extra: str) -> str:
    overrides = [o for o in TINY_OVERRIDES if "max_steps" not in o]
    overrides += ["task.train.max_steps=4", "skip_eval=true", f"seed={seed}", f"output_root={output_root}", *extra]
    return " ".join(shlex.quote(o) for o in overrides)  # quoted as sweep.write_manifest quotes them


def array_env(tmp: Path, task: int) -> dict:
    """The variables an array task sees, a recording `scontrol` first on PATH, caches under `tmp`."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$*" >> {shlex.quote(str(tmp / "scontrol.log"))}\n')
    scontrol.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID=JOB_ID, SLURM_JOB_ID=str(int(JOB_ID) + 1 + task),
        SLURM_SUBMIT_DIR=str(ROOT), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false", ASTRA_RESULTS=str(tmp / "results"), ASTRA_CACHE=str(tmp / "cache"),
    )
    if not (ROOT / ".venv" / "bin" / "python").exists():  # the script's default; else this interpreter
        env["ASTRA_PYTHON"] = sys.executable
    return env


def start(manifest: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(["bash", str(SCRIPT), str(manifest)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def processes_of(proc: subprocess.Popen, marker: str) -> set[int]:
    """The script's process tree, plus any process whose command line names this test's tmp folder (torchrun
    starts its workers in their own session, and a worker outlives a killed torchrun)."""
    parent, found = {}, set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        pid = int(entry.name)
        parent[pid] = int(stat.rsplit(")", 1)[1].split()[1])
        if marker in cmdline and pid != os.getpid():
            found.add(pid)
    tree, grew = {proc.pid}, True
    while grew:
        children = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        tree |= children
        grew = bool(children)
    return (found | tree) & set(parent)


def kill_all(proc: subprocess.Popen, marker: str) -> None:
    for pid in processes_of(proc, marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)


def run_task(manifest: Path, tmp: Path, task: int) -> tuple[int, str]:
    proc = start(manifest, array_env(tmp, task))
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
        return proc.returncode, out
    finally:
        kill_all(proc, str(tmp))


def wait_until(condition, what: str, timeout_s: float = TIMEOUT_S, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            tail = proc.stdout.read()[-3000:]
            raise AssertionError(f"the script ended (rc={proc.returncode}) before {what}:\n{tail}")
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def run_folders(output_root: Path) -> list[Path]:
    return sorted(p for p in output_root.glob("*/*") if p.is_dir())


@pytest.fixture(scope="module")
def task_1(tmp_path_factory):
    """A 3-line manifest (seeds 11, 12, 13; line 2 also needs shell quoting) and array task 1, run once."""
    tmp = tmp_path_factory.mktemp("array")
    output_root = tmp / "runs"
    manifest = tmp / "manifest.txt"
    manifest.write_text("".join(
        tiny_line(output_root, seed, *(["evaluators=[gsm8k]"] if seed == 12 else [])) + "\n" for seed in (11, 12, 13)))
    assert "'evaluators=[gsm8k]'" in manifest.read_text()
    rc, out = run_task(manifest, tmp, 1)
    return tmp, manifest, output_root, rc, out


def test_array_index_runs_its_manifest_line_and_nothing_else(task_1):
    tmp, manifest, output_root, rc, out = task_1
    assert rc == 0, out[-3000:]
    (folder,) = run_folders(output_root)  # exactly one run: line 2's
    record = json.loads((folder / runs.METRICS_FILE).read_text())
    assert record["seed"] == 12 and record["run_name"] == folder.name and "_s12_" in folder.name
    assert record["train"]["global_step"] == 4
    assert record["sweep"] == manifest.parent.name  # the manifest's folder names the sweep (cost table per sweep)
    # the quoted override reached Hydra as one override, without its quotes
    plan = OmegaConf.load(folder / "config.yaml")
    assert list(plan.task.evaluators) == ["gsm8k"]
    assert not (tmp / "scontrol.log").exists()  # no signal, no requeue


def test_a_finished_run_submitted_again_is_skipped(task_1):
    tmp, manifest, output_root, rc, _ = task_1
    assert rc == 0
    (folder,) = run_folders(output_root)
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != runs.LOCK_FILE}
    rc, out = run_task(manifest, tmp, 1)
    assert rc == 0, out[-3000:]
    assert f"already done: {folder}" in out
    assert "trainable params" not in out  # no model was built, nothing trained
    after = {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file() and p.name != runs.LOCK_FILE}
    assert after == before
    assert run_folders(output_root) == [folder]


@pytest.mark.parametrize("index", [3, 5])
def test_index_past_the_end_is_a_one_line_error(tmp_path, index):
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("".join(tiny_line(tmp_path / "runs", seed) + "\n" for seed in (1, 2, 3)))
    done = subprocess.run(["bash", str(SCRIPT), str(manifest)], cwd=ROOT, env=array_env(tmp_path, index),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"error: array index {index} has no run: {manifest} has 3 lines (valid indices: 0-2)"]
    assert not (tmp_path / "runs").exists()


def test_missing_manifest_is_a_clear_error(tmp_path):
    manifest = tmp_path / "sweeps" / "nope" / "manifest.txt"
    done = subprocess.run(["bash", str(SCRIPT), str(manifest)], cwd=ROOT, env=array_env(tmp_path, 0),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [
        f"error: manifest {manifest} not found; write it with: python -m astra_repro.sweep <name>"]


def test_time_limit_signal_requeues_and_the_requeued_task_resumes(tmp_path):
    output_root = tmp_path / "runs"
    manifest = tmp_path / "manifest.txt"
    line = tiny_line(output_root, 7).replace("max_steps=4", "max_steps=8")
    manifest.write_text(line + "\n" + tiny_line(output_root, 8) + "\n")
    env = array_env(tmp_path, 0)
    marker = str(tmp_path)

    proc = start(manifest, env)
    try:
        def saved_checkpoint():  # trainer_state.json is the last file HF Trainer writes into a checkpoint
            return sorted(output_root.glob("*/*/checkpoints/checkpoint-*/trainer_state.json"))

        wait_until(saved_checkpoint, "a complete checkpoint", proc=proc)
        os.kill(proc.pid, signal.SIGUSR1)  # what SLURM sends to the batch shell (--signal=B:USR1@300)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 138, out[-3000:]
        assert "time limit near: requeueing" in out
        # the script stopped training before it ended: no process of this run is left, none holds the run lock
        assert processes_of(proc, marker) == set()
    finally:
        kill_all(proc, marker)
    assert (tmp_path / "scontrol.log").read_text().splitlines() == [f"requeue {JOB_ID}_0"]
    (folder,) = run_folders(output_root)
    assert "_s7_" in folder.name
    assert not (folder / runs.METRICS_FILE).exists(), "training was not stopped: the run finished"
    with runs.FolderLock(folder, "run folder"):  # free: raises if a process still has the run open
        pass
    # the newest COMPLETE checkpoint (trainer_state.json is written last): the signal may land while the next one
    # is being saved, and the requeued task must then resume from the one before (and remove the cut one)
    interrupted_at = max(int(p.parent.name.split("-")[1])
                         for p in (folder / "checkpoints").glob("checkpoint-*/trainer_state.json"))
    assert 2 <= interrupted_at < 8

    rc, out = run_task(manifest, tmp_path, 0)  # the requeued task: same index, same environment
    assert rc == 0, out[-3000:]
    record = json.loads((folder / runs.METRICS_FILE).read_text())
    resumed_from = record["train"]["resumed_from"]
    assert resumed_from == str(folder / "checkpoints" / f"checkpoint-{interrupted_at}")
    assert record["train"]["global_step"] == 8 and record["seed"] == 7
    rows = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines() if line.strip()]
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))  # each step once, across both attempts
    assert (tmp_path / "scontrol.log").read_text().splitlines() == [f"requeue {JOB_ID}_0"]  # no second requeue
    assert run_folders(output_root) == [folder]


# ------------------------------------------------------------------------------------------------- global batch
# Issue 19: the script starts one process per GPU (SLURM_GPUS_ON_NODE), and every process must plan the paper's
# global batch. A stand-in Python (ASTRA_PYTHON) runs the script's own helper calls for real (`-c`: splitting the
# manifest line) and records the two launches instead of running them: the layout check
# (`-m astra_repro.training.launch`, for real when STUB_REAL_PREFLIGHT=1) and torchrun (`-m torch.distributed.run`).
PAPER_GLOBAL_BATCH = {"table1": 128, "table9": 32, "table2": 128, "table3": 128}
STUB = """#!/bin/bash
if [ "$1" = "-m" ] && { [ "$2" = "torch.distributed.run" ] || [ "$2" = "astra_repro.training.launch" ]; }; then
  {real} -c 'import json, os, sys
with open(os.environ["STUB_RECORD"], "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[1:], "WORLD_SIZE": os.environ.get("WORLD_SIZE")}) + "\\n")' "$@"
  if [ "$2" = "astra_repro.training.launch" ] && [ -n "${STUB_REAL_PREFLIGHT:-}" ]; then exec {real} "$@"; fi
  exit 0
fi
exec {real} "$@"
"""


def stub_env(tmp: Path, n_gpus: int | None, real_preflight: bool = False) -> dict:
    stub = tmp / "python_stub"
    stub.write_text(STUB.replace("{real}", shlex.quote(sys.executable)))
    stub.chmod(0o755)
    env = array_env(tmp, 0)
    env.update(ASTRA_PYTHON=str(stub), STUB_RECORD=str(tmp / "launches.jsonl"))
    env.pop("WORLD_SIZE", None)
    if n_gpus is not None:
        env["SLURM_GPUS_ON_NODE"] = str(n_gpus)
    if real_preflight:
        env["STUB_REAL_PREFLIGHT"] = "1"
    return env


def launches(tmp: Path) -> list[dict]:
    path = tmp / "launches.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def first_line_of(sweep_name: str, tmp: Path) -> Path:
    from astra_repro import sweep

    manifest = sweep.write_manifest(sweep_name, tmp / "sweeps")
    one = tmp / "manifest.txt"
    one.write_text(manifest.read_text().splitlines()[0] + "\n")
    return one


@pytest.mark.parametrize("n_gpus", [1, 2, 4, 8])
@pytest.mark.parametrize("sweep_name", ["table1", "table9", "table2", "table3"])
def test_each_gpu_count_launches_one_process_per_gpu_at_the_papers_global_batch(tmp_path, monkeypatch, sweep_name,
                                                                                  n_gpus):
    from hydra import compose, initialize_config_dir

    from astra_repro.paths import CONFIG_DIR
    from astra_repro.spec import plan_run

    manifest = first_line_of(sweep_name, tmp_path)
    done = subprocess.run(["bash", str(SCRIPT), str(manifest)], cwd=ROOT, env=stub_env(tmp_path, n_gpus),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    overrides = shlex.split(manifest.read_text())
    check, torchrun = launches(tmp_path)
    # the layout is checked first, as each of the N processes will plan it
    assert check == {"argv": ["-m", "astra_repro.training.launch", *overrides], "WORLD_SIZE": str(n_gpus)}
    assert torchrun["argv"] == ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n_gpus}",
                                "-m", "astra_repro.train", *overrides]
    # what each of those processes plans: torchrun gives every one WORLD_SIZE = nproc_per_node
    monkeypatch.setenv("WORLD_SIZE", str(n_gpus))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        batch = plan_run(compose("config", overrides=overrides))["batch"]
    assert batch["world_size"] == n_gpus
    assert batch["per_device"] * batch["grad_accum"] * n_gpus == batch["global"] == PAPER_GLOBAL_BATCH[sweep_name]


def test_no_gpu_count_means_one_process(tmp_path):
    manifest = first_line_of("table9", tmp_path)
    done = subprocess.run(["bash", str(SCRIPT), str(manifest)], cwd=ROOT, env=stub_env(tmp_path, None),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--nproc_per_node=1" in launches(tmp_path)[-1]["argv"]


def test_the_layout_is_printed_before_the_processes_start(tmp_path):
    manifest = first_line_of("table1", tmp_path)
    done = subprocess.run(["bash", str(SCRIPT), str(manifest)], cwd=ROOT, env=stub_env(tmp_path, 4, real_preflight=True),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[astra_repro] global batch 128 = 32 per device x 1 accumulation x 4 process(es) (task.train)" in done.stdout
    assert len(launches(tmp_path)) == 2  # the check, then torchrun


def test_a_gpu_count_that_does_not_divide_the_global_batch_is_a_one_line_error(tmp_path):
    manifest = first_line_of("table9", tmp_path)
    done = subprocess.run(["bash", str(SCRIPT), str(manifest)], cwd=ROOT, env=stub_env(tmp_path, 3, real_preflight=True),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.splitlines() == [
        "error: task.train.global_batch_size=32 does not split over 3 processes (WORLD_SIZE); launch a process "
        "count that divides it (torchrun --nproc_per_node=2 or 4) or set task.train.global_batch_size to a "
        "multiple of 3"]
    assert [launch["argv"][1] for launch in launches(tmp_path)] == ["astra_repro.training.launch"]  # no torchrun
