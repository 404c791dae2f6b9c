"""LLM-Adapters commonsense test records -> lm-eval documents.

A record is `{instruction, input, output, answer}`; the question and its options live inside `instruction`:

    <prefix><stem><sep><Label>1: <option><sep><Label>2: <option> ...<sep>Answer format: <label>1/<label>2/...

with <sep> = "\\n\\n" (PIQA, and before the first option and the format line elsewhere) or " " (between the
options of ARC/OBQA/SIQA/HellaSwag/WinoGrande, and before WinoGrande's format line). `answer` is e.g. "answer3".
BoolQ has no options: `<prefix><question>\\n\\nAnswer format: true/false`, answer "true"/"false", and no passage.

Each benchmark's document is built so that lm-eval's official prompt for that benchmark comes out (see specs.py):
`{query, choices, gold}` with the official `doc_to_text` already applied, and for WinoGrande the official dataset's
own fields, scored by lm-eval's own preprocess_winogrande functions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterator

from astra_repro.data.sources import read_json_records
from astra_repro.errors import ConfigError

PARSER_VERSION = "1"  # part of the converted-file cache key: bump when a document changes
CHOOSE = "Please choose the correct answer to the question: "
PREFIXES = {
    "boolq": "Please answer the following question with true or false, question: ",
    "piqa": "Please choose the correct solution to the question: ",
    "hellaswag": "Please choose the correct ending to complete the given sentence: ",
    "winogrande": "Please choose the correct answer to fill in the blank to complete the given sentence: ",
    "arc_easy": CHOOSE,
    "arc_challenge": CHOOSE,
    "openbookqa": CHOOSE,
    "siqa": CHOOSE,
}
OPTION_LABELS = {"piqa": "solution", "hellaswag": "ending", "winogrande": "option"}  # others: "answer"
FORMAT_MARKER = "Answer format: "


class RecordError(ValueError):
    """A record that does not have its benchmark's LLM-Adapters shape (the caller adds file and index)."""


def drop_separator(text: str) -> str:
    """Remove the one separator LLM-Adapters put after a field, keep any other whitespace (it is the data's)."""
    if text.endswith("\n\n"):
        return text[:-2]
    return text[:-1] if text.endswith(" ") else text


def split_instruction(benchmark: str, instruction: str, answer: str) -> tuple[str, list[str], int]:
    """(stem, option texts, gold index) of one record; BoolQ has no option texts and gold 1 = true."""
    prefix = PREFIXES[benchmark]
    if not instruction.startswith(prefix):
        raise RecordError(f"instruction does not start with {prefix!r}")
    body, marker, answer_format = instruction[len(prefix) :].rpartition(FORMAT_MARKER)
    if not marker:
        raise RecordError(f"no {FORMAT_MARKER!r} line")
    keys = answer_format.strip().split("/")
    answer = str(answer).strip().lower()
    if answer not in keys:
        raise RecordError(f"answer {answer!r} is not one of {keys}")
    gold = keys.index(answer)
    if benchmark == "boolq":
        if keys != ["true", "false"]:
            raise RecordError(f"answer format {answer_format.strip()!r} is not true/false")
        return drop_separator(body), [], 1 - gold
    label = OPTION_LABELS.get(benchmark, "answer")
    if keys != [f"{label}{i}" for i in range(1, len(keys) + 1)]:
        raise RecordError(f"answer format {answer_format.strip()!r} is not {label}1/{label}2/...")
    # Options in order: marker i is searched after marker i-1, so an option text cannot shift the split.
    markers = [f"{label.capitalize()}{i}: " for i in range(1, len(keys) + 1)]
    starts, cursor = [], 0
    for option_marker in markers:
        at = body.find(option_marker, cursor)
        if at < 0:
            raise RecordError(f"option marker {option_marker!r} not found")
        starts.append(at)
        cursor = at + len(option_marker)
    ends = starts[1:] + [len(body)]
    options = [drop_separator(body[s + len(m) : e]) for s, m, e in zip(starts, markers, ends)]
    return drop_separator(body[: starts[0]]), options, gold


def record_to_doc(benchmark: str, record: dict, index: int) -> dict:
    """One lm-eval document (see the module docstring); `record_index` points back into the source file."""
    stem, options, gold = split_instruction(benchmark, record["instruction"], record["answer"])
    if benchmark == "winogrande":  # the official dataset's fields, for lm-eval's own partial scoring
        if stem.count("_") != 1 or len(options) != 2:
            raise RecordError("a WinoGrande sentence needs exactly one '_' and two options")
        return {"sentence": stem, "option1": options[0], "option2": options[1], "answer": str(gold + 1),
                "record_index": index}
    if benchmark == "boolq":  # official: "{{passage}}\nQuestion: {{question}}?\nAnswer:"; LLM-Adapters has no passage
        query, options = f"Question: {stem.removesuffix('?')}?\nAnswer:", ["no", "yes"]
    elif benchmark == "hellaswag":  # official process_docs: preprocess(activity_label + ": " + ctx), same on endings
        from lm_eval.tasks.hellaswag.utils import preprocess as hellaswag_preprocess

        query, options = hellaswag_preprocess(stem), [hellaswag_preprocess(o) for o in options]
    elif benchmark == "openbookqa":  # official doc_to_text: question_stem
        query = stem
    elif benchmark == "siqa":  # official: "Q: {{context}} {{question}}\nA:"; LLM-Adapters joined them with a space
        query = f"Q: {stem}\nA:"
    else:  # piqa, arc_easy, arc_challenge
        query = f"Question: {stem}\nAnswer:"
    return {"query": query, "choices": options, "gold": gold, "record_index": index}


def iter_docs(benchmark: str, path: Path, setting: str | None = None) -> Iterator[dict]:
    """Every record of an LLM-Adapters test file as a document; a bad file or record is a one-line ConfigError
    naming the file, the record and `setting` (the key that names the file)."""
    setting = setting or f"task.evaluators.{benchmark}.path"
    records = read_json_records(path, setting)
    if not records:
        raise ConfigError(f"{path} holds no records; point {setting} at LLM-Adapters' {benchmark} test.json")
    for index, record in enumerate(records):
        try:
            if not isinstance(record.get("instruction"), str):
                raise RecordError("not an object with a string 'instruction'")
            if "answer" not in record:
                raise RecordError("no 'answer' field")
            doc = record_to_doc(benchmark, record, index)
        except RecordError as err:
            raise ConfigError(f"{path}: record {index} is not a {benchmark} LLM-Adapters record ({err}); "
                              f"point {setting} at LLM-Adapters' {benchmark} test.json") from None
        yield doc


def converted_file(benchmark: str, path: Path, out_dir: Path, setting: str | None = None) -> tuple[Path, int]:
    """(jsonl of documents, document count), converted once per source file version and reused afterwards.

    The raw JSON (HellaSwag: 11 MB) is only held while converting and the documents are streamed to disk; lm-eval
    then reads the jsonl through `datasets`, which memory-maps it.
    """
    stat = path.stat()
    key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{PARSER_VERSION}".encode()).hexdigest()[:12]
    out = out_dir / f"{benchmark}-{key}.jsonl"
    if not out.exists():
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                for doc in iter_docs(benchmark, path, setting):
                    f.write(json.dumps(doc, ensure_ascii=False) + "\n")
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        tmp.replace(out)
    with open(out, encoding="utf-8") as f:
        return out, sum(1 for _ in f)
