"""Resolve the commonsense task's training data (protocol §2.1 "Commonsense"): a local file, then the hub, then (only
if neither is there) the project's synthetic questions. Mirrors `code_sources.load_code_training`; where the data
came from is returned and ends up in the run record.

Accepted record format: LLM-Adapters commonsense_170k.json (zwhe99/commonsense_170k on the hub), i.e.
instruction/input/output/answer. Records become {"instruction": str, "output": str}: the reference trains with
dataset_field="instruction output", so `input` (always "" in these files) and `answer` are dropped.
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from astra_repro.data.sources import hub_reachable, normalize_records, read_json_records, require_text, warn_synthetic
from astra_repro.data.synthetic_commonsense import synthetic_commonsense_training
from astra_repro.errors import ConfigError

log = logging.getLogger(__name__)

EXPECTED_FIELDS = "instruction/output (LLM-Adapters commonsense_170k.json: instruction, input, output, answer)"


def normalize_commonsense_training_record(record) -> dict:
    if isinstance(record, dict) and "instruction" in record and "output" in record:
        require_text(record, ("instruction", "output"))
        return {"instruction": record["instruction"], "output": record["output"]}
    got = f"keys {sorted(record)}" if isinstance(record, dict) else f"a {type(record).__name__}"
    raise ConfigError(f"unrecognised commonsense training record with {got}; expected fields {EXPECTED_FIELDS}")


def _from_hub(hub: DictConfig) -> list[dict]:
    from datasets import load_dataset

    ds = load_dataset(hub.id, split=hub.split)
    missing = [c for c in ("instruction", "output") if c not in ds.column_names]
    if missing:
        raise ConfigError(f"hub dataset '{hub.id}' has columns {sorted(ds.column_names)}, not the expected fields "
                          f"{EXPECTED_FIELDS}")
    # Column access is much faster than iterating 170k rows as dicts.
    return [{"instruction": i, "output": o} for i, o in zip(ds["instruction"], ds["output"])]


def load_commonsense_training(data_cfg: DictConfig) -> tuple[list[dict], dict]:
    """All training records in file order (the runner trains on the first n_train; calibration samples from the
    whole set) and {data_source, data_path, n_records}."""
    if data_cfg.get("path"):
        raw = read_json_records(data_cfg.path)
        records = normalize_records(raw, normalize_commonsense_training_record, str(data_cfg.path))
        non_empty_inputs = sum(1 for r in raw if isinstance(r, dict) and r.get("input"))
        if non_empty_inputs:  # the reference ignores `input` too; say so rather than drop text silently
            log.info("commonsense training: ignoring a non-empty `input` in %d records (reference behaviour)",
                     non_empty_inputs)
        where, info = f"data file '{data_cfg.path}'", {"data_source": "local", "data_path": str(data_cfg.path)}
    elif data_cfg.get("hub") and hub_reachable():
        records = _from_hub(data_cfg.hub)
        where, info = f"hub dataset '{data_cfg.hub.id}'", {"data_source": "hub", "data_path": data_cfg.hub.id}
    else:
        warn_synthetic("commonsense training", kind="multiple-choice questions in the eight LLM-Adapters answer formats")
        seed = data_cfg.synthetic.seed
        raw = synthetic_commonsense_training(data_cfg.synthetic.n_train, seed=seed)
        records = [normalize_commonsense_training_record(r) for r in raw]
        where = "synthetic_commonsense"
        info = {"data_source": "synthetic", "data_path": f"synthetic_commonsense(seed={seed})"}
    if not records:
        raise ConfigError(f"{where} holds no commonsense training records; point task.data.path at "
                          "commonsense_170k.json (LLM-Adapters format)")
    info["n_records"] = len(records)
    log.info("commonsense training data: %d records from %s", len(records), where)
    return records, info
