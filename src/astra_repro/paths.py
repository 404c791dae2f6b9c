"""Where things live. Every location can be moved with an environment variable."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = PROJECT_ROOT / "configs"


def cache_dir() -> Path:
    """Converted models, calibration statistics, prepared data. `ASTRA_CACHE` moves it."""
    return Path(os.environ.get("ASTRA_CACHE", PROJECT_ROOT / "cache"))


def model_cache_dir() -> Path:
    """The converted embedded models, one folder each: `cache_dir()/models`, or `ASTRA_MODEL_CACHE` where set, so
    that caches kept apart (one per test, say) can share one conversion of a model (~20 s each otherwise)."""
    return Path(os.environ.get("ASTRA_MODEL_CACHE") or cache_dir() / "models")


def results_dir() -> Path:
    """Run records, tables and figures. `ASTRA_RESULTS` moves it (tests point it at a tmp dir)."""
    return Path(os.environ.get("ASTRA_RESULTS", PROJECT_ROOT / "results"))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes, read in 1 MiB blocks (what caches and records key a data file by).
    evaluators/evalplus_runner.py keeps its own copy: it runs as a standard-library-only subprocess."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
