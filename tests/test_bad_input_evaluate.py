"""Bad input to the scoring entry point and the data readers (issue 11, second part).

(a) A catalogue of bad inputs through the entry point of `python -m astra_repro.evaluate`: each must exit with
status 2 and print one `error:` line naming the fix, with no traceback; an output folder, if one was made, carries a
FAILED file with the same message and no metrics.json. Every case runs in process through `astra_repro.evaluate.main`,
the function the command line calls (tests/entry_points.py); three diverse ones also as a real `python -m
astra_repro.evaluate` in subprocesses, at once.
(b) The reader fixes, in process: empty, truncated, non-UTF-8 and damaged files, wrong fields and values, each a
one-line ConfigError naming the file (and record) and the key to fix."""

import gzip
import json
import re
from pathlib import Path

import pytest
from entry_points import Outcome, run_in_process, run_subprocesses
from helpers import tiny_cfg, tiny_evaluator_overrides
from omegaconf import DictConfig, OmegaConf

from astra_repro import runs
from astra_repro.config_check import check_eval_config
from astra_repro.spec import RunSpec
from astra_repro.data import code_sources, commonsense_sources, glue_sources
from astra_repro.data.sources import read_json_records, read_text
from astra_repro.errors import ConfigError
from astra_repro.evaluate import evaluate
from astra_repro.evaluators import get_evaluator
from astra_repro.evaluators.code import read_pissa_prompts
from astra_repro.evaluators.code_data import load_code_problems
from astra_repro.evaluators.hendrycks_math import load_math_eval
from astra_repro.evaluators.lm_eval_tasks.llm_adapters import iter_docs

GSM8K_OK = {"question": "What is 1+1?", "answer": "1+1=2\n#### 2"}
BOOLQ_OK = {
    "instruction": "Please answer the following question with true or false, question: is water wet?\n\n"
                   "Answer format: true/false",
    "input": "", "output": "the correct answer is true", "answer": "true",
}
LATIN1 = '{"question": "caf\u00e9?", "answer": "#### 1"}\n'.encode("latin-1")
DATA_FILES = {
    "empty.jsonl": b"",
    "cut.jsonl": (json.dumps(GSM8K_OK) + '\n{"question": "Wh').encode(),
    "latin1.jsonl": LATIN1,
    "no_answer.jsonl": (json.dumps(GSM8K_OK) + "\n" + json.dumps({"question": "2+2?"}) + "\n").encode(),
    "no_gold.jsonl": (json.dumps({"question": "2+2?", "answer": "it is five"}) + "\n").encode(),
    "math_no_gold.jsonl": (json.dumps({"problem": "2+2?", "solution": "It is 4."}) + "\n").encode(),
    "he_cut.jsonl": b'{"task_id": "HumanEval/0", "prompt": "def f():\\n"}\n{"task_id": "Hum',
    "boolq_no_answer.json": json.dumps([BOOLQ_OK, {k: v for k, v in BOOLQ_OK.items() if k != "answer"}]).encode(),
    "glue_latin1.tsv": "sentence\tlabel\nun caf\u00e9 \t1\n".encode("latin-1"),
}
TARGET_ERROR = r"^give exactly one TARGET: base, a run folder or a model folder \(python -m astra_repro\.evaluate --help\)$"
MODEL_FOLDER_ERROR = r"^model folder .*{} cannot be loaded \(.*not a valid JSON file\); give a folder saved with save_pretrained"

# (command line after `python -m astra_repro.evaluate`, the error line's regex)
CATALOGUE = [
    ("", TARGET_ERROR),
    ("base base", TARGET_ERROR),
    ("--fast base", r"^unknown option '--fast'; give TARGET and key=value overrides"),
    ("{tmp}/no_such_folder", r"^TARGET '.*no_such_folder' is neither `base` nor an existing folder"),
    ("{tmp}/neither", r"^'.*neither' is not a run folder \(config\.yaml \+ metrics\.json/init\) nor a model folder"),
    ("{tmp}/run_no_export", r"^run run_no_export has no exported model yet; finish it first"),
    ("{tmp}/run_bad_yaml", r"^run folder .*run_bad_yaml has an unreadable config\.yaml or metrics\.json \((Parser|Scanner)Error"),
    ("{tmp}/model_corrupt", MODEL_FOLDER_ERROR.format("model_corrupt")),
    ("{tmp}/model_empty", MODEL_FOLDER_ERROR.format("model_empty")),
    ("base task=bogus", r"^unknown task 'bogus'; valid: code, commonsense, glue, math \(set task=<name>\)$"),
    ("base method=bogus", r"^unknown method 'bogus'; valid: .*lora.*\(set method=<name>\)$"),
    ("base evaluators=[nope]", r"^evaluators=\['nope'\] are not evaluators of this task; valid: gsm8k, math$"),
    ("base evaluators=3", r"^evaluators=3 is not a name or a list of names"),
    ("base nosuchkey=1", r"^unknown key 'nosuchkey'.*\(a new key is added with \+nosuchkey=\.\.\.\)$"),
    ("base seed=abc", r"^seed='abc' is not an integer; set seed=<integer>$"),
    ("base eval.backend=bogus", r"^eval\.backend='bogus' is not valid; use one of auto, hf, vllm$"),
    ("base force=maybe", r"^force='maybe' is not a boolean; use force=true or force=false$"),
    ("base task.evaluators.gsm8k.n=-3", r"^task\.evaluators\.gsm8k\.n=-3 must be >= 1"),
    ("base task.evaluators.gsm8k.batch_size=0", r"^task\.evaluators\.gsm8k\.batch_size=0 must be >= 1"),
    ("base task.evaluators.math.max_new_tokens=abc",
     r"^task\.evaluators\.math\.max_new_tokens='abc' is not an integer"),
    ("base evaluators=[gsm8k] output_root={tmp}/a_file/runs", r"^cannot write to .*a_file.*; set output_root=<a writable folder>$"),
    ("base evaluators=[gsm8k] task.evaluators.gsm8k.path={tmp}/missing.jsonl",
     r"^data file '.*missing\.jsonl' does not exist; fix task\.evaluators\.gsm8k\.path \(or unset it\)$"),
    ("base evaluators=[gsm8k] task.evaluators.gsm8k.path={tmp}/empty.jsonl",
     r"empty\.jsonl: the file is empty; point task\.evaluators\.gsm8k\.path at a file with records$"),
    ("base evaluators=[gsm8k] task.evaluators.gsm8k.path={tmp}/cut.jsonl", r"cut\.jsonl:2: not a JSON object .*truncated line"),
    ("base evaluators=[gsm8k] task.evaluators.gsm8k.path={tmp}/latin1.jsonl", r"latin1\.jsonl: not UTF-8 text"),
    ("base evaluators=[gsm8k] task.evaluators.gsm8k.path={tmp}/no_answer.jsonl",
     r"no_answer\.jsonl: record 2: GSM8K eval records need question/answer"),
    ("base evaluators=[gsm8k] task.evaluators.gsm8k.path={tmp}/no_gold.jsonl",
     r"no_gold\.jsonl: record 1: answer 'it is five' has no gold number"),
    ("base evaluators=[math] task.evaluators.math.path={tmp}/math_no_gold.jsonl",
     r"math_no_gold\.jsonl: no record has a gold answer .*; point task\.evaluators\.math\.path at a MATH test file$"),
    ("base task=code evaluators=[humaneval] task.evaluators.humaneval.path={tmp}/he_cut.jsonl",
     r"he_cut\.jsonl:2: not a JSON object .*truncated line"),
    ("base task=commonsense evaluators=[boolq] task.evaluators.boolq.source=local "
     "task.evaluators.boolq.path={tmp}/boolq_no_answer.json",
     r"boolq_no_answer\.json: record 1 is not a boolq LLM-Adapters record \(no 'answer' field\); point task\.evaluators\.boolq\.path"),
    ("base task=glue task.data.path.validation={tmp}/glue_latin1.tsv", r"glue_latin1\.tsv: not UTF-8 text"),
]
# The inputs found bad only while scoring: their output folder exists and must say why it stopped.
FAILS_WHILE_SCORING = [args for args, _ in CATALOGUE if re.search(r"\.(jsonl?|tsv)\b", args)]
# Through a real subprocess too: a config-group typo, a bad data file (found while scoring, in a folder that must say
# so) and an unwritable output_root.
SUBPROCESS_CASES = [
    "base task=bogus",
    "base evaluators=[gsm8k] task.evaluators.gsm8k.path={tmp}/cut.jsonl",
    "base evaluators=[gsm8k] output_root={tmp}/a_file/runs",
]


def make_inputs(tmp: Path) -> None:
    for name, content in DATA_FILES.items():
        (tmp / name).write_bytes(content)
    (tmp / "a_file").write_text("not a folder")
    (tmp / "neither").mkdir()
    for name, config_json in (("model_corrupt", "{"), ("model_empty", "")):
        (tmp / name).mkdir()
        (tmp / name / "config.json").write_text(config_json)
    (tmp / "run_no_export" / "init").mkdir(parents=True)  # a run stopped after its init: nothing to score yet
    plan = {"model": {"name": "tiny_llama", "dtype": "float32"}, "task": {"name": "math"}, "method": {"name": "lora"},
            "recipe": "demo", "hp": {"rank": 4}, "seed": 0}
    (tmp / "run_no_export" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(plan)))
    (tmp / "run_bad_yaml" / "init").mkdir(parents=True)
    (tmp / "run_bad_yaml" / "config.yaml").write_text("model: [tiny_llama\n")


def command_line(args: str, tmp: Path, output_root: Path) -> list[str]:
    """The case's arguments plus tiny_llama and its task's shrunk evaluators (a key the case sets is left to it)."""
    own = args.format(tmp=tmp).split()
    task = next((a.split("=", 1)[1] for a in own if a.startswith("task=")), "math")
    shrink = [o for o in tiny_evaluator_overrides(task) if not any(a.startswith(o.split("=")[0] + "=") for a in own)]
    root = [] if "output_root=" in args else [f"output_root={output_root}"]
    return [*own, "model=tiny_llama", *shrink, *root]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("evaluate_catalogue")
    make_inputs(tmp)
    return tmp


def check_one_line_error(result: Outcome, args: str, message: str, output_root: Path) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert not any("Traceback" in line for line in lines), result.stderr[-2000:]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and errors[0] == lines[-1], lines[-5:]
    assert re.search(message, errors[0][len("error: "):]), errors[0]
    folders = [config.parent for config in output_root.rglob("config.yaml")] if output_root.exists() else []
    if args in FAILS_WHILE_SCORING:
        assert folders, "the output folder was expected to exist"
    for folder in folders:  # none looks finished; each says why it stopped
        assert not runs.is_complete(folder)
        assert (folder / runs.FAILED_FILE).read_text().strip() == f"ConfigError: {errors[0][len('error: '):]}"


def test_the_catalogue_is_long_enough():
    assert len(CATALOGUE) >= 15 and len(FAILS_WHILE_SCORING) >= 8
    assert set(SUBPROCESS_CASES) <= {args for args, _ in CATALOGUE}


@pytest.mark.parametrize("args,message", CATALOGUE, ids=[a or "<nothing>" for a, _ in CATALOGUE])
def test_bad_input_is_one_line_through_the_entry_point(inputs, tmp_path, capfd, args, message):
    output_root = tmp_path / "out"
    result = run_in_process("astra_repro.evaluate", command_line(args, inputs, output_root), inputs, capfd)
    check_one_line_error(result, args, message, output_root)


@pytest.fixture(scope="module")
def subprocess_outcomes(inputs):
    roots = [inputs / f"out_{index}" for index in range(len(SUBPROCESS_CASES))]
    jobs = [command_line(args, inputs, root) for args, root in zip(SUBPROCESS_CASES, roots)]
    env = {"ASTRA_CACHE": str(inputs / "cache"), "ASTRA_RESULTS": str(inputs / "results")}
    results = run_subprocesses("astra_repro.evaluate", jobs, inputs, **env)
    return dict(zip(SUBPROCESS_CASES, zip(results, roots)))


@pytest.mark.parametrize("args", SUBPROCESS_CASES)
def test_bad_input_is_one_line_through_python_m(subprocess_outcomes, args):
    result, output_root = subprocess_outcomes[args]
    check_one_line_error(result, args, dict(CATALOGUE)[args], output_root)


# ------------------------------------------------------------------------------------------------- evaluate in process
def test_a_failed_evaluation_is_marked_and_a_rerun_after_the_fix_clears_it(tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps(GSM8K_OK) + '\n{"question": "cut')
    argv = ["base", "model=tiny_llama", *tiny_evaluator_overrides("math"), "evaluators=[gsm8k]",
            f"task.evaluators.gsm8k.path={data}", f"output_root={tmp_path / 'out'}"]
    with pytest.raises(ConfigError, match=r"gsm8k\.jsonl:2"):
        evaluate(argv)
    (folder,) = [p.parent for p in (tmp_path / "out").rglob("config.yaml")]
    assert (folder / runs.FAILED_FILE).read_text().startswith("ConfigError: ") and not runs.is_complete(folder)
    data.write_text("".join(json.dumps(GSM8K_OK) + "\n" for _ in range(4)))  # the fix: the same path, now valid
    assert evaluate(argv) == folder
    assert runs.is_complete(folder) and not (folder / runs.FAILED_FILE).exists()


@pytest.mark.parametrize("override,message", [
    ("seed=-1", r"^seed=-1 must be >= 0"),
    ("force=2", r"^force=2 is not a boolean"),
    ("eval.backend=gpu", r"^eval\.backend='gpu' is not valid"),
    ("task.evaluators.gsm8k.n=0", r"^task\.evaluators\.gsm8k\.n=0 must be >= 1"),
    ("task.evaluators.gsm8k.n=2.5", r"^task\.evaluators\.gsm8k\.n=2\.5 is not an integer"),
    ("task.evaluators.math.max_new_tokens=0", r"^task\.evaluators\.math\.max_new_tokens=0 must be >= 1"),
    ("task.evaluators.gsm8k.synthetic_seed=-1", r"^task\.evaluators\.gsm8k\.synthetic_seed=-1 must be >= 0"),
])
def test_evaluate_checks_the_keys_it_reads(override, message):
    with pytest.raises(ConfigError, match=message):
        check_eval_config(tiny_cfg(override))


@pytest.mark.parametrize("task,override,message", [
    ("code", "task.evaluators.humaneval.workers=0", r"^task\.evaluators\.humaneval\.workers=0 must be >= 1"),
    ("code", "task.evaluators.mbpp.timeout_s=0", r"^task\.evaluators\.mbpp\.timeout_s=0 must be > 0"),
    ("glue", "task.evaluators.glue_dev.max_length=1", r"^task\.evaluators\.glue_dev\.max_length=1 must be >= 2"),
    ("commonsense", "task.evaluators.piqa.batch_size=0", r"^task\.evaluators\.piqa\.batch_size=0 must be >= 1"),
])
def test_evaluator_settings_are_checked_for_every_task(task, override, message):
    cfg = tiny_cfg(f"task={task}", override)
    with pytest.raises(ConfigError, match=message):
        check_eval_config(cfg)
    with pytest.raises(ConfigError, match=message):  # a training run scores too: it is refused before training
        RunSpec.from_config(cfg)


def test_auto_batch_size_is_taken_only_where_lm_eval_sizes_batches():
    check_eval_config(tiny_cfg("task=commonsense", "scale=paper"))  # the shipped paper scale: batch_size auto
    with pytest.raises(ConfigError, match=r"^task\.evaluators\.gsm8k\.batch_size='auto' is not an integer"):
        check_eval_config(tiny_cfg("task.evaluators.gsm8k.batch_size=auto", "scale=paper"))


# ------------------------------------------------------------------------------------------------- shared reader
def write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_read_text_names_the_setting_and_reads_gzip_and_a_bom(tmp_path):
    with pytest.raises(ConfigError, match=r"^data file '.*nope\.jsonl' does not exist; fix my\.key \(or unset it\)$"):
        read_text(tmp_path / "nope.jsonl", "my.key")
    with pytest.raises(ConfigError, match=r": cannot be read \(Is a directory\); point my\.key at a readable data file$"):
        read_text(tmp_path, "my.key")
    with pytest.raises(ConfigError, match=r"bad\.jsonl\.gz: cannot be read \(Not a gzipped file"):
        read_text(write(tmp_path / "bad.jsonl.gz", "plain text"), "my.key")
    with pytest.raises(ConfigError, match=r"cut\.jsonl\.gz: cannot be read"):
        read_text(write(tmp_path / "cut.jsonl.gz", gzip.compress(b'{"a": 1}\n' * 50)[:30]), "my.key")
    rows = [{"a": 1}, {"a": 2}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    assert read_json_records(write(tmp_path / "ok.jsonl.gz", gzip.compress(text.encode()))) == rows
    assert read_json_records(write(tmp_path / "bom.jsonl", "\ufeff" + text)) == rows


# ------------------------------------------------------------------------------------------------- GLUE
@pytest.mark.parametrize("name,content,message", [
    ("latin1.tsv", "sentence\tlabel\ncaf\u00e9 \t1\n".encode("latin-1"), r"latin1\.tsv: not UTF-8 text \(bad byte at offset 18\)"),
    ("latin1.jsonl", '{"sentence": "caf\u00e9", "label": 1}\n'.encode("latin-1"), r"latin1\.jsonl: not UTF-8 text"),
    ("empty.tsv", b"", r"empty\.tsv: the file is empty; point task\.data\.path\.validation at a file with records$"),
    ("empty.json", b"  \n", r"empty\.json: the file is empty; point task\.data\.path\.validation at"),
])
def test_glue_files_that_are_not_text_or_empty_are_one_line_errors(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(ConfigError, match=message) as err:
        glue_sources.load_glue_split("sst2", "validation", {"path": {"validation": str(path)}})
    assert "\n" not in str(err.value)


def test_a_non_utf8_raw_mrpc_file_names_the_glue_dir(tmp_path):
    folder = tmp_path / "MRPC"
    folder.mkdir()
    write(folder / "msr_paraphrase_train.txt", "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\tA caf\u00e9.\tB.\n".encode("latin-1"))
    write(folder / "dev_ids.tsv", "1\t2\n")
    with pytest.raises(ConfigError, match=r"msr_paraphrase_train\.txt: not UTF-8 text"):
        glue_sources.load_glue_split("mrpc", "validation", {"glue_dir": str(tmp_path)})
    write(folder / "dev_ids.tsv", "")
    with pytest.raises(ConfigError, match=r"dev_ids\.tsv: the file is empty; point task\.data\.glue_dir at"):
        glue_sources.load_glue_split("mrpc", "validation", {"glue_dir": str(tmp_path)})


# ------------------------------------------------------------------------------------------------- training readers
def jsonl(path: Path, rows: list) -> Path:
    return write(path, "".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("value", [None, 3, ["a list"]])
def test_a_training_record_whose_text_is_not_text_is_refused_with_its_place(tmp_path, value):
    rows = [{"instruction": "Sum it.", "output": "ok", "type": "GSM_SV"}, {"instruction": "Sum it.", "output": value}]
    path = jsonl(tmp_path / "train.jsonl", rows)
    cfg = OmegaConf.create({"path": str(path)})
    message = rf"train\.jsonl'?: record 2: field 'output' is {re.escape(repr(value))}, not text"
    with pytest.raises(ConfigError, match=message):  # record 2 although record 1 is not python: places count every record
        code_sources.load_code_training(cfg)
    with pytest.raises(ConfigError, match=message):
        commonsense_sources.load_commonsense_training(cfg)


# ------------------------------------------------------------------------------------------------- commonsense test sets
@pytest.mark.parametrize("name,content,message", [
    ("latin1.json", json.dumps([BOOLQ_OK]).replace("wet", "w\\u00e9t").encode().replace(b"\\u00e9", b"\xe9"), r"latin1\.json: not UTF-8 text"),
    ("empty.json", b"", r"empty\.json: the file is empty; point task\.evaluators\.boolq\.path at a file with records$"),
    ("none.json", b"[]", r"none\.json holds no records; point task\.evaluators\.boolq\.path at LLM-Adapters' boolq test\.json$"),
    ("cut.json", json.dumps([BOOLQ_OK, BOOLQ_OK])[:-30].encode(), r"cut\.json:1: not valid JSON"),
    ("no_answer.json", json.dumps([{k: v for k, v in BOOLQ_OK.items() if k != "answer"}]).encode(),
     r"no_answer\.json: record 0 is not a boolq LLM-Adapters record \(no 'answer' field\); point task\.evaluators\.boolq\.path"),
    ("numbers.json", b"[1, 2]", r"numbers\.json: record 1: a int, not a JSON object"),
])
def test_commonsense_test_files_are_read_strictly(tmp_path, name, content, message):
    path = write(tmp_path / name, content)
    with pytest.raises(ConfigError, match=message) as err:
        list(iter_docs("boolq", path))
    assert "\n" not in str(err.value)


def test_the_commonsense_evaluator_names_both_keys_of_its_file(tmp_path):
    path = write(tmp_path / "test.json", b"")
    block = {"source": "local", "path": str(path), "data_dir": None, "n": 2, "batch_size": 2}
    with pytest.raises(ConfigError, match=r"point task\.evaluators\.piqa\.path \(or task\.eval_data_dir\) at a file"):
        get_evaluator("piqa")(OmegaConf.create(block), "demo").evaluate(None)


# ------------------------------------------------------------------------------------------------- code problem files
@pytest.mark.parametrize("name,content,message", [
    ("cut.jsonl", b'{"task_id": "HumanEval/0"}\n{"task_', r"cut\.jsonl:2: not a JSON object .*truncated line"),
    ("latin1.jsonl", '{"task_id": "HumanEval/\u00e9"}\n'.encode("latin-1"), r"latin1\.jsonl: not UTF-8 text"),
    ("bad.jsonl.gz", b"not gzip", r"bad\.jsonl\.gz: cannot be read \(Not a gzipped file.*point task\.evaluators\.humaneval\.path"),
    ("rows.jsonl", b"[1, 2]\n", r"rows\.jsonl:1: a list, not a JSON object"),
    ("few.jsonl", b'{"task_id": "HumanEval/0", "prompt": "x"}\n',
     r"few\.jsonl: record HumanEval/0 lacks .*; is it a humaneval file\? point task\.evaluators\.humaneval\.path at EvalPlus"),
])
def test_humaneval_problem_files_are_read_strictly(tmp_path, name, content, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_code_problems("humaneval", write(tmp_path / name, content))
    assert "\n" not in str(err.value)


def test_a_missing_or_folder_problem_path_names_its_key(tmp_path):
    with pytest.raises(ConfigError, match=r"does not exist; fix task\.evaluators\.mbpp\.path"):
        load_code_problems("mbpp", tmp_path / "MbppPlus.jsonl")
    with pytest.raises(ConfigError, match=r"cannot be read \(Is a directory\); point task\.evaluators\.mbpp\.path"):
        load_code_problems("mbpp", tmp_path)


@pytest.mark.parametrize("content,message", [
    (b'{"type": "humaneval", "instruction": "### Instruction: x ### Response:"', r"p\.jsonl:1: not a JSON object .*truncated"),
    (b'{"type": "humaneval", "answer": "HumanEval/0"}\n', r"record 1: no 'instruction' field; expected pissa-dataset python test rows"),
    (b'{"type": "humaneval", "instruction": "### Instruction: x ### Response:"}\n', r"record 1: no 'answer' field"),
    (b'{"type": "humaneval", "instruction": null, "answer": "HumanEval/0"}\n', r"record 1: field 'instruction' is None, not text"),
    (b"", r"p\.jsonl: the file is empty; point task\.evaluators\.humaneval\.prompts_path at"),
])
def test_pissa_prompt_files_are_read_strictly(tmp_path, content, message):
    with pytest.raises(ConfigError, match=message):
        read_pissa_prompts(str(write(tmp_path / "p.jsonl", content)), "humaneval")


# ------------------------------------------------------------------------------------------------- math test files
def never_generates(*args, **kwargs):
    pytest.fail("generation started before the test data was checked")


@pytest.mark.parametrize("answer,message", [
    ("it is five", r"record 2: answer 'it is five' has no gold number"),
    ("so #### five", r"record 2: answer 'so #### five' has no gold number"),
    (5, r"record 2: field 'answer' is 5, not text"),
])
def test_a_gsm8k_answer_without_a_gold_number_is_refused_before_generating(tmp_path, monkeypatch, answer, message):
    path = jsonl(tmp_path / "gsm8k.jsonl", [GSM8K_OK, {"question": "2+2?", "answer": answer}])
    block = {"path": str(path), "hub": None, "synthetic_seed": 0, "n": None, "max_new_tokens": 4,
             "batch_size": 2}
    evaluator = get_evaluator("gsm8k")(OmegaConf.create(block), "demo")
    monkeypatch.setattr(evaluator, "generate", never_generates)
    with pytest.raises(ConfigError, match=rf"gsm8k\.jsonl: {message}"):
        evaluator.evaluate(None)


def math_block(path: Path) -> DictConfig:
    return OmegaConf.create({"path": str(path), "hub": None, "synthetic_seed": 0})


@pytest.mark.parametrize("rows,message", [
    ([{"problem": "a", "solution": "It is 4."}, {"problem": "b", "solution": "No box."}],
     r"math\.jsonl: no record has a gold answer \(a \\boxed\{\.\.\} in its solution\); point task\.evaluators\.math\.path"),
    ([{"problem": "a", "answer": "4"}, {"problem": "b", "answer": None}], r"math\.jsonl: record 2: field 'answer' is None, not text"),
    ([{"problem": "a", "answer": "4"}, {"problem": "b"}], r"math\.jsonl: record 2: unrecognised MATH eval record"),
    ([{"problem": "a", "answer": "4"}, {"problem": "b", "solution": "\\boxed{1}"}], r"math\.jsonl: record 2: MATH eval file mixes formats"),
])
def test_math_test_files_are_read_strictly(tmp_path, rows, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_math_eval(math_block(jsonl(tmp_path / "math.jsonl", rows)), None)
    assert "\n" not in str(err.value)


def test_math_files_that_are_not_text_name_the_evaluators_key(tmp_path):
    with pytest.raises(ConfigError, match=r"math\.jsonl: the file is empty; point task\.evaluators\.math\.path at"):
        load_math_eval(math_block(write(tmp_path / "math.jsonl", b"")), None)
    with pytest.raises(ConfigError, match=r"does not exist; fix task\.evaluators\.math\.path"):
        load_math_eval(math_block(tmp_path / "nope.jsonl"), None)
