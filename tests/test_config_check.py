"""Nothing wrong passes silently (issue 11, first part): the composed config is checked before anything runs, bad
data files give one line naming the file and line, and a run that stops on an error is marked FAILED."""

import json

import pytest
from helpers import tiny_cfg

from astra_repro import runs
from astra_repro.spec import RunSpec
from astra_repro.data.sources import read_json_records
from astra_repro.errors import ConfigError
from astra_repro.spec import plan_run
from astra_repro.train import run

BAD_VALUES = [
    ("rank=abc", r"^rank='abc' is not an integer; set rank=<integer> \(e\.g\. rank=16\)$"),
    ("rank=0", r"^rank=0 must be >= 1"),
    ("rank=2.5", r"^rank=2\.5 is not an integer"),
    ("seed=abc", r"^seed='abc' is not an integer"),
    ("seed=-1", r"^seed=-1 must be >= 0"),
    ("lr=-1", r"^lr=-1 must be > 0"),
    ("lr=0", r"^lr=0 must be > 0"),
    ("lr=abc", r"^lr='abc' is not a number"),
    ("alpha=0", r"^alpha=0 must be > 0: the adapter's scaling is alpha/rank"),
    ("force=maybe", r"^force='maybe' is not a boolean; use force=true or force=false$"),
    ("skip_eval=2", r"^skip_eval=2 is not a boolean"),
    ("eval.backend=gpu", r"^eval\.backend='gpu' is not valid; use one of auto, hf, vllm$"),
    ("method.dropout=1.5", r"^method\.dropout=1\.5 must be < 1\.0"),
    ("method.dropout=-0.1", r"^method\.dropout=-0\.1 must be >= 0\.0"),
    ("method.use_dora=yes", r"^method\.use_dora='yes' is not a boolean"),
    ("task.train.max_steps=0", r"^task\.train\.max_steps=0 trains nothing"),
    ("task.train.per_device_batch_size=0", r"^task\.train\.per_device_batch_size=0 must be >= 1"),
    ("task.train.global_batch_size=0", r"^task\.train\.global_batch_size=0 must be >= 1"),
    ("task.train.global_batch_size=null", r"^task\.train\.global_batch_size is not set"),
    ("task.train.warmup_ratio=1.5", r"^task\.train\.warmup_ratio=1\.5 must be < 1\.0"),
    ("task.train.max_length=abc", r"^task\.train\.max_length='abc' is not an integer"),
    ("task.data.n_train=0", r"^task\.data\.n_train=0 must be >= 1"),
    ("calibration.n_samples=-3", r"^calibration\.n_samples=-3 must be >= 1"),
    ("calibration.batch_size=0", r"^calibration\.batch_size=0 must be >= 1"),
    ("calibration.seq_len=1", r"^calibration\.seq_len=1 must be >= 2"),
    ("calibration.center=sometimes", r"^calibration\.center='sometimes' is not a boolean"),
    ("trainer.bf16=maybe", r"^trainer\.bf16='maybe' is not valid; use auto, true or false$"),
    ("trainer.max_grad_norm=-1", r"^trainer\.max_grad_norm=-1 must be >= 0"),
    ("evaluators=3", r"^evaluators=3 is not a name or a list of names"),
]


@pytest.mark.parametrize("override,message", BAD_VALUES, ids=[o for o, _ in BAD_VALUES])
def test_bad_values_are_one_line_errors_before_anything_runs(override, message):
    cfg = tiny_cfg(override)
    with pytest.raises(ConfigError, match=message) as err:
        RunSpec.from_config(cfg)
    assert "\n" not in str(err.value)


def test_the_shipped_configs_pass(tmp_path):
    for override in ([], ["method=astra"], ["method=pissa", "rank=8", "alpha=16", "lr=1e-4"], ["task=glue", "model=tiny_t5"],
                     ["method=corda", "calibration=wikitext2"], ["task=commonsense"], ["task=code", "trainer=ddp"]):
        cfg = tiny_cfg(*override)
        RunSpec.from_config(cfg)
        plan_run(cfg)


def test_run_refuses_a_bad_value_without_touching_disk(tmp_path):
    with pytest.raises(ConfigError, match="alpha=0"):
        run(tiny_cfg("alpha=0", f"output_root={tmp_path}"))
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------------- data files
@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.jsonl", b"", r"empty\.jsonl: the file is empty"),
        ("blank.jsonl", b"\n  \n", r"blank\.jsonl: the file is empty"),
        ("cut.jsonl", b'{"query": "a", "response": "b"}\n{"query": "c", "resp', r"cut\.jsonl:2: not a JSON object .*truncated line"),
        ("text.jsonl", b'{"query": "a", "response": "b"}\n\nhello world\n', r"text\.jsonl:3: not a JSON object"),
        ("latin1.jsonl", '{"query": "caf\u00e9"}\n'.encode("latin-1"), r"latin1\.jsonl: not UTF-8 text \(bad byte at offset 14\)"),
        ("list.jsonl", b'{"query": "a"}\n[1, 2]\n', r"list\.jsonl:2: a list, not a JSON object"),
        ("broken.json", b'[{"query": "a"}, {"query": ', r"broken\.json:1: not valid JSON"),
        ("numbers.json", b"[1, 2]", r"numbers\.json: record 1: a int, not a JSON object"),
    ],
)
def test_bad_data_files_name_the_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=message) as err:
        read_json_records(path)
    assert "\n" not in str(err.value)


def test_good_jsonl_and_json_still_read(tmp_path):
    rows = [{"query": "q1", "response": "r1"}, {"query": "q2", "response": "r2"}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "a.json").write_text(json.dumps(rows))
    assert read_json_records(tmp_path / "a.jsonl") == rows == read_json_records(tmp_path / "a.json")


def test_a_failed_run_is_marked_and_a_rerun_after_the_fix_works(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "What is 2+2?", "response": "The answer is: 4"}\n{"query": "cut')
    overrides = [f"output_root={tmp_path / 'runs'}", "skip_eval=true", "task.train.max_steps=1", "rank=4"]
    with pytest.raises(ConfigError, match=r"bad\.jsonl:2"):
        run(tiny_cfg(*overrides, f"task.data.path={bad}"))
    (run_dir,) = [p.parent for p in (tmp_path / "runs").rglob("config.yaml")]
    assert (run_dir / runs.FAILED_FILE).read_text().startswith("ConfigError: ")
    assert "bad.jsonl:2" in (run_dir / runs.FAILED_FILE).read_text()
    assert not runs.is_complete(run_dir)
    good = "\n".join(json.dumps({"query": f"What is {i}+{i}?", "response": f"The answer is: {2 * i}"}) for i in range(40))
    bad.write_text(good + "\n")  # the fix: the same path, now valid (the run's identity is unchanged)
    assert run(tiny_cfg(*overrides, f"task.data.path={bad}")) == run_dir
    assert runs.is_complete(run_dir) and not (run_dir / runs.FAILED_FILE).exists()


# ------------------------------------------------------------------------------------------------- concurrency, disk
def test_a_second_process_on_the_same_run_folder_exits_with_a_message(tmp_path):
    import subprocess
    import sys

    cfg = tiny_cfg(f"output_root={tmp_path}", "skip_eval=true", "task.train.max_steps=1")
    run_dir = runs.run_dir(plan_run(cfg), str(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from astra_repro.runs import FolderLock; "
         "lock = FolderLock(sys.argv[1], 'run folder').__enter__(); print('held', flush=True); time.sleep(120)", str(run_dir)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=rf"run folder .* is in use by pid {holder.pid} on .*; wait for it"):
            run(cfg)
        assert not (run_dir / runs.FAILED_FILE).exists()  # the other process's run is not marked failed
    finally:
        holder.kill()  # kill -9: the kernel releases the lock
        holder.wait()
    with runs.FolderLock(run_dir, "run folder"):
        pass


def test_a_full_disk_is_an_error_before_training(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 << 30, 10 << 30, 1 << 20))
    with pytest.raises(ConfigError, match=r"only 0\.0 GB free under .*this run needs about .* GB; free space or set output_root"):
        run(tiny_cfg(f"output_root={tmp_path}", "skip_eval=true", "method=pissa"))
    assert not list(tmp_path.rglob("train_log.jsonl"))


def test_an_unwritable_output_root_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"^cannot write to .*a_file.*; set output_root=<a writable folder>$"):
        run(tiny_cfg(f"output_root={blocker / 'runs'}", "skip_eval=true"))


@pytest.mark.parametrize("override,message", [("rank=abc", "error: rank='abc' is not an integer"),
                                              ("alpha=0", "error: alpha=0 must be > 0")])
def test_the_entry_point_prints_one_line_and_no_traceback(tmp_path, override, message):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "astra_repro.train", "model=tiny_llama", override,
                           f"output_root={tmp_path}"], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(message) and not any("Traceback" in line for line in lines)
    assert not any(tmp_path.iterdir())  # nothing was written
