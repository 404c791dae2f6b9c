"""Resolve a task's training and evaluation data: a local file, then the hub, then (only if neither is there)
the project's synthetic set. Where the data came from is returned and ends up in the run record.

Records handed to the rest of the pipeline are uniform:
  training:   {"instruction": str, "output": str}
  evaluation: {"question": str, "gold": str, "answer": str}
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import warnings
from pathlib import Path

from omegaconf import DictConfig

from astra_repro.data import synthetic_math
from astra_repro.errors import ConfigError
from astra_repro.paths import hub_offline

log = logging.getLogger(__name__)

CALC_ANNOTATION = re.compile(r"<<[^>]*>>")


class SyntheticDataWarning(UserWarning):
    """Raised (as a warning) when a run falls back to the built-in synthetic data."""


def read_text(path: str | Path, setting: str = "task.data.path") -> str:
    """The text of a local data file (a .gz is decompressed), UTF-8 with an optional BOM. A missing, unreadable,
    empty or non-UTF-8 file is a one-line ConfigError naming the file and `setting`, the key that names it."""
    path = Path(path).expanduser()
    if not path.exists():
        raise ConfigError(f"data file '{path}' does not exist; fix {setting} (or unset it)")
    try:
        raw = path.read_bytes()
        if path.name.endswith(".gz"):
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as err:  # a folder, no permission, a damaged .gz (BadGzipFile is an OSError)
        reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
        raise ConfigError(f"{path}: cannot be read ({reason}); point {setting} at a readable data file") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text (bad byte at offset {err.start}); convert it to UTF-8") from None
    if not text.strip():
        raise ConfigError(f"{path}: the file is empty; point {setting} at a file with records")
    return text


def read_json_records(path: str | Path, setting: str = "task.data.path") -> list[dict]:
    """A .jsonl file (one object a line) or a .json file holding a list of objects, either possibly gzipped.
    Anything else - a missing, empty or non-UTF-8 file, a truncated or non-JSON line, a record that is not an
    object - is a one-line ConfigError naming the file (and line) and `setting`, the key that names the file."""
    path = Path(path).expanduser()
    text = read_text(path, setting)
    if Path(path.name.removesuffix(".gz")).suffix == ".json" and text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); fix or re-download the file") from None
        where = lambda i: f"{path}: record {i + 1}"  # noqa: E731
    else:
        records, lines = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ConfigError(
                    f"{path}:{number}: not a JSON object ({err.msg}; a truncated line?); fix or remove that line"
                ) from None
            lines.append(number)
        where = lambda i: f"{path}:{lines[i]}"  # noqa: E731
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ConfigError(f"{where(i)}: a {type(record).__name__}, not a JSON object with the record's fields")
    return records


def require_text(record: dict, fields: tuple[str, ...]) -> None:
    """Every field holds text: a null or a number would be trained on, or compared, as the string 'None' or '5'."""
    for field in fields:
        if not isinstance(record[field], str):
            raise ConfigError(f"field '{field}' is {record[field]!r}, not text; fix or remove that record")


def normalize_records(records, normalize, source: str) -> list[dict]:
    """`normalize(record)` for every record; a ConfigError it raises gets the record's place in `source`."""
    normalized = []
    for index, record in enumerate(records):
        try:
            normalized.append(normalize(record))
        except ConfigError as err:
            raise ConfigError(f"{source}: record {index + 1}: {err}") from None
    return normalized


def gsm8k_answer_to_metamath(answer: str) -> str:
    """GSM8K's worked answer in MetaMathQA's response style: calculator annotations removed and the final
    '#### N' line replaced by 'The answer is: N', the form the reference answer extraction looks for."""
    body, _, final = answer.rpartition("####")
    body = CALC_ANNOTATION.sub("", body).rstrip()
    return f"{body}\nThe answer is: {final.strip().replace(',', '')}"


def normalize_math_training_record(record: dict) -> dict:
    if "query" in record and "response" in record:  # MetaMathQA
        require_text(record, ("query", "response"))
        return {"instruction": record["query"], "output": record["response"]}
    if "instruction" in record and "output" in record:  # pissa-dataset / Alpaca
        require_text(record, ("instruction", "output"))
        return {"instruction": record["instruction"], "output": record["output"]}
    if "question" in record and "answer" in record:  # GSM8K
        require_text(record, ("question", "answer"))
        return {"instruction": record["question"], "output": gsm8k_answer_to_metamath(record["answer"])}
    raise ConfigError(
        f"unrecognised math training record with keys {sorted(record)}; expected query/response (MetaMathQA), "
        "instruction/output, or question/answer (GSM8K)"
    )


def hub_reachable() -> bool:
    """False when offline mode is on; otherwise a 3-second TCP probe, so an unreachable hub costs 3 s, not 50."""
    if hub_offline():
        return False
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname
    try:
        socket.create_connection((host, 443), timeout=3).close()
        return True
    except OSError:
        return False


def load_math_training(data_cfg: DictConfig, n_train: int | None) -> tuple[list[dict], dict]:
    """MetaMathQA-style training records, first `n_train` in file order (the paper uses the first 100k)."""
    if data_cfg.get("path"):
        records = normalize_records(read_json_records(data_cfg.path), normalize_math_training_record, str(data_cfg.path))
        info = {"data_source": "local", "data_path": str(data_cfg.path)}
    elif data_cfg.get("hub") and hub_reachable():
        from datasets import load_dataset

        hub = data_cfg.hub
        ds = load_dataset(hub.id, split=hub.split)
        if hub.get("types"):
            allowed = set(hub.types)
            ds = ds.filter(lambda t: t in allowed, input_columns="type")
        records = normalize_records(ds, normalize_math_training_record, f"hub dataset '{hub.id}'")
        info = {"data_source": "hub", "data_path": hub.id}
    else:
        records = synthetic_training(data_cfg)
        info = {"data_source": "synthetic", "data_path": f"synthetic_math(seed={data_cfg.synthetic.seed})"}
    if n_train is not None:
        records = records[:n_train]
    info["n_train"] = len(records)
    return records, info


def synthetic_training(data_cfg: DictConfig) -> list[dict]:
    warn_synthetic("training")
    problems = synthetic_math.generate("train", data_cfg.synthetic.n_train, seed=data_cfg.synthetic.seed)
    return [normalize_math_training_record(p) for p in problems]


def warn_synthetic(what: str, kind: str = "arithmetic problems") -> None:
    message = (
        f"no local or hub {what} data: using the built-in SYNTHETIC {kind} "
        "(set task.data.path / the evaluator's path for real data); recorded as data_source=synthetic"
    )
    warnings.warn(message, SyntheticDataWarning, stacklevel=3)
    log.warning(message)


def normalize_gsm8k_eval_record(record: dict) -> dict:
    """{question, answer}: GSM8K's question/answer or MetaMath's query/response."""
    fields = [next((f for f in names if f in record), None) for names in (("question", "query"), ("answer", "response"))]
    if None in fields:
        raise ConfigError(f"GSM8K eval records need question/answer (or query/response) fields; got keys {sorted(record)}")
    require_text(record, tuple(fields))
    return {"question": record[fields[0]], "answer": record[fields[1]]}


def load_gsm8k_eval(eval_cfg: DictConfig, n: int | None, synthetic_seed: int,
                    setting: str = "task.evaluators.gsm8k.path") -> tuple[list[dict], dict]:
    """GSM8K test problems: local jsonl -> hub openai/gsm8k -> synthetic test split (disjoint from training)."""
    if eval_cfg.get("path"):
        raw = read_json_records(eval_cfg.path, setting)
        info = {"data_source": "local", "data_path": str(eval_cfg.path)}
    elif eval_cfg.get("hub") and hub_reachable():
        from datasets import load_dataset

        raw = list(load_dataset(eval_cfg.hub.id, eval_cfg.hub.config, split=eval_cfg.hub.split))
        info = {"data_source": "hub", "data_path": eval_cfg.hub.id}
    else:
        warn_synthetic("evaluation")
        raw = synthetic_math.generate("test", n or 500, seed=synthetic_seed)
        info = {"data_source": "synthetic", "data_path": f"synthetic_math(test, seed={synthetic_seed})"}
    records = normalize_records(raw, normalize_gsm8k_eval_record, info["data_path"])
    if n is not None:
        records = records[:n]
    info["n_eval"] = len(records)
    return records, info
