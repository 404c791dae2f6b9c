"""GLUE data for the T5-base experiments (paper Tables 1 and 9; protocol §3.5): task definitions, the LoRA-GA
input/target strings, and loaders for the formats GLUE data comes in.

Task definitions follow LoRA-GA's `reproduce/data.py` (Outsider565/LoRA-GA, commit 7cbdd68) byte for byte:

    task  instruction                                                           text fields / label words
    sst2  "classify the sentiment of the text: "                                sentence
                                                                                negative, positive
    cola  "classify the grammaticality of the text: "                           sentence
                                                                                unacceptable, acceptable
    mrpc  "classify the semantic similarity of the text: "                      sentence1, sentence2
                                                                                different, equivalent
    qnli  "classify the semantic similarity of the question and the sentence: " question, sentence
                                                                                entailment, not_entailment
    mnli  "classify the semantic similarity of the text: "                      premise, hypothesis
                                                                                entailment, neutral, contradiction

    x = f"{instruction}{text}\\nresult: "   or, for pairs,   x = f"{instruction}{s1}\\n{s2}\\nresult: "
    y = the label word of the gold label (label words are in HF `glue` label-index order)

The eval split is HF's `validation` (MNLI: `validation_matched`), i.e. GLUE's dev sets; texts are used verbatim (SST-2
sentences keep their trailing space, as in HF `glue`).

Examples handed on are uniform: the task's HF `glue` text fields plus `label` (int, HF order), e.g.
``{"sentence": "...", "label": 1}`` or ``{"premise": "...", "hypothesis": "...", "label": 2}``.

Where the data comes from (`load_glue_split`), in this order:
  1. a local file: `path.<split>` if set, else found under `glue_dir` (a GLUE download root);
  2. the HF hub dataset `hub.id` (config = the task name): from the hub when reachable, else from the local HF
     datasets cache only (never downloaded offline);
  3. only when neither is configured/available: a small built-in SYNTHETIC set per task (warned, recorded as
     data_source=synthetic). It teaches the format, not the task.
A configured local file that is missing is an error (never a silent fallback).

Local formats (chosen by extension):
  .tsv/.txt  GLUE's TSVs, split on tabs with no quote handling (GLUE's files contain unbalanced quotes), UTF-8 with an
             optional BOM (MRPC's header starts with one). Columns are found by header name: SST-2 `sentence label`;
             MRPC `Quality #1 ID #2 ID #1 String #2 String`; QNLI `index question sentence label`; MNLI
             `... sentence1 sentence2 ... gold_label` (gold_label wins over label1). CoLA's train/dev TSVs have no
             header: `source label original-mark sentence`. A TSV with HF field names as header also works.
  .jsonl     one object a line with HF field names (sentence / sentence1,sentence2 / question,sentence /
             premise,hypothesis; label), or MultiNLI's own sentence1/sentence2/gold_label.
  .json      a list of such objects, or an object of objects keyed by id (PowerfulPromptFT's
             `{id: {text_a, text_b, label}}`).
Labels may be ints (HF order), digit strings, HF label names (`not_equivalent`, `entailment`...) or the label words.
MNLI rows without a gold label (`-`, as in MultiNLI's raw files) are skipped and counted (GLUE drops them too).

MRPC from the raw GLUE download: `dev.tsv`/`train.tsv` (made by GLUE's download script) are read directly; when only
`msr_paraphrase_train.txt` + `dev_ids.tsv` exist, the split is rebuilt the way the script does (dev = rows whose id
pair is listed in dev_ids.tsv, train = the rest). `msr_paraphrase_test.txt` is GLUE's MRPC *test* set, not the dev set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from astra_repro.data.sources import hub_reachable, read_text, warn_synthetic
from astra_repro.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GlueTask:
    name: str
    folder: str  # GLUE download folder
    instruction: str
    text_fields: tuple[str, ...]  # HF `glue` field names, in prompt order
    label_words: tuple[str, ...]  # target words, in HF label-index order
    label_names: tuple[str, ...]  # HF `glue` ClassLabel names, same order
    eval_split: str  # HF split name of the evaluation set
    dev_stem: str  # GLUE file stem of the evaluation set


GLUE_TASKS: dict[str, GlueTask] = {
    "sst2": GlueTask("sst2", "SST-2", "classify the sentiment of the text: ", ("sentence",),
                     ("negative", "positive"), ("negative", "positive"), "validation", "dev"),
    "cola": GlueTask("cola", "CoLA", "classify the grammaticality of the text: ", ("sentence",),
                     ("unacceptable", "acceptable"), ("unacceptable", "acceptable"), "validation", "dev"),
    "mrpc": GlueTask("mrpc", "MRPC", "classify the semantic similarity of the text: ", ("sentence1", "sentence2"),
                     ("different", "equivalent"), ("not_equivalent", "equivalent"), "validation", "dev"),
    "qnli": GlueTask("qnli", "QNLI", "classify the semantic similarity of the question and the sentence: ",
                     ("question", "sentence"), ("entailment", "not_entailment"), ("entailment", "not_entailment"),
                     "validation", "dev"),
    "mnli": GlueTask("mnli", "MNLI", "classify the semantic similarity of the text: ", ("premise", "hypothesis"),
                     ("entailment", "neutral", "contradiction"), ("entailment", "neutral", "contradiction"),
                     "validation_matched", "dev_matched"),
}

# Column / key names accepted for each HF field, in priority order (lower-cased; TSV headers and JSON keys alike).
FIELD_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "sst2": {"sentence": ("sentence", "text_a", "text")},
    "cola": {"sentence": ("sentence", "text_a", "text")},
    "mrpc": {"sentence1": ("sentence1", "#1 string", "text_a"), "sentence2": ("sentence2", "#2 string", "text_b")},
    "qnli": {"question": ("question", "text_a", "sentence1"), "sentence": ("sentence", "text_b", "sentence2")},
    "mnli": {"premise": ("premise", "sentence1", "text_a"), "hypothesis": ("hypothesis", "sentence2", "text_b")},
}
LABEL_ALIASES: dict[str, tuple[str, ...]] = {
    "sst2": ("label",), "cola": ("label",), "mrpc": ("label", "quality"), "qnli": ("label",),
    "mnli": ("gold_label", "label"),
}
NO_GOLD = "-"  # MultiNLI's marker for pairs without annotator agreement
SPLITS = ("train", "validation")
SETTING = "task.data"  # where the data block lives in the run config (for error messages)


def get_task(task: str) -> GlueTask:
    if task not in GLUE_TASKS:
        raise ConfigError(f"unknown GLUE task '{task}'; valid: {', '.join(GLUE_TASKS)}")
    return GLUE_TASKS[task]


def format_glue_input(task: str, example: dict) -> str:
    """LoRA-GA's x: ``"{instruction}{text}\\nresult: "``, or ``"{instruction}{s1}\\n{s2}\\nresult: "`` for pairs."""
    spec = get_task(task)
    texts = "\n".join(example[f] for f in spec.text_fields)
    return f"{spec.instruction}{texts}\nresult: "


def label_word(task: str, label: int) -> str:
    """LoRA-GA's y: the label word of HF label index `label`."""
    words = get_task(task).label_words
    if not isinstance(label, int) or isinstance(label, bool) or not 0 <= label < len(words):
        raise ValueError(f"{task} label must be an int in 0..{len(words) - 1}; got {label!r}")
    return words[label]


def label_word_token_ids(tokenizer: Any, task: str, leading_space: bool = False) -> list[int]:
    """The first token id of each label word, in label-index order. Here, beside the label words, because training
    (tasks/glue.py: where the prompt's space goes) and scoring (evaluators/glue_metrics.py) both need it.

    As LoRA-GA: the label word is tokenised on its own without special tokens (`add_special_tokens=False`; T5 adds
    only a trailing </s>, so this is exactly `tokenizer(y).input_ids[0]`). With T5's sentencepiece the word gets its
    word-initial "▁" piece automatically.

    `leading_space=True` is for byte-level BPE tokenizers of causal LMs (SmolLM2, Llama-3), which add no dummy
    prefix: " negative" is the word-initial token a causal LM emits after a prompt whose trailing space is moved into
    the target ("...result:" + " negative"). With the prompt ending in "result: " itself (LoRA-GA's x) use False.
    The choice must match how the targets were tokenised in training; LoRA-GA never scored causal LMs this way.

    Raises ConfigError when two label words share their first token (the soft metric could not tell them apart).
    """
    words = get_task(task).label_words
    ids = []
    for word in words:
        pieces = tokenizer((" " + word) if leading_space else word, add_special_tokens=False)["input_ids"]
        if not pieces:
            raise ConfigError(f"{task}: the tokenizer turns label word '{word}' into no tokens")
        ids.append(int(pieces[0]))
    if len(set(ids)) != len(ids):
        shared = {w: (i, tokenizer.convert_ids_to_tokens(i)) for w, i in zip(words, ids)}
        raise ConfigError(f"{task}: label words share a first token with this tokenizer ({shared}); the soft "
                          "metric needs distinct first tokens (try leading_space or another tokenizer)")
    return ids


def canonical_split(task: str, split: str) -> str:
    """'train' or 'validation' ('validation' = the task's eval split; MNLI also accepts 'validation_matched')."""
    if task == "mnli" and split == "validation_matched":
        return "validation"
    if split not in SPLITS:
        valid = ", ".join(SPLITS + (("validation_matched",) if task == "mnli" else ()))
        raise ConfigError(f"unknown GLUE split '{split}' for {task}; valid: {valid}")
    return split


# ---------------------------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------------------------
def parse_label(task: str, value: Any) -> int | None:
    """HF label index for a label given as int, digit string, HF label name or label word; None for MNLI's '-'.
    Raises ValueError on anything else (the caller adds file and line)."""
    spec = get_task(task)
    k = len(spec.label_words)
    if isinstance(value, bool):
        raise ValueError(f"label {value!r} is a bool")
    if isinstance(value, int):
        if 0 <= value < k:
            return value
        raise ValueError(f"label {value} is out of range 0..{k - 1}"
                         + (" (-1 marks an unlabelled GLUE test split)" if value == -1 else ""))
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"-?\d+", text):
            return parse_label(task, int(text))
        low = text.lower()
        if low == NO_GOLD and task == "mnli":
            return None
        for names in (spec.label_names, spec.label_words):
            if low in names:
                return names.index(low)
    valid = sorted(set(spec.label_names) | set(spec.label_words)) + [f"0..{k - 1}"]
    raise ValueError(f"label {value!r} is not one of {', '.join(valid)}")


# ---------------------------------------------------------------------------------------------------------------
# Local files
# ---------------------------------------------------------------------------------------------------------------
class _Malformed(Exception):
    def __init__(self, line: int | None, why: str):
        super().__init__(why)
        self.line, self.why = line, why


def _lookup(record: dict, aliases: tuple[str, ...]) -> Any:
    lowered = {str(k).lower().strip(): v for k, v in record.items()}
    for name in aliases:
        if name in lowered:
            return lowered[name]
    raise KeyError(aliases[0])


def _normalize_record(task: str, record: Any, line: int | None) -> dict | None:
    """HF-field example from one JSON object / TSV row dict; None if it has no gold label (MNLI '-')."""
    if not isinstance(record, dict):
        raise _Malformed(line, f"expected an object, got a {type(record).__name__}")
    out = {}
    for field, aliases in FIELD_ALIASES[task].items():
        try:
            text = _lookup(record, aliases)
        except KeyError:
            raise _Malformed(line, f"no '{field}' field (accepted: {', '.join(aliases)}); keys: "
                                   f"{', '.join(sorted(map(str, record)))}") from None
        if not isinstance(text, str):
            raise _Malformed(line, f"field '{field}' is a {type(text).__name__}, not text")
        out[field] = text
    try:
        raw_label = _lookup(record, LABEL_ALIASES[task])
    except KeyError:
        raise _Malformed(line, f"no label field (accepted: {', '.join(LABEL_ALIASES[task])}); keys: "
                               f"{', '.join(sorted(map(str, record)))}") from None
    try:
        label = parse_label(task, raw_label)
    except ValueError as err:
        raise _Malformed(line, str(err)) from None
    if label is None:
        return None
    out["label"] = label
    return out


def _read_lines(path: Path, setting: str) -> list[str]:
    # read_text drops a leading BOM (MRPC). Split on "\n" only: str.splitlines would also split on \x0b, \u2028, ...
    text = read_text(path, setting)
    return [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]


def _read_tsv(task: str, path: Path, setting: str) -> tuple[list[dict], int]:
    lines = _read_lines(path, setting)
    rows = [(i + 1, line.split("\t")) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        return [], 0
    first = [c.strip().lower() for c in rows[0][1]]
    label_cols = LABEL_ALIASES[task]
    if any(c in label_cols for c in first):
        header, body = first, rows[1:]
    elif task == "cola" and len(first) >= 4 and first[1] in {"0", "1"}:
        header, body = ["source", "label", "original_mark", "sentence"], rows  # GLUE CoLA: no header
    else:
        expected = " / ".join("|".join(a) for a in FIELD_ALIASES[task].values()) + " / " + "|".join(label_cols)
        raise ConfigError(f"{path}:{rows[0][0]}: no recognisable {task} header (expected columns {expected}"
                          + (", or CoLA's header-less 4 columns" if task == "cola" else "") + ")")
    examples, skipped = [], 0
    for line_no, fields in body:
        if len(fields) < len(header):
            raise ConfigError(f"{path}:{line_no}: malformed row: {len(fields)} tab-separated fields, the header has "
                              f"{len(header)}")
        if task == "cola" and header[0] == "source" and len(fields) > 4:
            fields = fields[:3] + ["\t".join(fields[3:])]
        try:
            ex = _normalize_record(task, dict(zip(header, fields)), line_no)
        except _Malformed as err:
            raise ConfigError(f"{path}:{line_no}: malformed row: {err.why}") from None
        if ex is None:
            skipped += 1
        else:
            examples.append(ex)
    return examples, skipped


def _read_json_file(task: str, path: Path, setting: str) -> tuple[list[dict], int]:
    text = read_text(path, setting)
    records: list[tuple[int | None, Any]]
    if path.suffix == ".jsonl" or not text.lstrip().startswith(("[", "{")) or _looks_like_jsonl(text):
        records = []
        for i, line in enumerate(text.split("\n")):
            if line.strip():
                try:
                    records.append((i + 1, json.loads(line)))
                except json.JSONDecodeError as err:
                    raise ConfigError(f"{path}:{i + 1}: malformed JSON line ({err.msg})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{path}:{err.lineno}: malformed JSON ({err.msg})") from None
        if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
            data = list(data.values())  # PowerfulPromptFT: {id: {text_a, text_b, label}}
        if not isinstance(data, list):
            raise ConfigError(f"{path}: expected a JSON list of examples or an object of examples keyed by id")
        records = [(None, r) for r in data]
    examples, skipped = [], 0
    for n, (line_no, record) in enumerate(records):
        try:
            ex = _normalize_record(task, record, line_no)
        except _Malformed as err:
            where = f"{path}:{err.line}" if err.line is not None else f"{path} (record {n + 1})"
            raise ConfigError(f"{where}: malformed record: {err.why}") from None
        if ex is None:
            skipped += 1
        else:
            examples.append(ex)
    return examples, skipped


def _looks_like_jsonl(text: str) -> bool:
    """A .json file that is really one object a line (first line parses as an object on its own)."""
    first = text.lstrip().split("\n", 1)[0].strip()
    if not (first.startswith("{") and first.endswith("}")):
        return False
    try:
        return isinstance(json.loads(first), dict) and len(text.strip().split("\n")) > 1
    except json.JSONDecodeError:
        return False


def read_glue_file(task: str, path: str | Path, setting: str = f"{SETTING}.path") -> tuple[list[dict], int]:
    """(examples, n_skipped_no_gold) from one local file; format by extension (.tsv/.txt, .jsonl, .json)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"GLUE {task} data file '{path}' does not exist; fix {setting} (or unset it)")
    suffix = path.suffix.lower()
    if suffix in {".tsv", ".txt"}:
        return _read_tsv(task, path, setting)
    if suffix in {".jsonl", ".json"}:
        return _read_json_file(task, path, setting)
    raise ConfigError(f"{path}: unknown GLUE file type '{suffix}'; use .tsv (GLUE), .jsonl or .json")


def _mrpc_from_raw(folder: Path, split: str) -> tuple[list[dict], int, Path] | None:
    """GLUE's download script's MRPC split, rebuilt from msr_paraphrase_train.txt + dev_ids.tsv."""
    raw, ids_file = folder / "msr_paraphrase_train.txt", folder / "dev_ids.tsv"
    if not (raw.is_file() and ids_file.is_file()):
        return None
    dev_ids = {tuple(line.strip().split("\t")) for line in _read_lines(ids_file, f"{SETTING}.glue_dir") if line.strip()}
    lines = _read_lines(raw, f"{SETTING}.glue_dir")
    header = [c.strip().lower() for c in lines[0].split("\t")]
    examples = []
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.strip().split("\t")
        if len(fields) != 5:
            raise ConfigError(f"{raw}:{i}: malformed row: {len(fields)} tab-separated fields, expected 5")
        in_dev = (fields[1], fields[2]) in dev_ids
        if in_dev == (split == "validation"):
            try:
                examples.append(_normalize_record("mrpc", dict(zip(header, fields)), i))
            except _Malformed as err:
                raise ConfigError(f"{raw}:{i}: malformed row: {err.why}") from None
    return examples, 0, raw


def _is_sample(path: Path, stem: str) -> bool:
    """`train_2000.tsv`-style subsets (stem, underscore, a number); not e.g. MRPC's dev_ids.tsv."""
    return re.fullmatch(rf"{re.escape(stem)}_\d+", path.stem) is not None


def find_glue_file(task: str, split: str, glue_dir: str | Path) -> Path | tuple:
    """The file for (task, split) under a GLUE root: <glue_dir>/<SST-2|CoLA|MRPC|QNLI|MNLI or task>/<stem>.<ext>,
    stems `train` / `dev` (MNLI `dev_matched`) or `validation[_matched]`, ext tsv > jsonl > json; a sample such as
    `train_2000.tsv` is used only when the full file is absent (logged, and recorded in the run info)."""
    spec = get_task(task)
    root = Path(glue_dir).expanduser()
    if not root.is_dir():
        raise ConfigError(f"{SETTING}.glue_dir '{root}' is not a directory; point it at a GLUE download root "
                          f"(holding {spec.folder}/...) or unset it")
    folders = [root / spec.folder, root / task, root]
    folder = next((f for f in folders if f.is_dir() and f != root), root)
    stems = ["train"] if split == "train" else [spec.dev_stem, spec.eval_split]
    for stem in stems:
        for ext in (".tsv", ".jsonl", ".json"):
            if (folder / f"{stem}{ext}").is_file():
                return folder / f"{stem}{ext}"
    if task == "mrpc" and (folder / "msr_paraphrase_train.txt").is_file():
        return ("mrpc_raw", folder)
    samples = sorted(p for p in folder.iterdir() if p.suffix in {".tsv", ".jsonl", ".json"} and _is_sample(p, stems[0]))
    if samples:
        return samples[0]
    wanted = ", ".join(f"{stem}.tsv" for stem in stems)
    raise ConfigError(f"no GLUE {task} {split} file in {folder} (looked for {wanted}, .jsonl/.json, "
                      f"{stems[0]}_<N>.*); set {SETTING}.path.{split}=<file> or fix {SETTING}.glue_dir")


# ---------------------------------------------------------------------------------------------------------------
# Hub
# ---------------------------------------------------------------------------------------------------------------
def _load_hub(task: str, split: str, hub_id: str) -> tuple[list[dict], str] | tuple[None, str]:
    """(examples, "") from the hub (reachable) or the local HF datasets cache; (None, why not) otherwise."""
    from datasets import load_dataset

    hf_split = get_task(task).eval_split if split == "validation" else split
    reachable = hub_reachable()
    try:
        if reachable:
            ds = load_dataset(hub_id, task, split=hf_split)
        else:
            import datasets.config

            old = datasets.config.HF_HUB_OFFLINE
            datasets.config.HF_HUB_OFFLINE = True  # cache only: fail at once instead of trying to download
            try:
                ds = load_dataset(hub_id, task, split=hf_split)
            finally:
                datasets.config.HF_HUB_OFFLINE = old
    except (OSError, ValueError) as err:  # not cached: ConnectionError/DatasetNotFoundError; other config: ValueError
        if reachable:
            raise ConfigError(f"hub dataset '{hub_id}' ({task}, {hf_split}) failed to load: "
                              f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from None
        return None, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
    fields = GLUE_TASKS[task].text_fields
    missing = [c for c in (*fields, "label") if c not in ds.column_names]
    if missing:
        raise ConfigError(f"hub dataset '{hub_id}' config {task} lacks columns {missing}; expected HF glue fields")
    columns = {c: ds[c] for c in (*fields, "label")}
    examples = []
    for i in range(len(ds)):
        try:
            label = parse_label(task, columns["label"][i])
        except ValueError as err:
            raise ConfigError(f"hub dataset '{hub_id}' {task}/{hf_split} row {i}: {err}") from None
        if label is not None:
            examples.append({**{f: columns[f][i] for f in fields}, "label": label})
    return examples, ""


# ---------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------
def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    value = cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)
    return default if value is None else value


def label_counts(task: str, examples: list[dict]) -> dict[str, int]:
    words = get_task(task).label_words
    counts = {w: 0 for w in words}
    for ex in examples:
        counts[words[ex["label"]]] += 1
    return counts


def load_glue_split(task: str, split: str, data_cfg: Any) -> tuple[list[dict], dict]:
    """All examples of a GLUE split in file order, and where they came from::

        {"data_source": local|hub|synthetic, "data_path": str, "task": str, "split": str (HF name),
         "n_examples": int, "label_counts": {word: n}, "n_skipped_no_gold": int, "full_split": bool}

    `split` is 'train' or 'validation' (the task's eval split: MNLI's validation_matched). `data_cfg` is the
    task's data block (DictConfig or dict): {glue_dir, path: {train, validation}, hub: {id}, synthetic: {...}}.
    """
    spec = get_task(task)
    split = canonical_split(task, split)
    hf_split = spec.eval_split if split == "validation" else "train"
    paths = _cfg_get(data_cfg, "path")
    explicit = _cfg_get(paths, split) if paths is not None and not isinstance(paths, str) else None
    if isinstance(paths, str):
        raise ConfigError(f"{SETTING}.path must be a mapping {{train: <file>, validation: <file>}}, not a string")
    glue_dir = _cfg_get(data_cfg, "glue_dir")
    hub = _cfg_get(data_cfg, "hub")
    full_split = True
    if explicit or glue_dir:
        if explicit:
            path = Path(str(explicit)).expanduser()
            examples, skipped = read_glue_file(task, path, setting=f"{SETTING}.path.{split}")
        else:
            found = find_glue_file(task, split, glue_dir)
            if isinstance(found, tuple):
                examples, skipped, path = _mrpc_from_raw(found[1], split)
            else:
                path = found
                examples, skipped = read_glue_file(task, path, setting=f"{SETTING}.glue_dir")
                if _is_sample(path, "train" if split == "train" else spec.dev_stem):
                    full_split = False
                    log.warning("GLUE %s %s: using the sample file %s (%d examples), not the full split",
                                task, split, path, len(examples))
        info = {"data_source": "local", "data_path": str(path)}
    else:
        examples, why_not = None, "no hub configured"
        if hub is not None and _cfg_get(hub, "id"):
            examples, why_not = _load_hub(task, split, _cfg_get(hub, "id"))
        if examples is not None:
            skipped = 0
            info = {"data_source": "hub", "data_path": f"{_cfg_get(hub, 'id')}/{task}/{hf_split}"}
        else:
            log.info("GLUE %s %s: no local file configured and the hub dataset is unavailable (%s)", task, split,
                     why_not)
            warn_synthetic(f"GLUE {task} {split}", kind=f"{task} examples built from word lists")
            synth = _cfg_get(data_cfg, "synthetic", {})
            seed = int(_cfg_get(synth, "seed", 0))
            n = int(_cfg_get(synth, "n_train" if split == "train" else "n_eval", 512 if split == "train" else 128))
            examples, skipped = synthetic_glue(task, split, n, seed), 0
            info = {"data_source": "synthetic", "data_path": f"synthetic_glue({task}, {split}, n={n}, seed={seed})"}
    if not examples:
        raise ConfigError(f"GLUE {task} {split} data from {info['data_path']} holds no labelled examples; "
                          f"set {SETTING}.path.{split} or {SETTING}.glue_dir to GLUE data")
    info.update({"task": task, "split": hf_split, "n_examples": len(examples),
                 "label_counts": label_counts(task, examples), "n_skipped_no_gold": skipped,
                 "full_split": full_split and info["data_source"] != "synthetic"})
    log.info("GLUE %s %s: %d examples from %s (%s)", task, hf_split, len(examples), info["data_path"],
             info["label_counts"])
    return examples, info


# ---------------------------------------------------------------------------------------------------------------
# Synthetic fallback (demo only)
# ---------------------------------------------------------------------------------------------------------------
# Tiny word lists: each example's gold label is fixed by construction. Train and validation are disjoint: every
# example has a wording-independent key, and a key belongs to validation iff sha1(key) % 10 < 2.
_POS = ["wonderful", "charming", "delightful", "brilliant", "moving", "funny", "beautiful", "gripping", "clever",
        "touching", "superb", "warm"]
_NEG = ["dull", "boring", "awful", "tedious", "clumsy", "lifeless", "painful", "bland", "messy", "shallow",
        "tiresome", "dreadful"]
_THINGS = ["movie", "film", "story", "script", "cast", "ending", "soundtrack", "plot", "performance", "sequel"]
_NAMES = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hugo", "Irene", "Jonas", "Keiko", "Liam"]
_OBJECTS = ["a bicycle", "a laptop", "a guitar", "a lamp", "a kettle", "a map", "a camera", "a sofa", "a tent",
            "a violin"]
_PLACES = ["Paris", "Berlin", "Lisbon", "Oslo", "Madrid", "Vienna", "Dublin", "Prague", "Rome", "Warsaw"]
_VERBS = [("buys", "bought", "purchased"), ("sells", "sold", "got rid of"), ("repairs", "repaired", "fixed"),
          ("paints", "painted", "coloured"), ("borrows", "borrowed", "took on loan")]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_VALIDATION_BUCKETS = 2


def _rng(task: str, split: str, seed: int) -> random.Random:
    return random.Random(int(hashlib.sha256(f"glue/{task}/{split}/{seed}".encode()).hexdigest(), 16))


def _in_split(key: tuple, split: str) -> bool:
    bucket = int(hashlib.sha1(repr(key).encode()).hexdigest(), 16) % 10
    return (bucket < _VALIDATION_BUCKETS) == (split == "validation")


def _synthetic_item(task: str, label: int, rng: random.Random) -> tuple[tuple, dict]:
    """(key, HF-field example) with gold `label`."""
    if task == "sst2":
        adj, thing = rng.choice(_POS if label == 1 else _NEG), rng.choice(_THINGS)
        frame = rng.choice(["the {t} is {a} .", "{a} {t} , from start to finish .", "what an utterly {a} {t} ."])
        return ("sst2", adj, thing, frame), {"sentence": frame.format(t=thing, a=adj) + " "}
    if task == "cola":
        name, (verb, _, _), obj = rng.choice(_NAMES), rng.choice(_VERBS), rng.choice(_OBJECTS)
        if label == 1:
            return ("cola", name, verb, obj, 1), {"sentence": f"{name} {verb} {obj}."}
        broken = rng.choice([f"{obj.capitalize()} {name} {verb}.", f"{name} {verb} {obj} {obj.split()[0]}.",
                             f"{name} {obj} {verb} the."])
        return ("cola", name, verb, obj, 0, broken), {"sentence": broken}
    if task == "mrpc":
        name, (verb, past, para) = rng.choice(_NAMES), rng.choice(_VERBS)
        obj, day = rng.choice(_OBJECTS), rng.choice(_DAYS)
        s1 = f"{name} {past} {obj} on {day}."
        if label == 1:
            s2 = f"On {day}, {name} {para} {obj}."
        else:
            other = rng.choice([n for n in _NAMES if n != name])
            s2 = f"On {rng.choice([d for d in _DAYS if d != day])}, {other} {para} {rng.choice(_OBJECTS)}."
        return ("mrpc", s1, s2), {"sentence1": s1, "sentence2": s2}
    if task == "qnli":
        name, (_, past, _) = rng.choice(_NAMES), rng.choice(_VERBS)
        obj, place = rng.choice(_OBJECTS), rng.choice(_PLACES)
        question = f"Where did {name} {_base(past)} {obj}?"
        if label == 0:
            sentence = f"{name} {past} {obj} in {place} last year."
        else:
            sentence = f"{name} was born in {place} and still lives there."
        return ("qnli", question, sentence), {"question": question, "sentence": sentence}
    if task == "mnli":
        name, place = rng.choice(_NAMES), rng.choice(_PLACES)
        (verb, _, _), obj = rng.choice(_VERBS), rng.choice(_OBJECTS)
        premise = f"{name} {verb} {obj} at a shop in {place}."
        hypothesis = [f"{name} is in {place}.",
                      f"{name} {verb} {obj} for a friend.",
                      f"{name} has never been to {place}."][label]
        return ("mnli", premise, hypothesis), {"premise": premise, "hypothesis": hypothesis}
    raise ConfigError(f"unknown GLUE task '{task}'")


def _base(past: str) -> str:
    return {"bought": "buy", "sold": "sell", "repaired": "repair", "painted": "paint", "borrowed": "borrow"}[past]


def synthetic_glue(task: str, split: str, n: int, seed: int = 0) -> list[dict]:
    """`n` SYNTHETIC examples, labels balanced (cycled in HF order, then shuffled), train/validation disjoint,
    deterministic in (task, split, n, seed). For the offline demo only."""
    spec = get_task(task)
    split = canonical_split(task, split)
    rng = _rng(task, split, seed)
    k = len(spec.label_words)
    seen, examples, attempts = set(), [], 0
    while len(examples) < n:
        attempts += 1
        if attempts > 200 * max(n, 1):
            raise ConfigError(f"synthetic GLUE {task} {split}: cannot build {n} distinct examples; lower "
                              f"{SETTING}.synthetic.n_{'train' if split == 'train' else 'eval'}")
        label = len(examples) % k
        key, ex = _synthetic_item(task, label, rng)
        if key in seen or not _in_split(key, split):
            continue
        seen.add(key)
        examples.append({**ex, "label": label})
    rng.shuffle(examples)
    return examples
