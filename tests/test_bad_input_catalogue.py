"""The catalogue of bad inputs (issue 11): each through the entry point of `python -m astra_repro.train`. Every one
must exit with status 2 and print one line naming the fix, with no traceback, and leave no run folder that looks
finished (a folder, if any, carries a FAILED file with the same message).

Every case runs in process through `astra_repro.train.main`, the function the command line calls (a second each;
tests/entry_points.py); three diverse ones also run as a real `python -m astra_repro.train` in subprocesses, at
once, for the interpreter's own exit status and stderr."""

import re
from pathlib import Path

import pytest
from entry_points import Outcome, run_in_process, run_subprocesses
from test_config_check import BAD_VALUES

DATA_FILES = {
    "empty.jsonl": b"",
    "cut.jsonl": b'{"query": "What is 1+1?", "response": "The answer is: 2"}\n{"query": "What',
    "latin1.jsonl": '{"query": "caf\u00e9 au lait?", "response": "The answer is: 1"}\n'.encode("latin-1"),
    "notjson.jsonl": b"query,response\nwhat is 1+1?,2\n",
    "scalar.json": b'"just a string"',
}

CATALOGUE = [(override, message) for override, message in BAD_VALUES] + [
    ("method=bogus", r"^unknown method 'bogus'; valid: .*lora.*\(set method=<name>\)$"),
    ("task=bogus", r"^unknown task 'bogus'; valid: "),
    ("trainer=bogus", r"^unknown trainer 'bogus'; valid: .*single"),
    ("calibration=bogus", r"^unknown calibration 'bogus'; valid: .*task"),
    ("evaluators=[nope]", r"^evaluators=\['nope'\] are not evaluators of this task; valid: gsm8k, math$"),
    ("task.data.path={tmp}/missing.jsonl", r"^data file '.*missing\.jsonl' does not exist; fix task\.data\.path"),
    ("task.data.path={tmp}/empty.jsonl", r"empty\.jsonl: the file is empty"),
    ("task.data.path={tmp}/cut.jsonl", r"cut\.jsonl:2: not a JSON object .*truncated line"),
    ("task.data.path={tmp}/latin1.jsonl", r"latin1\.jsonl: not UTF-8 text"),
    ("task.data.path={tmp}/notjson.jsonl", r"notjson\.jsonl:1: not a JSON object"),
    ("task.data.path={tmp}/scalar.json", r"scalar\.json:1: a str, not a JSON object with the record's fields$"),
    ("method=astra method.subspace=middle", r"^method\.subspace='middle' is not valid for astra; valid: "),
    ("method=astra method.use_dora=true", r"^astra does not combine with DoRA; set method\.use_dora=false$"),
    ("output_root={tmp}/a_file/runs", r"^cannot write to .*a_file.*; set output_root=<a writable folder>$"),
]

# Through a real subprocess too: a config-group typo (refused before Hydra starts), a bad data file (refused inside
# the Hydra entry, once the run folder exists) and an unwritable output_root.
SUBPROCESS_CASES = ["trainer=bogus", "task.data.path={tmp}/cut.jsonl", "output_root={tmp}/a_file/runs"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("catalogue")
    for name, content in DATA_FILES.items():
        (tmp / name).write_bytes(content)
    (tmp / "a_file").write_text("not a folder")
    return tmp


def command_line(override: str, tmp: Path, output_root: Path) -> list[str]:
    args = ["model=tiny_llama", "task.train.max_steps=1", "skip_eval=true"]
    if "output_root=" not in override:  # Hydra refuses a key given twice
        args.append(f"output_root={output_root}")
    return args + override.format(tmp=tmp).split(" ")


def check_one_line_error(result: Outcome, message: str, output_root: Path) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, result.stderr[-2000:]
    assert not any("Traceback" in line for line in lines), result.stderr[-2000:]
    assert lines[-1].startswith("error: ")
    assert re.search(message, lines[-1][len("error: "):]), lines[-1]
    # No run folder looks finished; one that exists says why it stopped.
    for config in output_root.rglob("config.yaml") if output_root.exists() else []:
        folder = config.parent
        assert not (folder / "metrics.json").exists()
        assert (folder / "FAILED").read_text().strip().endswith(lines[-1][len("error: "):].strip())


def test_the_catalogue_is_long_enough():
    assert len(CATALOGUE) >= 30
    assert set(SUBPROCESS_CASES) <= {override for override, _ in CATALOGUE}


@pytest.mark.parametrize("override,message", CATALOGUE, ids=[o for o, _ in CATALOGUE])
def test_bad_input_is_one_line_through_the_entry_point(inputs, tmp_path, capfd, override, message):
    output_root = tmp_path / "runs"
    result = run_in_process("astra_repro.train", command_line(override, inputs, output_root), inputs, capfd)
    check_one_line_error(result, message, output_root)


@pytest.fixture(scope="module")
def subprocess_outcomes(inputs):
    roots = [inputs / f"runs_{index}" for index in range(len(SUBPROCESS_CASES))]
    env = {"ASTRA_CACHE": str(inputs / "cache"), "ASTRA_RESULTS": str(inputs / "results")}
    jobs = [command_line(override, inputs, root) for override, root in zip(SUBPROCESS_CASES, roots)]
    results = run_subprocesses("astra_repro.train", jobs, inputs, **env)
    return dict(zip(SUBPROCESS_CASES, zip(results, roots)))


@pytest.mark.parametrize("override", SUBPROCESS_CASES)
def test_bad_input_is_one_line_through_python_m(subprocess_outcomes, override):
    result, output_root = subprocess_outcomes[override]
    check_one_line_error(result, dict(CATALOGUE)[override], output_root)
