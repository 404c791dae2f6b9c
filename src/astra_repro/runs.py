"""Run records: one folder per run, named by readable axes plus a short hash of everything that changes
the result; `metrics.json` written atomically as the very last step, so its presence means "done"."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from astra_repro.paths import results_dir

METRICS_FILE = "metrics.json"
FAILED_FILE = "FAILED"  # written when a run stops on an error: its message; removed when the run is started again


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


# How one launch lays the run out over its processes (the global batch's micro-batch, accumulation and process
# count): recorded, but not what the run is, so a finished run is found at any process count.
LAUNCH_KEYS = ("batch",)


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


def check_disk(folder: Path, need_bytes: int, what: str) -> None:
    """A clear error before hours of work when `folder` cannot be written or has less free space than needed."""
    import shutil

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
