"""Commonsense-task training data: the LLM-Adapters record format, local -> hub -> synthetic resolution, and the
synthetic generator itself (LLM-Adapters prompt shapes, deterministic, train/test disjoint, balanced, always-right
gold)."""

import hashlib
import json
import random
import re
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from astra_repro.data import commonsense_sources as cs
from astra_repro.data import sources
from astra_repro.data import synthetic_commonsense as sy
from astra_repro.errors import ConfigError
from astra_repro.paths import CONFIG_DIR

DATA_DIR = Path("/work/shared/data/commonsense")
TRAIN_SAMPLE = DATA_DIR / "train_sample_5000.json"
DATA_CFG = {"path": None, "hub": {"id": "zwhe99/commonsense_170k", "split": "train"},
            "synthetic": {"n_train": 60, "seed": 0}}

# The prompt shapes of LLM-Adapters/dataset/<task>/test.json; test_shapes_match_the_real_files checks them on those files.
SHAPES = {
    "boolq": r"Please answer the following question with true or false, question: ([^\n]+\?)\n\nAnswer format: (true/false)",
    "piqa": r"Please choose the correct solution to the question: ([^\n]+)\n\nSolution1: ([^\n]+)\n\nSolution2: ([^\n]+)"
            r"\n\nAnswer format: (solution1/solution2)",
    "winogrande": r"Please choose the correct answer to fill in the blank to complete the given sentence: ([^\n]*_[^\n]*)"
                  r"\n\nOption1: ([^\n]+) Option2: ([^\n]+) Answer format: (option1/option2)",
    "hellaswag": r"Please choose the correct ending to complete the given sentence: ([^\n:]+: [^\n]+)\n\nEnding1: ([^\n]+) "
                 r"Ending2: ([^\n]+) Ending3: ([^\n]+) Ending4: ([^\n]+)\n\nAnswer format: (ending1/ending2/ending3/ending4)",
    "answers": r"Please choose the correct answer to the question: ([^\n]+)\n\nAnswer1: ([^\n]+)\n\n"
               r"Answer format: (answer1(?:/answer\d)+)",
}
REAL_FILES = {"boolq": "boolq", "piqa": "piqa", "winogrande": "winogrande", "arc_easy": "ARC-Easy",
              "arc_challenge": "ARC-Challenge", "openbookqa": "openbookqa", "siqa": "social_i_qa"}
# hellaswag/test.json is not carried (MANIFEST §5); this is one record's instruction as LLM-Adapters prints it.
HELLASWAG_EXAMPLE = (
    "Please choose the correct ending to complete the given sentence: Playing drums: People are standing behind large "
    "drums. A man\n\nEnding1: is playing a bag pipe. Ending2: starts to play around the drums. Ending3: begins playing "
    "a drum set. Ending4: begins playing the drums.\n\nAnswer format: ending1/ending2/ending3/ending4"
)


def shape_of(benchmark: str) -> str:
    return SHAPES.get(benchmark, SHAPES["answers"])


def parse(benchmark: str, instruction: str) -> tuple[str, list[str], list[str]]:
    """(stem, choices, answer labels) of an instruction in its benchmark's shape; fails the test if it is not."""
    m = re.fullmatch(shape_of(benchmark), instruction)
    assert m, f"{benchmark} instruction not in LLM-Adapters shape: {instruction!r}"
    *parts, fmt = m.groups()
    stem, choices = parts[0], parts[1:]
    if benchmark == "boolq":
        choices = ["true", "false"]
    elif shape_of(benchmark) == SHAPES["answers"]:
        choices = re.split(r" Answer\d: ", choices[0])
    labels = fmt.split("/")
    assert len(labels) == len(choices)
    if benchmark not in ("boolq", "piqa", "winogrande", "hellaswag"):
        assert [f"Answer{i}: " in instruction for i in range(1, len(labels) + 1)] == [True] * len(labels)
    return stem, choices, labels


def gold_choice(benchmark: str, record: dict) -> tuple[str, list[str], str]:
    stem, choices, labels = parse(benchmark, record["instruction"])
    return stem, choices, choices[labels.index(record["answer"])]


def write_jsonl(path, records):
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return path


def cfg_with(**overrides):
    return OmegaConf.create({**DATA_CFG, **overrides})


def lla(i: int, **extra) -> dict:
    """A record in LLM-Adapters format."""
    return {"instruction": f"q{i}", "input": "", "output": f"the correct answer is answer{i}", "answer": f"answer{i}",
            **extra}


# --------------------------------------------------------------------------------------------
# The loader: record format and resolution order (local -> hub -> synthetic)
# --------------------------------------------------------------------------------------------
def test_local_json_array_keeps_file_order_and_ignores_input(tmp_path):
    path = tmp_path / "commonsense_170k.json"
    path.write_text(json.dumps([lla(2), lla(0, input="context that the reference never reads"), lla(1)], indent=4))
    records, info = cs.load_commonsense_training(cfg_with(path=str(path)))
    assert records == [{"instruction": f"q{i}", "output": f"the correct answer is answer{i}"} for i in (2, 0, 1)]
    assert info == {"data_source": "local", "data_path": str(path), "n_records": 3}


def test_local_jsonl(tmp_path):
    path = write_jsonl(tmp_path / "cs.jsonl", [lla(i) for i in range(4)])
    records, info = cs.load_commonsense_training(cfg_with(path=str(path)))
    assert [r["instruction"] for r in records] == ["q0", "q1", "q2", "q3"]
    assert all(set(r) == {"instruction", "output"} for r in records)
    assert info["data_source"] == "local" and info["n_records"] == 4


def test_local_file_wins_and_does_not_warn(tmp_path, monkeypatch):
    monkeypatch.setattr(cs, "hub_reachable", lambda: pytest.fail("hub probed despite a local file"))
    path = write_jsonl(tmp_path / "cs.jsonl", [lla(0)])
    with warnings.catch_warnings():
        warnings.simplefilter("error", sources.SyntheticDataWarning)
        records, info = cs.load_commonsense_training(cfg_with(path=str(path)))
    assert info["data_source"] == "local" and len(records) == 1


def test_malformed_record_is_a_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError) as err:
        cs.normalize_commonsense_training_record({"question": "q", "label": 1})
    message = str(err.value)
    assert "\n" not in message and "instruction/output" in message and "label" in message  # names what it got
    with pytest.raises(ConfigError, match="a list"):
        cs.normalize_commonsense_training_record(["q", "a"])
    path = write_jsonl(tmp_path / "bad.jsonl", [lla(0), {"text": "hello"}])
    with pytest.raises(ConfigError, match="instruction/output"):
        cs.load_commonsense_training(cfg_with(path=str(path)))


def test_empty_or_missing_file_is_a_config_error(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    with pytest.raises(ConfigError, match="no commonsense training records"):
        cs.load_commonsense_training(cfg_with(path=str(path)))
    with pytest.raises(ConfigError, match="task.data.path"):
        cs.load_commonsense_training(cfg_with(path=str(tmp_path / "nope.json")))


def fake_hub(monkeypatch, rows):
    import datasets
    from datasets import Dataset

    calls = []

    def fake_load_dataset(hub_id, split):
        calls.append((hub_id, split))
        return Dataset.from_list(rows)

    monkeypatch.setattr(cs, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    return calls


def test_hub_in_file_order(monkeypatch):
    calls = fake_hub(monkeypatch, [lla(1), lla(0), lla(2)])
    records, info = cs.load_commonsense_training(cfg_with())
    assert calls == [("zwhe99/commonsense_170k", "train")]
    assert records == [{"instruction": f"q{i}", "output": f"the correct answer is answer{i}"} for i in (1, 0, 2)]
    assert info == {"data_source": "hub", "data_path": "zwhe99/commonsense_170k", "n_records": 3}


def test_hub_with_other_columns_is_a_config_error(monkeypatch):
    fake_hub(monkeypatch, [{"question": "q", "label": "1"}])
    with pytest.raises(ConfigError, match="instruction/output") as err:
        cs.load_commonsense_training(cfg_with())
    assert "\n" not in str(err.value)


def test_offline_falls_back_to_synthetic_warned_and_recorded(monkeypatch):
    import socket

    import datasets

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("network probed offline"))
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("hub dataset loaded offline"))
    assert sources.hub_reachable() is False  # HF_HUB_OFFLINE=1 from conftest
    with pytest.warns(sources.SyntheticDataWarning, match="commonsense training"):
        records, info = cs.load_commonsense_training(cfg_with())
    assert info == {"data_source": "synthetic", "data_path": "synthetic_commonsense(seed=0)", "n_records": 60}
    expected = sy.synthetic_commonsense_training(60, seed=0)
    assert records == [{"instruction": r["instruction"], "output": r["output"]} for r in expected]


@pytest.mark.skipif(not TRAIN_SAMPLE.exists(), reason="shared/data/commonsense/train_sample_5000.json not present")
def test_train_sample_5000_loads_through_the_local_path():
    raw = json.loads(TRAIN_SAMPLE.read_text())
    records, info = cs.load_commonsense_training(cfg_with(path=str(TRAIN_SAMPLE)))
    assert info == {"data_source": "local", "data_path": str(TRAIN_SAMPLE), "n_records": 5000}
    assert records == [{"instruction": r["instruction"], "output": r["output"]} for r in raw]


def test_task_is_registered_and_loads_its_config():
    from astra_repro.tasks import TASKS, get_task
    from astra_repro.tasks.commonsense import CommonsenseTask

    assert TASKS.get("commonsense") is CommonsenseTask and "\n" not in CommonsenseTask.description
    task_cfg = OmegaConf.load(CONFIG_DIR / "task" / "commonsense.yaml")
    task_cfg.data.synthetic.n_train = 24
    task = get_task(task_cfg, "demo")
    with pytest.warns(sources.SyntheticDataWarning):
        records, info = task.load_training_records()
    assert len(records) == 24 and info["data_source"] == "synthetic"
    assert task.calibration_records(records) is records  # calibration draws from all records


# --------------------------------------------------------------------------------------------
# The synthetic generator: shapes
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("benchmark", sorted(REAL_FILES))
def test_shapes_match_the_real_files(benchmark):
    """The regexes used below describe every record of the real LLM-Adapters files (when carried)."""
    path = DATA_DIR / REAL_FILES[benchmark] / "test.json"
    if not path.exists():
        pytest.skip(f"{path} not present")
    for record in json.loads(path.read_text()):
        _, _, labels = parse(benchmark, record["instruction"])
        assert record["answer"] in labels and record["output"] == f"the correct answer is {record['answer']}"


def test_hellaswag_shape_matches_llm_adapters_example():
    assert parse("hellaswag", HELLASWAG_EXAMPLE)[1][3] == "begins playing the drums."


@pytest.mark.skipif(not TRAIN_SAMPLE.exists(), reason="shared/data/commonsense/train_sample_5000.json not present")
def test_train_sample_records_have_the_shapes():
    for record in json.loads(TRAIN_SAMPLE.read_text()):
        benchmark = "boolq" if record["answer"] in ("true", "false") else "arc_easy"
        assert record["answer"] in parse(benchmark, record["instruction"])[2]


@pytest.mark.parametrize("benchmark", sy.BENCHMARKS)
@pytest.mark.parametrize("split", sy.SPLITS)
def test_synthetic_records_are_in_llm_adapters_format(benchmark, split):
    k = sy.N_CHOICES[benchmark]
    for record in sy.synthetic_commonsense_records(benchmark, 120, seed=3, split=split):
        assert list(record) == ["instruction", "input", "output", "answer"] and record["input"] == ""
        assert record["output"] == f"the correct answer is {record['answer']}"
        stem, choices, labels = parse(benchmark, record["instruction"])
        assert len(choices) == k and len(set(choices)) == k  # one right answer, never a duplicate
        assert record["answer"] in labels and all(c.strip() == c and c for c in choices)


# --------------------------------------------------------------------------------------------
# The synthetic generator: determinism, disjointness, balance, correctness
# --------------------------------------------------------------------------------------------
def test_deterministic_and_prefix_stable():
    for benchmark in sy.BENCHMARKS:
        a = sy.synthetic_commonsense_records(benchmark, 80, seed=7, split="train")
        assert a == sy.synthetic_commonsense_records(benchmark, 80, seed=7, split="train")
        assert a[:20] == sy.synthetic_commonsense_records(benchmark, 20, seed=7, split="train")
        assert a != sy.synthetic_commonsense_records(benchmark, 80, seed=8, split="train")
        assert len({r["instruction"] for r in a}) == 80
    assert sy.synthetic_commonsense_training(300, 1) == sy.synthetic_commonsense_training(300, 1)


def test_deterministic_across_processes():
    """A fresh interpreter (different hash salt) produces the same data."""
    code = ("import hashlib, json; from astra_repro.data.synthetic_commonsense import synthetic_commonsense_training as t;"
            " print(hashlib.sha1(json.dumps(t(400, 2)).encode()).hexdigest())")
    here = hashlib.sha1(json.dumps(sy.synthetic_commonsense_training(400, 2)).encode()).hexdigest()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "123"})
    assert out.stdout.strip() == here


@pytest.mark.parametrize("benchmark", sy.BENCHMARKS)
def test_train_and_test_are_disjoint(benchmark):
    train = sy._items(benchmark, 600, 0, "train")
    test_keys = {i.key for i in sy._items(benchmark, 300, 0, "test")}
    train_keys = {i.key for i in train}
    assert len(train_keys) == 600 and len(test_keys) == 300  # each fact at most once per split
    assert not train_keys & test_keys
    assert not train_keys & {i.key for i in sy._items(benchmark, 300, 5, "test")}  # for any pair of seeds
    assert all(sy.split_of(k) == "test" for k in test_keys)
    # and no question (stem plus its set of choices) of one split appears in the other, in any choice order
    def questions(n, split):
        records = sy.synthetic_commonsense_records(benchmark, n, 0, split)
        return {(stem, tuple(sorted(choices))) for stem, choices, _ in (parse(benchmark, r["instruction"]) for r in records)}

    assert not questions(300, "test") & questions(600, "train")


@pytest.mark.parametrize("benchmark", sy.BENCHMARKS)
def test_gold_positions_are_balanced(benchmark):
    k = sy.N_CHOICES[benchmark]
    for n in (97, 300):
        counts = Counter(r["answer"] for r in sy.synthetic_commonsense_records(benchmark, n, 4, "test"))
        assert len(counts) == k and max(counts.values()) - min(counts.values()) <= 1


def test_every_template_is_used():
    for benchmark, templates in sy.TEMPLATES.items():
        template_tags = {t(random.Random(0), 0).key[0] for t in templates}
        assert {i.key[0] for i in sy._items(benchmark, 300, 0, "train")} == template_tags, benchmark


TIER = {thing: i for i, things in enumerate(sy.SIZE_TIERS) for thing in things}
ROUTINE_ENDINGS = {label: ending for label, _, ending in sy.ROUTINES}


def _expected_boolq(question: str) -> str | None:
    """Recompute a BoolQ gold from the question, for the templates that can be checked from the text alone."""
    if m := re.fullmatch(r"is (\d+) (greater|larger|less|smaller) than (\d+)\?", question):
        x, word, y = int(m[1]), m[2], int(m[3])
        return str(x > y if word in ("greater", "larger") else x < y).lower()
    if m := re.fullmatch(r"is (\d+) plus (\d+) equal to (\d+)\?", question):
        return str(int(m[1]) + int(m[2]) == int(m[3])).lower()
    if m := re.fullmatch(r"is (\d+) an (even|odd) number\?", question):
        return str((int(m[1]) % 2 == 0) == (m[2] == "even")).lower()
    if m := re.fullmatch(r"can (.+) fly\?", question):
        return str(m[1] in sy.FLYERS).lower()
    if m := re.fullmatch(r"does (.+) float on water\?", question):
        return str(m[1] in sy.FLOATERS).lower()
    if m := re.fullmatch(r"is (\w+day) the day after (\w+day)\?", question):
        return str(sy.DAYS.index(m[1]) == (sy.DAYS.index(m[2]) + 1) % 7).lower()
    if m := re.fullmatch(r"is (.+) (bigger|smaller) than (.+)\?", question):
        return str((TIER[m[1]] > TIER[m[3]]) == (m[2] == "bigger")).lower()
    if m := re.fullmatch(r"is (.+) hotter than (.+)\?", question):
        return str(m[1] in sy.HOT).lower()
    return None


def test_boolq_gold_is_right():
    for record in sy.synthetic_commonsense_records("boolq", 400, 0) + sy.synthetic_commonsense_records("boolq", 200, 0, "test"):
        expected = _expected_boolq(parse("boolq", record["instruction"])[0])
        assert expected is not None, f"no check for {record['instruction']!r}"  # every BoolQ template is checked
        assert record["answer"] == expected, record["instruction"]


def _expected_choice(benchmark: str, stem: str, choices: list[str]) -> str | None:
    """Recompute the right choice text from the question, independently of the generator's own bookkeeping."""
    if m := re.fullmatch(r"Counting: A child counts out loud: (\d+), (\d+), (\d+), and then says", stem):
        return f"{int(m[3]) + int(m[2]) - int(m[1])}."
    if m := re.fullmatch(r"Reading a calendar: .* The month after (\w+) is", stem):
        return f"{sy.MONTHS[(sy.MONTHS.index(m[1]) + 1) % 12]}."
    if m := re.fullmatch(r"(\w+) is (\d+) years old and (\w+) is (\d+) years old, so _ is (older|younger)\.", stem):
        return m[1] if (int(m[2]) > int(m[4])) == (m[5] == "older") else m[3]
    if m := re.fullmatch(r"(\w+) finished the race in (\d+) seconds and (\w+) finished it in (\d+) seconds, so _ was "
                         r"(faster|slower)\.", stem):
        return m[1] if (int(m[2]) < int(m[4])) == (m[5] == "faster") else m[3]
    if m := re.fullmatch(r"A farmer has (\d+) cows and buys (\d+) more\..*", stem):
        return str(int(m[1]) + int(m[2]))
    if m := re.fullmatch(r"A box holds (\d+) rows of (\d+) apples\..*", stem):
        return str(int(m[1]) * int(m[2]))
    if m := re.fullmatch(r"If today is (\w+), what day of the week will it be in (\d+) days\?", stem):
        return sy.DAYS[(sy.DAYS.index(m[1]) + int(m[2])) % 7]
    if m := re.fullmatch(r"A basket holds (\d+) apples\. After (\d+) more apples are put in, the basket holds", stem):
        return f"{int(m[1]) + int(m[2])} apples"
    if m := re.fullmatch(r"(\w+) had (\d+) stickers and gave (\d+) of them to \w+\..*", stem):
        return str(int(m[2]) - int(m[3]))
    if m := re.fullmatch(r"Share (\d+) cookies equally among (\d+) friends\.", stem):
        return f"Give each friend {int(m[1]) // int(m[2])} cookies."
    if m := re.fullmatch(r"Buy the cheaper of two bags of rice; one costs (\d+) dollars and the other costs (\d+) "
                         r"dollars\.", stem):
        return f"Buy the bag that costs {min(int(m[1]), int(m[2]))} dollars."
    if (m := re.fullmatch(r"How do I (.+)\?", stem)) and m[1] in dict(sy.TOOLS):
        return f"Use {dict(sy.TOOLS)[m[1]]} to {m[1]}."
    if m := re.fullmatch(r"How do I (.+)\?", stem):
        return {goal: works for goal, works, _ in sy.PROCEDURES}[m[1]]
    if m := re.fullmatch(r"\w+ could not put the (.+) into the (.+) because the _ was too (large|small)\.", stem):
        return m[1] if m[3] == "large" else m[2]
    if m := re.fullmatch(r"Planning the week: Today is (\w+), so (tomorrow will be|yesterday was)", stem):
        return f"{sy.DAYS[(sy.DAYS.index(m[1]) + (1 if m[2].startswith('tomorrow') else -1)) % 7]}."
    if m := re.fullmatch(r"A train travels (\d+) kilometres every hour\. How far does it travel in (\d+) hours\?", stem):
        return f"{int(m[1]) * int(m[2])} kilometres"
    if m := re.fullmatch(r"\w+ (.+)\. How would \w+ feel afterwards\?", stem):
        return next(c for c in choices if c in (sy.HAPPY_FEELINGS if m[1] in sy.HAPPY_EVENTS else sy.SAD_FEELINGS))
    if m := re.fullmatch(r"To (.+), a person should use", stem):
        return dict(sy.TOOLS)[m[1]]
    if m := re.fullmatch(r"Which of these is the (largest|smallest)\?", stem):
        return (max if m[1] == "largest" else min)(choices, key=TIER.__getitem__)
    if m := re.fullmatch(r"(\w+) held a hand near .+ while (\w+) held a hand near .+, so _ had a (warm|cold) hand\.", stem):
        return m[1] if m[3] == "warm" else m[2]
    if m := re.fullmatch(r"\w+ wanted to (.+)\. What does \w+ need to do before this\?", stem):
        return dict(sy.PREREQUISITES)[m[1]]
    if (m := re.fullmatch(r"([^:]+): (.+)", stem)) and m[1] in ROUTINE_ENDINGS:
        return ROUTINE_ENDINGS[m[1]]
    pools = {"Which of these animals can fly?": sy.FLYERS, "Which of these is the hottest?": sy.HOT,
             "Touching which of these could burn a person's hand?": sy.HOT,
             "Which of these objects will sink to the bottom of a pond?": sy.SINKERS,
             "An object that floats on water is": sy.FLOATERS}
    if stem in pools:
        return next(c for c in choices if c in pools[stem])
    if stem == "Find something that will float in a bucket of water.":
        return next(c for c in choices if any(f"Drop in {f} " in c for f in sy.FLOATERS))
    if stem.startswith("Water freezes at 0 degrees Celsius."):
        return next(c for c in choices if c.startswith("-"))
    return None


@pytest.mark.parametrize("benchmark", [b for b in sy.BENCHMARKS if b != "boolq"])
def test_multiple_choice_gold_is_right(benchmark):
    for split in sy.SPLITS:
        for record in sy.synthetic_commonsense_records(benchmark, 300, 1, split):
            stem, choices, gold = gold_choice(benchmark, record)
            expected = _expected_choice(benchmark, stem, choices)
            assert expected is not None, f"no check for {record['instruction']!r}"  # every template is checked
            assert gold == expected and choices.count(expected) == 1, record["instruction"]


def test_size_questions_only_compare_far_apart_tiers():
    rng = random.Random(0)
    for _ in range(500):
        small, big = sy._size_pair(rng)
        assert TIER[big] - TIER[small] >= 2


# --------------------------------------------------------------------------------------------
# The training mix
# --------------------------------------------------------------------------------------------
def test_mix_follows_commonsense_170k_proportions():
    assert sum(sy.COMMONSENSE_170K_SIZES.values()) == 170_420
    assert sy.mix_counts(170_420) == sy.COMMONSENSE_170K_SIZES
    for n in (0, 1, 7, 2000):
        assert sum(sy.mix_counts(n).values()) == n
    counts = sy.mix_counts(2000)
    assert counts["winogrande"] == 742 and counts["arc_challenge"] == 13


def test_training_mix_is_interleaved_train_split_records():
    records = sy.synthetic_commonsense_training(2000, 0)
    formats = Counter(r["instruction"].rsplit("Answer format: ", 1)[1] for r in records)
    counts = sy.mix_counts(2000)
    assert formats["true/false"] == counts["boolq"] and formats["option1/option2"] == counts["winogrande"]
    assert formats["answer1/answer2/answer3"] == counts["siqa"]
    first = Counter(r["instruction"].rsplit("Answer format: ", 1)[1] for r in records[:400])
    assert len(first) == 6  # any prefix mixes every format (4-answer ARC/OBQA share one), not one benchmark first
    per_benchmark = {b: {r["instruction"] for r in sy.synthetic_commonsense_records(b, counts[b], 0, "train")}
                     for b in sy.BENCHMARKS}
    assert {r["instruction"] for r in records} == set().union(*per_benchmark.values())


def test_bad_arguments_and_aliases():
    with pytest.raises(ValueError, match="valid: boolq"):
        sy.synthetic_commonsense_records("commonsenseqa", 3, 0, "train")
    with pytest.raises(ValueError, match="split"):
        sy.synthetic_commonsense_records("boolq", 3, 0, "validation")
    with pytest.raises(ValueError):
        sy.synthetic_commonsense_records("boolq", -1, 0, "train")
    assert sy.synthetic_commonsense_records("boolq", 0, 0, "train") == []
    assert sy.synthetic_commonsense_records("social_i_qa", 5, 0, "test") == sy.synthetic_commonsense_records("siqa", 5, 0, "test")
