"""The calibration cache: `cache_dir()/calibration/<key>.pt`, keyed by everything that changes the result.

The reference scripts keyed their cache by method, model and rank only, so a second task silently reused the
first task's calibration (D9). Here the key is the sha256 of a canonical JSON of: the caller's identity (model,
task, data source, dtype...), every spec field (a wikitext2 file by its content hash, not its path), the sorted
target module names, the number of records sampled from, and what the data pass itself resolved (accumulation
dtype, padding side, tokenizer, a hash of the sampled texts).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from astra_repro.calibration.spec import CalibrationSpec
from astra_repro.calibration.statistics import LayerStatistics
from astra_repro.paths import cache_dir, file_digest
from astra_repro.runs import canonical_json

log = logging.getLogger(__name__)

CACHE_FORMAT = 3  # 3: directly-kept layers summed per sample in the released order (D13); float64 kept. Bump when the statistics code changes what it computes


def calibration_key_payload(
    spec: CalibrationSpec,
    target_modules: Iterable[str],
    cache_identity: Mapping | DictConfig | None,
    n_records: int,
    extra: Mapping | None = None,
) -> dict[str, Any]:
    spec_fields = spec.as_dict()
    if spec.path:
        spec_fields["path"] = _file_fingerprint(spec.path)
    return {
        "format": CACHE_FORMAT,
        "identity": _plain(cache_identity or {}),
        "spec": spec_fields,
        "targets": sorted(target_modules),
        "n_records": int(n_records),
        "extra": _plain(extra or {}),
    }


def calibration_cache_key(
    spec: CalibrationSpec,
    target_modules: Iterable[str],
    cache_identity: Mapping | DictConfig | None,
    n_records: int,
    extra: Mapping | None = None,
) -> str:
    """sha256 hex of the canonical JSON of everything that changes a calibration's result."""
    payload = calibration_key_payload(spec, target_modules, cache_identity, n_records, extra)
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


def cache_path(key: str) -> Path:
    return cache_dir() / "calibration" / f"{key}.pt"


def load_cached(key: str) -> dict[str, LayerStatistics] | None:
    """The cached statistics, or None when absent, unreadable or of another format (then recomputed and replaced)."""
    path = cache_path(key)
    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if blob.get("format") != CACHE_FORMAT:
            raise ValueError(f"format {blob.get('format')} (this code writes {CACHE_FORMAT})")
        statistics = {name: LayerStatistics.from_blob(layer) for name, layer in blob["statistics"].items()}
    except Exception as err:  # a truncated or foreign file must not stop a run: it is rebuilt
        log.warning("calibration: ignoring unreadable cache %s (%s); recomputing", path, err)
        return None
    log.info("calibration: loaded cached statistics %s (%d layers)", path, len(statistics))
    return statistics


def save_cached(key: str, statistics: dict[str, LayerStatistics], payload: dict) -> Path:
    """Write atomically (tmp file + rename) so an interrupted run never leaves a half-written cache. Call it holding
    the entry's lock (collect_statistics does)."""
    path = cache_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f"{path.name}.*.tmp"):  # cut short by a killed run; the caller holds the lock
        stale.unlink(missing_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    blobs = {name: stats.to_blob() for name, stats in statistics.items()}
    torch.save({"format": CACHE_FORMAT, "key_payload": canonical_json(payload), "statistics": blobs}, tmp)
    os.replace(tmp, path)
    log.info("calibration: saved statistics to %s", path)
    return path


def _file_fingerprint(path: str) -> str:
    file = Path(path).expanduser()
    if not file.is_file():
        return f"missing:{path}"
    return f"sha256:{file_digest(file)}"


def _plain(value: Any) -> Any:
    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
