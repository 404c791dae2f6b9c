"""Untrusted code is contained: each hostile program fails (or times out) without touching anything outside its
temporary directory, and the caller survives; the same programs as EvalPlus "solutions" fail the same way."""

from __future__ import annotations

import gzip
import json
import socket
import tempfile
import time
from pathlib import Path

import pytest

from astra_repro.paths import PROJECT_ROOT
from astra_repro.sandbox import isolation_info, network_namespace_available, run_untrusted_program

HUMANEVAL_PLUS_GZ = PROJECT_ROOT.parent / "shared" / "data" / "evalplus" / "HumanEvalPlus.jsonl.gz"
TIMEOUT_S = 3


def leftover_dirs(prefix: str) -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob(f"{prefix}*"))


@pytest.fixture(autouse=True)
def nothing_left_behind(tmp_path, monkeypatch):
    # this test's own temp dir (here and in child processes), so a concurrent test (pytest-xdist) cannot add to it
    own = tmp_path / "tmp"
    own.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(own))
    monkeypatch.setenv("TMPDIR", str(own))
    yield
    assert leftover_dirs("astra_sandbox_") | leftover_dirs("astra_evalplus_") == set()


@pytest.fixture
def canary(tmp_path):
    """A file and a folder outside any sandbox directory that hostile programs try to destroy."""
    file, folder = tmp_path / "canary.txt", tmp_path / "canary_dir"
    file.write_text("alive")
    folder.mkdir()
    (folder / "inner.txt").write_text("alive")
    return {"file": file, "dir": folder, "new": tmp_path / "written_by_sandbox.txt"}


@pytest.fixture
def listener():
    """A TCP server on 127.0.0.1 that must never see a connection from a sandboxed program."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    yield server
    server.close()


def assert_no_connection(server):
    with pytest.raises(BlockingIOError):
        server.accept()


def hostile_programs(canary, port) -> dict[str, str]:
    return {
        "remove": f"import os\nos.remove({str(canary['file'])!r})",
        "unlink_via_posix": f"import posix\nposix.unlink({str(canary['file'])!r})",
        "rmtree": f"import shutil\nshutil.rmtree({str(canary['dir'])!r})",
        "sys_exit_0": "import sys\nsys.exit(0)\nraise AssertionError('never reached')",
        "os_exit_0": "import os\nos._exit(0)",
        "huge_allocation": "block = bytearray(10 ** 11)",
        "fork": "import os\nif os.fork() == 0:\n    while True: pass",
        "fork_bomb": "import multiprocessing as mp\nwhile True:\n    mp.Process(target=sum, args=([],)).start()",
        "spawn_context": "import multiprocessing as mp\nmp.get_context('spawn').Process(target=print).start()",
        "subprocess": "import subprocess\nsubprocess.run(['true'])",
        "write_outside": f"open({str(canary['new'])!r}, 'w').write('x')",
        "write_outside_os_open": f"import os\nos.open({str(canary['new'])!r}, os.O_WRONLY | os.O_CREAT)",
        "connect": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "connect_raw": f"import _socket\ns = _socket.socket()\ns.settimeout(1)\ns.connect(('127.0.0.1', {port}))",
        "ctypes": "import ctypes\nctypes.CDLL(None).system(b'true')",
        "success_text_then_exit": "print('All tests passed')\nprint('passed')\nimport os\nos._exit(0)",
        "success_text_then_error": "print('All tests passed')\nassert 1 == 2",
    }


def test_a_correct_program_passes_and_its_output_is_kept():
    result = run_untrusted_program("def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok')\n")
    assert result.status == "passed" and result.passed and result.returncode == 0
    assert result.stdout_tail == "ok\n" and result.seconds < TIMEOUT_S


def test_every_hostile_program_fails_and_nothing_outside_is_touched(canary, listener):
    for name, program in hostile_programs(canary, listener.getsockname()[1]).items():
        result = run_untrusted_program(program, timeout_s=TIMEOUT_S, memory_mb=512)
        assert result.status in ("failed", "crashed"), (name, result)
        assert canary["file"].read_text() == "alive", name
        assert (canary["dir"] / "inner.txt").read_text() == "alive", name
        assert not canary["new"].exists(), name
    assert_no_connection(listener)
    assert run_untrusted_program("print(sum(range(10)))").stdout_tail == "45\n"  # the caller is fine


def test_an_infinite_loop_times_out_within_the_limit():
    start = time.monotonic()
    result = run_untrusted_program("while True:\n    pass\n", timeout_s=2)
    assert result.status == "timeout" and not result.passed
    assert time.monotonic() - start < 2 + 2


def test_printing_a_fake_verdict_or_the_result_fd_is_not_a_pass():
    # the result fd is argv[2] of the child: writing to it without the nonce must not count
    program = "import os, sys\nos.write(int(sys.argv[2]) if len(sys.argv) > 2 else 3, b'passed')\nos._exit(0)"
    assert run_untrusted_program(program).status == "failed"


def test_writing_inside_the_temporary_directory_is_allowed_and_removed_afterwards():
    program = (
        "import os\n"
        "with open('scratch.txt', 'w') as f:\n    f.write('hello')\n"
        "os.makedirs('sub/dir', exist_ok=True)\n"
        "print(open('scratch.txt').read(), sorted(os.listdir('.')), os.path.isdir(os.environ['HOME'] + '/sub/dir'))\n"
    )
    result = run_untrusted_program(program)
    assert result.status == "passed" and result.stdout_tail == "hello ['scratch.txt', 'sub'] True\n"
    # nothing_left_behind checks the directory is gone


def test_the_network_namespace_blocks_a_socket_that_got_past_the_python_guard(listener):
    if not network_namespace_available():
        pytest.skip("no user/network namespaces on this machine: only the Python-level guard blocks sockets")
    port = listener.getsockname()[1]
    bypass = (
        "import _socket\n"
        "RealSocket = _socket.socket.__bases__[0]  # the C type under the guard's subclass\n"
        f"s = RealSocket()\ns.settimeout(1)\ns.connect(('127.0.0.1', {port}))\n"
    )
    result = run_untrusted_program(bypass)
    assert result.status == "failed" and "SandboxViolation" not in result.stderr_tail  # refused by the kernel
    assert_no_connection(listener)


def test_isolation_is_described():
    info = isolation_info()
    assert info["network_namespace"] in (True, False) and "RLIMIT_AS" in info["rlimits"]


# ---------------------------------------------------------------------------------------------------------------
# The same hostile programs through the EvalPlus path
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not HUMANEVAL_PLUS_GZ.exists(), reason="shared HumanEvalPlus.jsonl.gz not present")
def test_hostile_solutions_fail_under_evalplus_and_the_runner_survives(tmp_path, canary, listener):
    from astra_repro.evaluators.evalplus_runner import score_with_evalplus

    problems_file = tmp_path / "HumanEvalPlus.jsonl"
    problems_file.write_bytes(gzip.decompress(HUMANEVAL_PLUS_GZ.read_bytes()))
    problems = [json.loads(line) for line in problems_file.read_text().splitlines()]
    port = listener.getsockname()[1]
    hostile = {
        "remove": f"import os\nos.remove({str(canary['file'])!r})",
        "rmtree": f"import shutil\nshutil.rmtree({str(canary['dir'])!r})",
        "unlink_via_posix": f"import posix\nposix.unlink({str(canary['file'])!r})",
        "sys_exit_0": "import sys\nsys.exit(0)",
        "os_exit_0": "import os\nos._exit(0)",
        "huge_allocation": "block = bytearray(10 ** 12)",
        "fork_bomb": "import multiprocessing as mp\nwhile True:\n    mp.Process(target=sum, args=([],)).start()",
        "write_outside": f"import io\nio.open({str(canary['new'])!r}, 'w').write('x')",
        "connect": f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)",
        "success_text": "print('All tests passed')\ndef {entry}(*args, **kwargs):\n    return None\n",
    }
    samples, names = [], {}
    tasks = [p for p in problems if p["task_id"] != "HumanEval/32"][: len(hostile) + 1]
    for problem, (name, attack) in zip(tasks, hostile.items()):
        # the attack first, then a correct solution: only a blocked attack makes it fail
        solution = attack.replace("{entry}", problem["entry_point"])
        if name != "success_text":
            solution += "\n" + problem["prompt"] + problem["canonical_solution"]
        samples.append({"task_id": problem["task_id"], "solution": solution})
        names[problem["task_id"]] = name
    spin = tasks[len(hostile)]  # an infinite loop inside the function: EvalPlus's per-input time limit
    samples.append({"task_id": spin["task_id"], "solution": f"def {spin['entry_point']}(*args):\n    while True:\n        pass\n"})
    names[spin["task_id"]] = "infinite_loop"

    result = score_with_evalplus("humaneval", problems_file, samples, workers=2, cache_dir=tmp_path / "gt", timeout_s=300)

    assert result["n_tasks"] == len(samples) and result["pass@1"] == 0.0 and not result["full_set"]
    for task_id, name in names.items():
        assert result["results"][task_id]["base_status"] in ("fail", "timeout"), name
    assert canary["file"].read_text() == "alive" and (canary["dir"] / "inner.txt").read_text() == "alive"
    assert not canary["new"].exists()
    assert_no_connection(listener)
    assert "subset" in Path(result["groundtruth"]["cache_file"]).name  # a subset never shares the full-set cache
