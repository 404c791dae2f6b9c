"""Commonsense evaluators: parsing of every LLM-Adapters instruction format (hand-written records and the real
files), scoring through lm-eval (a tiny model end to end; a constant-choice LM that must score the share of its
choice among the golds), the data-source logic (skipped, forced official, malformed), and lm-eval's official tasks
on a simulated HF cache, whose prompts must equal ours on the same documents."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from omegaconf import OmegaConf

pytest.importorskip("lm_eval")

import datasets  # noqa: E402
from lm_eval.api.model import LM  # noqa: E402

from astra_repro.data.sources import SyntheticDataWarning  # noqa: E402
from astra_repro.errors import ConfigError  # noqa: E402
from astra_repro.evaluators import commonsense  # noqa: E402
from astra_repro.evaluators.base import EVALUATORS, EvalTarget  # noqa: E402
from astra_repro.evaluators.lm_eval_tasks.llm_adapters import PREFIXES, iter_docs, record_to_doc  # noqa: E402
from astra_repro.evaluators.lm_eval_tasks.specs import BENCHMARKS  # noqa: E402
from astra_repro.paths import PROJECT_ROOT  # noqa: E402
from test_evaluator_declarations import assert_declared  # noqa: E402

SHARED = PROJECT_ROOT.parent / "shared" / "data" / "commonsense"
SHARED_COUNTS = {"boolq": 3270, "piqa": 1838, "siqa": 1954, "winogrande": 1267, "arc_easy": 2376, "arc_challenge": 1172, "openbookqa": 500}


# ---------------------------------------------------------------------------------------------------------------
# LLM-Adapters records, written the way its dataset/<task>/test.json files are (checked against the real files)
# ---------------------------------------------------------------------------------------------------------------
def llm_adapters_record(benchmark: str, stem: str, options: list[str], gold: int) -> dict:
    """gold indexes `options`; for BoolQ options is empty and gold 1 = true."""
    if benchmark == "boolq":
        answer = "true" if gold == 1 else "false"
        return {"instruction": f"{PREFIXES['boolq']}{stem}\n\nAnswer format: true/false", "input": "",
                "output": f"the correct answer is {answer}", "answer": answer}
    label = {"piqa": "solution", "hellaswag": "ending", "winogrande": "option"}.get(benchmark, "answer")
    keys = [f"{label}{i}" for i in range(1, len(options) + 1)]
    listed = [f"{label.capitalize()}{i}: {o}" for i, o in enumerate(options, 1)]
    if benchmark == "piqa":
        body = "\n\n".join(listed) + "\n\n"
    elif benchmark == "winogrande":
        body = " ".join(listed) + " "
    else:
        body = " ".join(listed) + "\n\n"
    instruction = f"{PREFIXES[benchmark]}{stem}\n\n{body}Answer format: {'/'.join(keys)}"
    return {"instruction": instruction, "input": "", "output": f"the correct answer is {keys[gold]}", "answer": keys[gold]}


# (stem, options, gold) per benchmark; golds are uneven so that a constant choice scores neither 0 nor 100
FIXTURES = {
    "boolq": [("is the sky blue?", [], 1), ("do cats bark?", [], 0), ("is ice cold?", [], 1), ("is fire wet?", [], 0), ("is water wet?", [], 1)],
    "piqa": [("dry wet hands", ["use a towel ", "use a  sponge"], 0), ("open a jar", ["twist the lid", "hit it"], 0),
             ("cool soup", ["blow on it", "heat it"], 0), ("cut bread", ["use a spoon", "use a knife"], 1)],
    "hellaswag": [("Removing ice from car: [header] How to clear ice. [title] Start the car.",
                   ["[step] Scrape it.", "Eat it.", "Paint it.", "Sing."], 0),
                  ("Playing drums: People stand behind drums. A man", ["plays a pipe.", "starts to play.", "sits down.", "leaves."], 1),
                  ("Cooking: A woman boils water. She", ["adds pasta.", "swims.", "flies.", "sleeps."], 0)],
    "winogrande": [("Sarah was a better surgeon than Maria so _ got the easier cases.", ["Sarah", "Maria"], 1),
                   ("The cup fell off the table because _ was unstable.", ["the cup", "the table"], 1),
                   ("John lent Bill money because _ was generous.", ["John", "Bill"], 0)],
    "arc_easy": [("Which is a mammal?", ["shark", "whale", "trout", "eel"], 1), ("What melts ice?", ["heat", "cold", "dark"], 0),
                 ("Pick five.", ["a", "b", "c", "d", "e"], 4), ("Which is a gas?", ["rock", "steam", "wood", "iron"], 1)],
    "arc_challenge": [("Which force pulls objects down?", ["gravity", "friction", "magnetism", "tension"], 0),
                      ("Which is renewable?", ["coal", "oil", "wind", "gas"], 2), ("What do plants need?", ["sand", "light", "salt", "iron"], 1)],
    "openbookqa": [("The sun is responsible for", ["puppies learning", "plants sprouting", "rocks", "cars"], 1),
                   ("Fog is most likely around:", ["a marsh", "a tundra", "the plains", "a desert"], 0),
                   ("A magnet attracts", ["wood", "iron", "glass", "paper"], 1)],
    "siqa": [("Tracy resisted Riley's attacks. What does Tracy need to do before this?", ["make a plan", "go home", "find a place"], 2),
             ("Sydney could not help. How would you describe Sydney?", ["sympathetic", "unable", "incredulous"], 0),
             ("Alex won. How does Alex feel?", ["sad", "proud", "tired"], 1)],
}
EXPECTED_FIRST_DOC = {
    "boolq": {"query": "Question: is the sky blue?\nAnswer:", "choices": ["no", "yes"], "gold": 1},
    "piqa": {"query": "Question: dry wet hands\nAnswer:", "choices": ["use a towel ", "use a  sponge"], "gold": 0},
    # lm-eval's hellaswag preprocess: " [title]" -> ". ", other [..] removed (a leading "[step] " leaves a space)
    "hellaswag": {"query": "Removing ice from car: How to clear ice.. Start the car.",
                  "choices": [" Scrape it.", "Eat it.", "Paint it.", "Sing."], "gold": 0},
    "winogrande": {"sentence": "Sarah was a better surgeon than Maria so _ got the easier cases.", "option1": "Sarah", "option2": "Maria", "answer": "2"},
    "arc_easy": {"query": "Question: Which is a mammal?\nAnswer:", "choices": ["shark", "whale", "trout", "eel"], "gold": 1},
    "arc_challenge": {"query": "Question: Which force pulls objects down?\nAnswer:", "choices": ["gravity", "friction", "magnetism", "tension"], "gold": 0},
    "openbookqa": {"query": "The sun is responsible for", "choices": ["puppies learning", "plants sprouting", "rocks", "cars"], "gold": 1},
    "siqa": {"query": "Q: Tracy resisted Riley's attacks. What does Tracy need to do before this?\nA:",
             "choices": ["make a plan", "go home", "find a place"], "gold": 2},
}


def write_records(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=4), encoding="utf-8")
    return path


def write_fixture_dir(root: Path, benchmarks=tuple(FIXTURES)) -> Path:
    for name in benchmarks:
        records = [llm_adapters_record(name, *f) for f in FIXTURES[name]]
        write_records(root / BENCHMARKS[name].folder / "test.json", records)
    return root


def evaluator(name: str, **cfg):
    block = {"source": "auto", "path": None, "data_dir": None, "n": None, "batch_size": 4}
    return EVALUATORS.get(name)(OmegaConf.create({**block, **cfg}), "demo")


class ConstantChoiceLM(LM):
    """Log-likelihood 0 for choice `k` (lm-eval's Instance.idx: the choice's index, also for winogrande's per-choice
    contexts) and -10 for every other choice."""

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def loglikelihood(self, requests):
        return [(0.0 if r.idx == self.k else -10.0, False) for r in requests]

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError

    def generate_until(self, requests):
        raise NotImplementedError


@pytest.fixture(autouse=True)
def empty_hf_datasets_cache(tmp_path, monkeypatch):
    """No test may see (or fill) a real HF datasets cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


# ---------------------------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FIXTURES))
def test_every_instruction_format_parses_to_the_official_prompt_fields(name):
    docs = [record_to_doc(name, llm_adapters_record(name, *f), i) for i, f in enumerate(FIXTURES[name])]
    assert {k: v for k, v in docs[0].items() if k != "record_index"} == EXPECTED_FIRST_DOC[name]
    assert [d["record_index"] for d in docs] == list(range(len(docs)))
    for doc, (_, options, gold) in zip(docs, FIXTURES[name]):
        if name == "winogrande":
            assert doc["answer"] == str(gold + 1)
        else:
            assert doc["gold"] == gold and 0 <= doc["gold"] < len(doc["choices"])


def test_real_llm_adapters_records_parse_verbatim():
    """Records copied from the real files (incl. an ARC item with five options and PIQA's trailing space)."""
    piqa = {"instruction": "Please choose the correct solution to the question: dresser\n\nSolution1: replace drawer with bobby pin \n\n"
            "Solution2: finish, woodgrain with  bobby pin \n\nAnswer format: solution1/solution2", "answer": "solution2"}
    assert record_to_doc("piqa", piqa, 0)["choices"] == ["replace drawer with bobby pin ", "finish, woodgrain with  bobby pin "]
    wino = {"instruction": "Please choose the correct answer to fill in the blank to complete the given sentence: Sarah was a much better "
            "surgeon than Maria so _ always got the easier cases.\n\nOption1: Sarah Option2: Maria Answer format: option1/option2", "answer": "option2"}
    assert record_to_doc("winogrande", wino, 0)["option2"] == "Maria"
    hella = {"instruction": "Please choose the correct ending to complete the given sentence: Playing drums: People are standing behind "
             "large drums. A man\n\nEnding1: is playing a bag pipe. Ending2: starts to play around the drums. Ending3: begins playing a "
             "drum set. Ending4: begins playing the drums.\n\nAnswer format: ending1/ending2/ending3/ending4", "answer": "ending4"}
    doc = record_to_doc("hellaswag", hella, 0)
    assert doc["query"] == "Playing drums: People are standing behind large drums. A man" and doc["gold"] == 3
    assert doc["choices"][1] == "starts to play around the drums."
    five = llm_adapters_record("arc_easy", "Q?", ["a", "b", "c", "d", "e"], 4)
    assert five["instruction"].endswith("Answer5: e\n\nAnswer format: answer1/answer2/answer3/answer4/answer5")


@pytest.mark.skipif(not SHARED.exists(), reason="shared LLM-Adapters test files not present")
@pytest.mark.parametrize("name", list(SHARED_COUNTS))
def test_every_record_of_the_real_files_parses(name):
    docs = list(iter_docs(name, SHARED / BENCHMARKS[name].folder / "test.json"))
    assert len(docs) == SHARED_COUNTS[name]
    for doc in docs:
        if name == "winogrande":
            assert doc["sentence"].count("_") == 1 and doc["answer"] in ("1", "2")
        else:
            assert 2 <= len(doc["choices"]) <= 5 and 0 <= doc["gold"] < len(doc["choices"])
            assert all(c.strip() for c in doc["choices"])


@pytest.mark.parametrize(
    "record, problem",
    [
        ({"instruction": "Tell me: is it?\n\nAnswer format: true/false", "answer": "true"}, "does not start with"),
        ({"instruction": PREFIXES["arc_easy"] + "Q?\n\nAnswer1: a Answer3: c\n\nAnswer format: answer1/answer2/answer3",
          "answer": "answer1"}, "'Answer2: ' not found"),
        ({"instruction": PREFIXES["arc_easy"] + "Q?\n\nAnswer1: a Answer2: b\n\nAnswer format: answer1/answer2", "answer": "answer7"},
         "answer7"),
        ({"instruction": PREFIXES["arc_easy"] + "Q?\n\nAnswer1: a Answer2: b", "answer": "answer1"}, "Answer format"),
        ({"input": ""}, "string 'instruction'"),
    ],
)
def test_a_malformed_record_is_a_one_line_config_error_naming_file_and_index(tmp_path, record, problem):
    good = llm_adapters_record("arc_easy", *FIXTURES["arc_easy"][0])
    path = write_records(tmp_path / "data" / "ARC-Easy" / "test.json", [good, record])
    with pytest.raises(ConfigError) as err:
        evaluator("arc_easy", source="local", data_dir=str(tmp_path / "data")).evaluate(EvalTarget(ConstantChoiceLM(0), None))
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "record 1" in message and problem in message


# ---------------------------------------------------------------------------------------------------------------
# Scoring through lm-eval
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(FIXTURES))
@pytest.mark.parametrize("k", [0, 1])
def test_a_constant_choice_scores_the_share_of_that_gold(tmp_path, name, k):
    data_dir = write_fixture_dir(tmp_path / "data", [name])
    result = evaluator(name, source="local", data_dir=str(data_dir)).evaluate(EvalTarget(ConstantChoiceLM(k), None))
    golds = [gold for _, _, gold in FIXTURES[name]]
    expected = 100.0 * sum(g == k for g in golds) / len(golds)
    assert result.metrics["acc"] == pytest.approx(expected)
    assert_declared(result, type(evaluator(name)))  # the declaration in the result, its fields in every prediction
    if BENCHMARKS[name].has_acc_norm:  # a 0 beats -10 / length too
        assert result.metrics["acc_norm"] == pytest.approx(expected)
    else:
        assert result.metrics["acc_norm"] is None
    assert [p["gold"] for p in result.predictions] == golds
    assert all(p["pred"] == k and p["correct"] == (p["gold"] == k) for p in result.predictions)
    assert result.info["data_source"] == "local" and result.info["n_eval"] == len(golds)


@pytest.mark.skipif(not SHARED.exists(), reason="shared LLM-Adapters test files not present")
@pytest.mark.parametrize("name", ["boolq", "winogrande", "arc_challenge"])
def test_on_the_real_files_a_constant_choice_scores_the_share_of_that_answer(name):
    """Integration on the real LLM-Adapters files: every record goes through parsing and lm-eval, and choosing
    the first option always scores exactly the share of records whose answer is the first option."""
    records = json.loads((SHARED / BENCHMARKS[name].folder / "test.json").read_text())
    first = {"boolq": "false", "winogrande": "option1", "arc_challenge": "answer1"}[name]  # boolq choices: no, yes
    expected = 100.0 * sum(r["answer"] == first for r in records) / len(records)
    result = evaluator(name, source="local", data_dir=str(SHARED)).evaluate(EvalTarget(ConstantChoiceLM(0), None))
    assert result.info["n_eval"] == SHARED_COUNTS[name] and result.info["data_source"] == "local"
    assert result.metrics["acc"] == pytest.approx(expected)


def test_local_mode_end_to_end_on_a_tiny_model(tmp_path, tiny_model):
    model, tokenizer = tiny_model
    data_dir = write_fixture_dir(tmp_path / "data", ["arc_easy", "winogrande"])
    for name in ("arc_easy", "winogrande"):
        result = evaluator(name, data_dir=str(data_dir), n=3).evaluate(EvalTarget(model, tokenizer, None, "hf"))
        assert 0.0 <= result.metrics["acc"] <= 100.0
        assert len(result.predictions) == 3 and result.info["n_eval"] == 3 and result.info["n_available"] == len(FIXTURES[name])
        for pred, (_, options, _) in zip(result.predictions, FIXTURES[name]):
            assert len(pred["loglikelihoods"]) == len(options) and all(ll < 0 for ll in pred["loglikelihoods"])
            assert pred["pred"] == max(range(len(options)), key=pred["loglikelihoods"].__getitem__)
        assert result.info["backend"] == "hf" and result.info["num_fewshot"] == 0 and result.info["lm_eval_version"]
    # the eight evaluators share one HFLM per model
    shared = commonsense._LM_SLOT["lm"]
    assert commonsense.lm_for(EvalTarget(model, tokenizer, None, "hf"), 4)[0] is shared
    commonsense.release_lm()
    assert commonsense._LM_SLOT == {}


def test_missing_hellaswag_is_skipped_and_the_others_still_run(tmp_path, capsys):
    data_dir = write_fixture_dir(tmp_path / "data", ["piqa"])
    with pytest.warns(UserWarning, match="hellaswag"):
        skipped = evaluator("hellaswag", data_dir=str(data_dir)).evaluate(EvalTarget(ConstantChoiceLM(0), None))
    assert skipped.metrics == {} and skipped.predictions == []
    assert "hellaswag/test.json does not exist" in skipped.info["skipped"]
    assert "hellaswag skipped" in capsys.readouterr().out
    piqa = evaluator("piqa", data_dir=str(data_dir)).evaluate(EvalTarget(ConstantChoiceLM(0), None))
    assert piqa.metrics["acc"] == 75.0


def test_forced_official_without_a_cached_dataset_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as err:
        evaluator("piqa", source="official").evaluate(EvalTarget(ConstantChoiceLM(0), None))
    assert "\n" not in str(err.value) and "scripts/prepare_commonsense.py" in str(err.value)


def test_a_configured_path_that_does_not_exist_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        evaluator("piqa", path=str(tmp_path / "nope.json")).evaluate(EvalTarget(ConstantChoiceLM(0), None))


def test_auto_without_any_data_falls_back_to_synthetic():
    with pytest.warns(SyntheticDataWarning):
        result = evaluator("siqa", n=6).evaluate(EvalTarget(ConstantChoiceLM(0), None))
    assert result.info["data_source"] == "synthetic" and result.info["n_eval"] == 6


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_synthetic_records_of_every_benchmark_are_scored_like_a_local_file(name):
    with pytest.warns(SyntheticDataWarning):
        result = evaluator(name, source="synthetic", n=8).evaluate(EvalTarget(ConstantChoiceLM(0), None))
    golds = [p["gold"] for p in result.predictions]
    assert result.info["data_source"] == "synthetic" and len(golds) == 8
    assert result.metrics["acc"] == pytest.approx(100.0 * golds.count(0) / 8)


# ---------------------------------------------------------------------------------------------------------------
# Official tasks on a simulated HF cache: the official path is taken, and its prompts equal ours
# ---------------------------------------------------------------------------------------------------------------
def fake_hub_cache(cache: Path, repo_id: str, config: str | None, splits: list[str], rows: list[dict]) -> None:
    """What `load_dataset(repo_id, config)` leaves in the HF datasets cache, built offline from `rows`
    (the `datasets` cache layout: <org>___<name>/<config>/<version>/<hash>/<name>-<split>.arrow)."""
    scratch = cache / "_scratch"
    source = scratch / "rows.jsonl"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    datasets.load_dataset("json", data_files={s: str(source) for s in splits}, cache_dir=str(scratch / "build"))
    built = next(p for p in (scratch / "build" / "json").glob("*/*/*") if p.is_dir())
    org, name = repo_id.split("/")
    target = cache / f"{org}___{name}" / (config or "default") / "0.0.0" / built.name
    shutil.copytree(built, target)
    info_file = target / "dataset_info.json"  # the cache matches a config by the name recorded here
    info_file.write_text(json.dumps({**json.loads(info_file.read_text()), "config_name": config or "default"}))
    for arrow in target.glob("json-*.arrow"):
        arrow.rename(arrow.with_name(arrow.name.replace("json-", f"{name}-", 1)))
    shutil.rmtree(scratch)


OFFICIAL = {  # benchmark: (repo, config, splits, official rows, matching LLM-Adapters (stem, options, gold))
    "piqa": ("baber/piqa", None, ["train", "validation"],
             [{"goal": "dry wet hands", "sol1": "use a towel", "sol2": "use a sponge", "label": 0},
              {"goal": "open a jar", "sol1": "hit it", "sol2": "twist the lid", "label": 1}],
             [("dry wet hands", ["use a towel", "use a sponge"], 0), ("open a jar", ["hit it", "twist the lid"], 1)]),
    "arc_easy": ("allenai/ai2_arc", "ARC-Easy", ["train", "validation", "test"],
                 [{"id": "1", "question": "Which is a mammal?", "answerKey": "B",
                   "choices": {"text": ["shark", "whale", "eel"], "label": ["A", "B", "C"]}},
                  {"id": "2", "question": "What melts ice?", "answerKey": "1",
                   "choices": {"text": ["heat", "cold", "dark", "wind"], "label": ["1", "2", "3", "4"]}}],
                 [("Which is a mammal?", ["shark", "whale", "eel"], 1), ("What melts ice?", ["heat", "cold", "dark", "wind"], 0)]),
    "openbookqa": ("allenai/openbookqa", "main", ["train", "validation", "test"],
                   [{"id": "1", "question_stem": "A magnet attracts", "answerKey": "B",
                     "choices": {"text": ["wood", "iron", "glass", "paper"], "label": ["A", "B", "C", "D"]}}],
                   [("A magnet attracts", ["wood", "iron", "glass", "paper"], 1)]),
    "siqa": ("lighteval/siqa", None, ["train", "validation"],
             [{"context": "Alex won the race.", "question": "How does Alex feel?", "answerA": "sad", "answerB": "proud",
               "answerC": "tired", "label": "2"}],
             [("Alex won the race. How does Alex feel?", ["sad", "proud", "tired"], 1)]),
    "winogrande": ("allenai/winogrande", "winogrande_xl", ["train", "validation"],
                   [{"sentence": "John lent Bill money because _ was generous.", "option1": "John", "option2": "Bill", "answer": "1"}],
                   [("John lent Bill money because _ was generous.", ["John", "Bill"], 0)]),
    "hellaswag": ("Rowan/hellaswag", None, ["train", "validation"],
                  [{"ind": 1, "activity_label": "Cooking", "ctx_a": "A woman boils water.", "ctx_b": "She",
                    "ctx": "A woman boils water. She", "endings": ["adds pasta.", "swims.", "flies.", "sleeps."],
                    "source_id": "x", "split": "val", "split_type": "indomain", "label": "0"}],
                  [("Cooking: A woman boils water. She", ["adds pasta.", "swims.", "flies.", "sleeps."], 0)]),
    "boolq": ("aps/super_glue", "boolq", ["train", "validation"],
              [{"question": "is the sky blue", "passage": "The sky is blue.", "idx": 0, "label": 1}],
              [("is the sky blue?", [], 1)]),
}


@pytest.mark.parametrize("name", list(OFFICIAL))
def test_official_task_from_the_hf_cache_is_used_and_matches_the_local_prompt(tmp_path, name):
    repo, config, splits, rows, records = OFFICIAL[name]
    fake_hub_cache(datasets.config.HF_DATASETS_CACHE, repo, config, splits, rows)
    official = evaluator(name).evaluate(EvalTarget(ConstantChoiceLM(1), None))  # auto: no local data configured
    assert official.info["data_source"] == "official" and official.info["lm_eval_task"] == BENCHMARKS[name].official_task
    golds = [gold for _, _, gold in records]
    assert official.metrics["acc"] == pytest.approx(100.0 * sum(g == 1 for g in golds) / len(golds))

    path = write_records(tmp_path / "local.json", [llm_adapters_record(name, *r) for r in records])
    local = evaluator(name, path=str(path)).evaluate(EvalTarget(ConstantChoiceLM(1), None))
    assert local.info["data_source"] == "local"
    for o, loc in zip(official.predictions, local.predictions):
        assert (o["continuation"], o["gold"]) == (loc["continuation"], loc["gold"])
        if name == "boolq":  # the one prompt difference: LLM-Adapters BoolQ has no passage
            assert o["context"] == rows[0]["passage"] + "\n" + loc["context"]
        else:
            assert o["context"] == loc["context"]


def test_prepare_script_check_reports_what_is_cached(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_commonsense", PROJECT_ROOT / "scripts" / "prepare_commonsense.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--check", "--benchmarks", "piqa,boolq"]) == 1
    assert "piqa: piqa NOT cached" in capsys.readouterr().out
    repo, config, splits, rows, _ = OFFICIAL["piqa"]
    fake_hub_cache(datasets.config.HF_DATASETS_CACHE, repo, config, splits, rows)
    assert script.main(["--check", "--benchmarks", "piqa"]) == 0
    assert "piqa: piqa cached (2 documents)" in capsys.readouterr().out
