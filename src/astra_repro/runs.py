"""Run records: one folder per run, named by readable axes plus a short hash of everything that changes
the result; `metrics.json` written atomically as the very last step, so its presence means "done"."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from astra_repro.paths import results_dir

METRICS_FILE = "metrics.json"
FAILED_FILE = "FAILED"  # written when a run stops on an error: its message; removed when the run is started again
# The stage folders of a run, each finished when it holds COMPLETE (see stage_folder)
INIT_DIR, TRAINED_DIR, EXPORT_DIR = "init", "trained", "export"
COMPLETE_FILE = "COMPLETE"
PREDICTIONS_FILE = "predictions.jsonl"
EVAL_PARTS_DIR = "eval_parts"  # one finished evaluator's result each, so an interrupted evaluation resumes
CHECKPOINTS_DIR = "checkpoints"  # HF Trainer's checkpoints while a run trains (training/trainer.py)
WEIGHT_FOLDERS = (INIT_DIR, TRAINED_DIR, EXPORT_DIR, CHECKPOINTS_DIR, EVAL_PARTS_DIR)  # what keep_weights=false drops
SWEEP_ENV = "ASTRA_SWEEP"  # the sweep a run belongs to, for the cost table per sweep (not part of the run's hash)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


# How one launch lays the run out over its processes (the global batch's micro-batch, accumulation and process
# count): recorded, but not what the run is, so a finished run is found at any process count.
LAUNCH_KEYS = ("batch",)


# Records and plans written before the flat configs (issue 21) call T5-base's GLUE setting recipe `glue`: it is the
# scale `paper` now.
OLD_SCALE_NAMES = {"glue": "paper"}


def scale_of(recipe: str | None) -> str | None:
    """The scale a record's or plan's `recipe` names, for records of any age."""
    return OLD_SCALE_NAMES.get(recipe, recipe)


def config_hash(plan: dict, length: int = 8) -> str:
    identity = {k: v for k, v in plan.items() if k not in LAUNCH_KEYS}
    return hashlib.sha256(canonical_json(identity).encode()).hexdigest()[:length]


def run_name(plan: dict) -> str:
    hp = plan["hp"]
    rank = f"r{hp['rank']}" if hp["rank"] else "full"
    return f"{plan['method']['name']}_{plan['model']['name']}_{rank}_s{plan['seed']}_{config_hash(plan)}"


def run_dir(plan: dict, output_root: str | None = None) -> Path:
    root = Path(output_root) if output_root else results_dir() / "runs"
    return root / plan["task"]["name"] / run_name(plan)


def world_rank() -> int:
    """This process's rank in its launch (RANK; 0 when unset): rank 0 alone writes a run folder's files, the other
    ranks of a multi-process run read them."""
    return int(os.environ.get("RANK", "0"))


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temp file in the same folder, fsync, then rename: a crash leaves the old file or none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_jsonl(path: Path, rows: list[dict]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------------------------------------- stage folders
def stage_done(folder: Path) -> bool:
    """Whether a stage finished writing `folder` (init/, trained/, export/): its COMPLETE marker exists."""
    return (Path(folder) / COMPLETE_FILE).exists()


def stage_record(folder: Path) -> dict:
    """What a finished stage kept in its COMPLETE marker (the init's report, training's statistics)."""
    return read_json(Path(folder) / COMPLETE_FILE)


@contextmanager
def stage_folder(folder: Path, clear: bool = True, mark: bool = True) -> Iterator[dict]:
    """Write one stage's folder: a kill -9 can stop the body anywhere, so COMPLETE is written last and only when
    the body returns; its presence means every file in the folder is whole. `clear`: what an earlier, killed
    attempt left in the folder is removed first (training keeps its folder: it resumes from its checkpoints).
    `mark=False` neither removes nor writes the marker (a rank other than 0: rank 0 owns it). Yields a dict: what
    the body puts in it becomes the marker's JSON record; left empty, the marker is an empty file (export)."""
    folder = Path(folder)
    if clear:
        if folder.exists():
            shutil.rmtree(folder)
    elif mark:  # a kept folder is rewritten: it is no longer whole until the body returns
        (folder / COMPLETE_FILE).unlink(missing_ok=True)
    record: dict = {}
    yield record
    if mark:
        if record:
            atomic_write_json(folder / COMPLETE_FILE, record)
        else:
            atomic_write_text(folder / COMPLETE_FILE, "")


def mark_failed(folder: Path, err: BaseException) -> None:
    """Leave the reason a run or scoring stopped in `folder/FAILED`, so the folder never looks finished or running."""
    atomic_write_text(Path(folder) / FAILED_FILE, f"{type(err).__name__}: {err}\n")


def is_synthetic(record: dict) -> bool:
    """Whether a run record was trained or scored on built-in synthetic data (a pipeline check, never a paper number)."""
    sources = {(record.get("data") or {}).get("data_source")}
    sources |= {(info or {}).get("data_source") for info in (record.get("eval_data") or {}).values()}
    return "synthetic" in sources


def is_complete(folder: Path) -> bool:
    return (folder / METRICS_FILE).exists()


def safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file cannot be trusted (missing, truncated, garbled header), or None when its size matches
    what its header promises. Reads the header only, so checking a 14 GB shard costs microseconds; a file cut by a
    kill or a full disk is caught, flipped bits inside the data are not (that would need a checksum pass)."""
    import struct

    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            (header_len,) = struct.unpack("<Q", handle.read(8))
            if header_len > size - 8:
                return f"{path.name}: truncated header"
            header = json.loads(handle.read(header_len))
    except FileNotFoundError:
        return f"{path.name}: missing"
    except (OSError, struct.error, ValueError) as err:
        return f"{path.name}: unreadable ({err})"
    ends = [entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"]
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        return f"{path.name}: {size} bytes, its header promises {expected} (truncated or overwritten)"
    return None


def weights_problem(folder: Path) -> str | None:
    """Why a saved model or adapter folder cannot be trusted, or None: every .safetensors file (and every shard an
    index names) must be whole."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    for index in folder.glob("*.safetensors.index.json"):
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (OSError, ValueError, KeyError) as err:
            return f"{index.name}: unreadable ({err})"
        files += [folder / s for s in sorted(shards) if folder / s not in files]
    if not files:
        return f"{folder} holds no .safetensors weights"
    for file in files:
        problem = safetensors_problem(file)
        if problem:
            return problem
    return None


def load_records(root: Path | None = None) -> list[dict]:
    """Every finished run under `root` (default results/runs), as its metrics.json content plus its folder."""
    root = root or results_dir() / "runs"
    records = []
    for metrics_path in sorted(root.glob(f"**/{METRICS_FILE}")):
        record = json.loads(metrics_path.read_text())
        record["run_dir"] = str(metrics_path.parent)
        records.append(record)
    return records


# ------------------------------------------------------------------------------------------------- exclusive use
LOCK_FILE = ".lock"


class FolderLock:
    """An exclusive advisory lock (fcntl.flock) on `folder/.lock`, released when the process ends however it ends
    (the kernel drops it on exit, kill -9 included). `wait=False`: a second holder gets a ConfigError at once
    (a run folder: a SLURM requeue racing the old task, a duplicated array index); `wait=True`: it blocks until
    the first is done (a calibration cache entry: computed once, then loaded)."""

    def __init__(self, folder: Path, what: str, wait: bool = False, name: str = LOCK_FILE):
        self.path = Path(folder) / name
        self.what = what
        self.wait = wait
        self.handle = None

    def __enter__(self) -> "FolderLock":
        import fcntl

        from astra_repro.errors import FolderInUse

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            self.handle.seek(0)
            holder = self.handle.read().strip() or "another process"
            self.handle.close()
            raise FolderInUse(
                f"{self.what} {self.path.parent} is in use by {holder}; wait for it to finish (or stop it) and run again"
            ) from None
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        self.handle.flush()
        return self

    def __exit__(self, *exc) -> bool:
        import fcntl

        if self.handle is not None:
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            self.handle.close()
        return False


# ------------------------------------------------------------------------------------------------- the record
def software_versions() -> dict:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "python": sys.version.split()[0], "astra_repro_commit": code_commit()}


def code_commit() -> str | None:
    """The checkout's git commit (+"-dirty" with uncommitted changes to tracked files), so a committed record names
    the code that produced it; None outside a git checkout."""
    import subprocess

    from astra_repro.paths import PROJECT_ROOT

    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def drop_weights(run_dir: Path) -> list[str]:
    """A finished run without its model-sized folders (keep_weights=false: studies of dozens of runs keep only the
    record: config.yaml, metrics.json, predictions.jsonl, train_log.jsonl). Called after the record is written, so a
    crash here loses nothing; the run stays finished (its record decides) and is not redone."""
    dropped = []
    for name in WEIGHT_FOLDERS:
        folder = Path(run_dir) / name
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
            dropped.append(name)
    return dropped


def method_label(method, options) -> str:
    """The row name in tables: the method YAML's `label` if set (presets like astra_paper_math), plus the eigenvector
    selection's name for methods that have one (Astra's Table 4 labels). `options`: the method's options."""
    base = options.get("label") or method.name
    label_fn = getattr(type(method), "selection_label", None)
    return f"{base} ({label_fn(options)})" if callable(label_fn) else base


def build_record(run_dir: Path, plan: dict, *, task_variant, method_name: str, label: str, params: tuple[int, int],
                 data_info: dict, evaluation: tuple[dict, dict, dict], train_stats: dict, init_report: dict,
                 timings: dict) -> dict:
    """A trained run's metrics.json: what ran (from the plan), what each stage reported, and where it ran."""
    from astra_repro import threads
    from astra_repro.profiling import run_cost

    metrics, eval_info, versions = evaluation
    batch = train_stats.get("batch") or plan["batch"]  # the layout training ran under (a later launch may only score)
    return {
        "run_name": run_dir.name,
        "config_hash": config_hash(plan),
        "task": plan["task"]["name"],
        "task_variant": task_variant,
        "model": plan["model"]["name"],
        "method": method_name,
        "method_label": label,
        "recipe": plan["recipe"],
        "rank": plan["hp"]["rank"],
        "alpha": plan["hp"]["alpha"],
        "learning_rate": plan["hp"]["learning_rate"],
        "seed": plan["seed"],
        # per device x accumulation x processes, as trained (the Trainer's own product is checked against the plan
        # before training starts): Tables 1 and 9 differ only in this (128 vs 32)
        "global_batch_size": batch["global"],
        "batch": batch,  # {global, per_device, grad_accum, world_size}
        "n_trainable_params": params[0],
        "n_total_params": params[1],
        "data": data_info,
        "eval_data": eval_info,
        "evaluator_versions": versions,
        "metrics": metrics,
        "train": train_stats,
        "init": init_report,
        "timings": timings,
        "cost": run_cost(timings, init_report, train_stats),
        "runtime": threads.runtime_record(),  # threads, affinity CPUs, OMP wait policy and where each came from
        "sweep": os.environ.get(SWEEP_ENV),  # set by `astra_repro.sweep --local` and slurm/array.sbatch
        "software": software_versions(),
    }


def check_disk(folder: Path, need_bytes: int, what: str) -> None:
    """A clear error before hours of work when `folder` cannot be written or has less free space than needed."""
    from astra_repro.errors import ConfigError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test.", delete=True)
        probe.write(b"x")
        probe.flush()
        probe.close()
    except OSError as err:
        raise ConfigError(f"cannot write to {folder} ({err.strerror or err}); set output_root=<a writable folder>") from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise ConfigError(
            f"only {free / 2**30:.1f} GB free under {folder}, {what} needs about {need_bytes / 2**30:.1f} GB; "
            "free space or set output_root=<a folder on a larger disk>"
        )
