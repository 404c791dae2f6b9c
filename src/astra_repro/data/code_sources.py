"""Resolve the code task's training data (protocol §2.1 "Code"): a local file, then the hub, then (only if neither
is there) the project's synthetic function problems. Mirrors `sources.load_math_training`; where the data came
from is returned and ends up in the run record.

Accepted record formats (all become {"instruction": str, "output": str}):
  pissa-dataset python          instruction/output, optional `type` (only "python" is kept)
  CodeFeedback-Filtered-Instr.  query/answer, optional `lang` (only python is kept)
  synthetic_code                instruction/output (plus HumanEval-style fields, ignored here)
"""

from __future__ import annotations

import logging

from omegaconf import DictConfig

from astra_repro.data import synthetic_code
from astra_repro.data.sources import hub_reachable, normalize_records, read_json_records, require_text, warn_synthetic
from astra_repro.errors import ConfigError

log = logging.getLogger(__name__)

PYTHON = "python"


def is_python_record(record: dict) -> bool:
    """False only for records that say they are something else: pissa-dataset mixes math (`type` = GSM_*/MATH_*)
    and code, and CodeFeedback holds many languages (`lang`). Records without either field are kept."""
    if "type" in record and record["type"] != PYTHON:
        return False
    if "lang" in record and str(record["lang"]).lower() != PYTHON:
        return False
    return True


def normalize_code_training_record(record: dict) -> dict:
    if "query" in record and "answer" in record:  # CodeFeedback-Filtered-Instruction
        require_text(record, ("query", "answer"))
        return {"instruction": record["query"], "output": record["answer"]}
    if "instruction" in record and "output" in record:  # pissa-dataset python / synthetic_code
        require_text(record, ("instruction", "output"))
        return {"instruction": record["instruction"], "output": record["output"]}
    raise ConfigError(
        f"unrecognised code training record with keys {sorted(record)}; expected instruction/output[/type] "
        "(pissa-dataset python) or query/answer[/lang] (CodeFeedback-Filtered-Instruction)"
    )


def load_code_training(data_cfg: DictConfig) -> tuple[list[dict], dict]:
    """All python training records in file order (the runner trains on the first n_train; calibration samples
    from the whole set) and {data_source, data_path, n_filtered_out}."""
    if data_cfg.get("path"):
        raw = read_json_records(data_cfg.path)
        where = f"data file '{data_cfg.path}'"
        info = {"data_source": "local", "data_path": str(data_cfg.path)}
        # Every record is checked, so the record number in a message is its place in the file.
        normalized = normalize_records(raw, normalize_code_training_record, where)
        records = [record for record, raw_record in zip(normalized, raw) if is_python_record(raw_record)]
    elif data_cfg.get("hub") and hub_reachable():
        from datasets import load_dataset

        hub = data_cfg.hub
        ds = load_dataset(hub.id, split=hub.split)
        # Filter the FULL split. The reference README applies `type == "python"` to the object it already
        # filtered to the 8 MetaMath types, which leaves nothing (protocol §2.1); we do not repeat that bug.
        raw = kept = ds
        if "type" in ds.column_names:
            kept = kept.filter(lambda t: t == PYTHON, input_columns="type")
        if "lang" in ds.column_names:
            kept = kept.filter(lambda lang: str(lang).lower() == PYTHON, input_columns="lang")
        where = f"hub dataset '{hub.id}' split '{hub.split}'"
        info = {"data_source": "hub", "data_path": hub.id}
        records = normalize_records(kept, normalize_code_training_record, where)
    else:
        warn_synthetic("code training", kind="Python problems with tests")
        seed = data_cfg.synthetic.seed
        raw = synthetic_code.generate("train", data_cfg.synthetic.n_train, seed=seed)
        where = "synthetic_code"
        info = {"data_source": "synthetic", "data_path": f"synthetic_code(seed={seed})"}
        records = normalize_records(raw, normalize_code_training_record, where)
    if not records:
        raise ConfigError(
            f"{where} has no python training records after filtering (type/lang must be 'python' where present); "
            "point task.data.path at pissa-dataset python or CodeFeedback data"
        )
    info["n_filtered_out"] = len(raw) - len(records)
    log.info("code training data: %d records from %s (%d non-python filtered out)", len(records), where, info["n_filtered_out"])
    return records, info
