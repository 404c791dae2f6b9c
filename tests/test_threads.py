"""The CPU thread policy (astra_repro/threads.py, issue 20): threads from the affinity mask, OMP_WAIT_POLICY=PASSIVE
before torch loads, the user's environment respected, the config applied at run start, and scripts/bench_load.py's
machinery (no timings are checked anywhere here)."""

import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import time

import pytest
import torch
from helpers import tiny_cfg

from astra_repro import threads
from astra_repro.spec import RunSpec
from astra_repro.errors import ConfigError
from astra_repro.paths import PROJECT_ROOT


@pytest.fixture
def keep_torch_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_threads_default_to_the_cpus_this_process_may_run_on(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 2, 5}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert threads.affinity_cpus() == 3
    assert threads.choose_threads("auto", environ={}) == (3, "auto: 3 affinity CPUs")
    assert threads.choose_threads(None, environ={}, cpus=8)[0] == 8
    # the processes of a multi-process launch on one node share the CPUs
    assert threads.choose_threads("auto", environ={"LOCAL_WORLD_SIZE": "2"}, cpus=4) == (
        2, "auto: 4 affinity CPUs / LOCAL_WORLD_SIZE 2")
    assert threads.choose_threads("auto", environ={"LOCAL_WORLD_SIZE": "4"}, cpus=2)[0] == 1


def test_the_users_environment_wins_over_auto_and_the_config_over_both():
    assert threads.choose_threads("auto", environ={"OMP_NUM_THREADS": "1"}, cpus=4) == (1, "environment OMP_NUM_THREADS")
    assert threads.choose_threads(3, environ={"OMP_NUM_THREADS": "1"}, cpus=4) == (3, "config runtime.threads")
    assert threads.choose_threads("auto", environ={"OMP_NUM_THREADS": "many"}, cpus=4)[0] == 4  # not a count: auto


def test_the_wait_policy_goes_into_the_environment_unless_the_user_set_it_or_torch_is_loaded():
    env: dict = {}
    state = threads.configure_environment(env, torch_loaded=False)
    assert env["OMP_WAIT_POLICY"] == "PASSIVE" and state["omp_wait_policy_source"] == "default"
    assert "OMP_WAIT_POLICY" in env[threads.DEFAULTS_MARK]
    assert "OMP_NUM_THREADS" not in env  # never exported: torchrun's own OMP_NUM_THREADS=1 for its ranks must stay
    # a child process inherits the default: it is still the project's default, not the user's choice
    assert threads.configure_environment(dict(env), torch_loaded=False)["omp_wait_policy_source"] == "default (inherited)"

    env = {"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": "1000"}
    state = threads.configure_environment(env, torch_loaded=False)
    assert env == {"OMP_WAIT_POLICY": "active", "GOMP_SPINCOUNT": "1000"}  # untouched
    assert state["omp_wait_policy"] == "ACTIVE" and state["omp_wait_policy_source"] == "environment"
    assert state["gomp_spincount"] == "1000"

    env = {}
    state = threads.configure_environment(env, torch_loaded=True)  # too late: the runtime has read its settings
    assert env == {} and state["omp_wait_policy"] == threads.LIBGOMP_UNSET
    assert state["omp_wait_policy_source"].startswith("not applied: torch was imported")

    env = {threads.OPT_OUT: "1"}
    state = threads.configure_environment(env, torch_loaded=False)
    assert "OMP_WAIT_POLICY" not in env and state["omp_wait_policy_source"].startswith("not applied")


def test_the_config_sets_torch_threads_and_a_late_wait_policy_is_reported_not_pretended(keep_torch_threads, caplog):
    record = threads.apply_runtime({"threads": 1, "omp_wait_policy": "auto"})
    assert torch.get_num_threads() == 1 and record["threads"] == 1
    assert record["source"]["threads"] == "config runtime.threads"
    assert record["affinity_cpus"] == len(os.sched_getaffinity(0))
    assert "omp_wait_policy_note" not in record

    started_with = threads.environment_state()["omp_wait_policy"]
    other = "passive" if started_with == "ACTIVE" else "active"
    with caplog.at_level(logging.WARNING, logger="astra_repro"):
        record = threads.apply_runtime({"threads": "auto", "omp_wait_policy": other})
    assert record["omp_wait_policy"] == started_with  # what the runtime uses, not what was asked
    assert record["requested"]["omp_wait_policy"] == other
    assert f"OMP_WAIT_POLICY={other.upper()}" in record["omp_wait_policy_note"]
    assert "was not applied" in caplog.text


@pytest.mark.parametrize("override, message", [
    ("runtime.threads=0", "runtime.threads=0 must be >= 1"),
    ("runtime.threads=many", "runtime.threads='many' is not an integer"),
    ("runtime.omp_wait_policy=sometimes", "runtime.omp_wait_policy='sometimes' is not valid"),
])
def test_bad_runtime_values_are_one_line_errors(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        RunSpec.from_config(tiny_cfg(override))


def test_importing_an_entry_point_sets_passive_before_torch_loads():
    """A fresh interpreter: `import astra_repro.train` (which imports torch) starts libgomp with PASSIVE; libgomp
    prints what it read when OMP_DISPLAY_ENV is set."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", threads.DEFAULTS_MARK, threads.OPT_OUT)}
    code = ("import json, os, astra_repro.train; from astra_repro import threads; "
            "print(json.dumps([os.environ['OMP_WAIT_POLICY'], threads.environment_state()['omp_wait_policy_source']]))")
    done = subprocess.run([sys.executable, "-c", code], env=dict(env, OMP_DISPLAY_ENV="TRUE"), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["PASSIVE", "default"]
    shown = re.findall(r"OMP_WAIT_POLICY = '(\w+)'", done.stdout + done.stderr)
    assert set(shown) <= {"PASSIVE"}, shown  # one line per libgomp loaded (none: torch's OpenMP is not libgomp)


# ------------------------------------------------------------------------------------------------- bench_load
def bench_load():
    spec = importlib.util.spec_from_file_location("bench_load", PROJECT_ROOT / "scripts" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_load_settings_and_their_child_environments():
    bl = bench_load()
    settings = bl.settings(2)
    assert [settings[n]["threads"] for n in ("active", "passive", "one", "unset")] == [2, 2, 1, 2]
    user = {"PATH": "/bin", "OMP_NUM_THREADS": "7", "OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "5",
            threads.DEFAULTS_MARK: "OMP_WAIT_POLICY"}
    env = bl.child_env(settings["passive"], user)
    assert (env["OMP_NUM_THREADS"], env["OMP_WAIT_POLICY"], env["PATH"]) == ("2", "PASSIVE", "/bin")
    assert "GOMP_SPINCOUNT" not in env and threads.DEFAULTS_MARK not in env
    env = bl.child_env(settings["unset"], user)
    assert "OMP_WAIT_POLICY" not in env and env[threads.OPT_OUT] == "1"  # libgomp's own default in the child
    assert bl.child_env(settings["one"], user)["OMP_NUM_THREADS"] == "1"
    assert bl.child_env(settings["spin"], user)["GOMP_SPINCOUNT"] == str(bl.SHORT_SPIN)  # the default spin count
    spin = bl.settings(2, 3000)["spin"]
    assert bl.child_env(spin, user)["GOMP_SPINCOUNT"] == "3000" and "3000" in spin["label"]


def test_bench_load_competitor_is_started_measured_and_stopped(monkeypatch):
    bl = bench_load()
    monkeypatch.setattr(bl, "SETTLE_S", 0.05)
    competitor = bl.start_load("yes")
    try:
        assert competitor.poll() is None and bl.cpu_seconds_of(competitor.pid) is not None
    finally:
        bl.stop_load(competitor)
    assert competitor.returncode is not None
    result = bl.measure(lambda: time.sleep(0.01) or {"done": True}, repeats=2, load="yes")
    assert len(result["idle_s"]) == len(result["loaded_s"]) == 2 and result["ratio"] > 0
    assert result["loaded_output"] == {"done": True} and "competitor_cpu_share" in result


def test_bench_load_runs_a_setting_end_to_end_on_the_tiny_shape(monkeypatch, tmp_path, keep_torch_threads, capsys):
    """The parent's loop with its child process replaced by the same script run in this process (--dry-run sizes,
    no competitor): arguments, environment, the child's row, the table and the JSON file."""
    bl = bench_load()
    seen = {}
    real_run = subprocess.run

    def child_in_process(command, *args, env=None, **kwargs):
        if command[1:2] != [str(PROJECT_ROOT / "scripts" / "bench_load.py")]:  # not ours: a library's own call
            return real_run(command, *args, env=env, **kwargs)
        seen.update(env=env, command=command)
        bl.main(command[2:])
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(bl.subprocess, "run", child_in_process)
    out = tmp_path / "load.json"
    bl.main(["--dry-run", "--settings", "passive", "--load", "none", f"--out={out}"])
    assert seen["env"]["OMP_WAIT_POLICY"] == "PASSIVE" and "--child=passive" in seen["command"]
    assert f"--spin-count={bl.SHORT_SPIN}" in seen["command"]  # the child builds its settings with the same count
    report = json.loads(out.read_text())
    (row,) = report["rows"]
    assert "error" not in row, row
    assert set(row["workloads"]) == {"train", "score"}
    assert "new_tokens" in row["workloads"]["score"]["loaded_output"]
    assert row["runtime"]["threads"] >= 1
    printed = capsys.readouterr().out
    assert "| training step | " in printed and "| scoring batch | " in printed
