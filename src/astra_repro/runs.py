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


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def config_hash(plan: dict, length: int = 8) -> str:
    return hashlib.sha256(canonical_json(plan).encode()).hexdigest()[:length]


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


def is_complete(folder: Path) -> bool:
    return (folder / METRICS_FILE).exists()


def load_records(root: Path | None = None) -> list[dict]:
    """Every finished run under `root` (default results/runs), as its metrics.json content plus its folder."""
    root = root or results_dir() / "runs"
    records = []
    for metrics_path in sorted(root.glob(f"**/{METRICS_FILE}")):
        record = json.loads(metrics_path.read_text())
        record["run_dir"] = str(metrics_path.parent)
        records.append(record)
    return records
