"""Running model-generated code: never in our process, always in a disposable, limited, guarded one.

`run_untrusted_program` starts `python -I -B _sandbox_child.py` per program in a fresh temporary directory (its
cwd and HOME, deleted afterwards), in a new session whose whole process group is killed at the end, with a
minimal environment, resource limits (address space, CPU seconds, file size, no core dumps, few open files) and,
when the machine allows it, a new network namespace (`unshare -rn`: no interface but a downed loopback). Inside,
the child installs a Python-level guard (EvalPlus's reliability_guard list, no sockets, writes only under the
cwd, no process creation) before executing the program. "passed" means the program ran to completion and the
child then echoed a one-time nonce on a separate pipe: exiting early with status 0 or printing a success message
is not a pass.
"""

from __future__ import annotations

import functools
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

CHILD_SCRIPT = Path(__file__).with_name("_sandbox_child.py")
STATUSES = ("passed", "failed", "timeout", "crashed")
TAIL_CHARS = 2000
FILE_SIZE_LIMIT_BYTES = 16 * 1024 * 1024  # also caps what a program can print (stdout/stderr are files)
OPEN_FILES_LIMIT = 64
GUARD_FAILED_EXIT = 3  # _sandbox_child.GUARD_FAILED
NETNS_ENV = "ASTRA_SANDBOX_NETNS"  # "0" turns the network namespace off (e.g. to debug)


@dataclass
class SandboxResult:
    status: str  # passed | failed | timeout | crashed
    returncode: int | None
    stdout_tail: str
    stderr_tail: str
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@functools.lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether `unshare -rn` can start our interpreter here (user namespaces are often off in containers);
    tried once per process."""
    if os.environ.get(NETNS_ENV, "1") == "0" or shutil.which("unshare") is None:
        return False
    try:
        probe = subprocess.run(
            ["unshare", "-rn", sys.executable, "-I", "-c", "pass"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def isolating_prefix() -> list[str]:
    """The command prefix that puts a child in its own network namespace, or nothing where that is unavailable."""
    return ["unshare", "-rn"] if network_namespace_available() else []


def isolation_info() -> dict:
    """What contains untrusted code on this machine (recorded with every code evaluation)."""
    return {
        "process": "separate interpreter (python -I -B), fresh temp cwd/HOME, new session, process group killed",
        "network_namespace": network_namespace_available(),
        "rlimits": ["RLIMIT_AS", "RLIMIT_CPU", f"RLIMIT_FSIZE={FILE_SIZE_LIMIT_BYTES}", "RLIMIT_CORE=0",
                    f"RLIMIT_NOFILE={OPEN_FILES_LIMIT}"],
        "python_guard": "evalplus reliability_guard list + no sockets/DNS + writes only under the cwd + "
                        "no process creation + no ctypes/sqlite3",
    }


def minimal_env(home: str) -> dict:
    """No proxies, tokens or PYTHON* settings leak into the child (PYTHONDONTWRITEBYTECODE is ignored under -I,
    -B does its job; kept as documentation)."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        "HOME": home,
        "TMPDIR": home,
        "PYTHONDONTWRITEBYTECODE": "1",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def limit_resources(memory_bytes: int | None, cpu_seconds: int | None, file_bytes: int | None, open_files: int | None):
    """preexec_fn: only pre-imported C calls, so it is safe in the forked child even when the parent has threads."""
    import resource

    setrlimit = resource.setrlimit
    limits = [(resource.RLIMIT_CORE, 0, 0)]
    if memory_bytes:
        limits.append((resource.RLIMIT_AS, memory_bytes, memory_bytes))
    if cpu_seconds:
        limits.append((resource.RLIMIT_CPU, cpu_seconds, cpu_seconds + 1))  # SIGXCPU first, SIGKILL a second later
    if file_bytes:
        limits.append((resource.RLIMIT_FSIZE, file_bytes, file_bytes))
    if open_files:
        limits.append((resource.RLIMIT_NOFILE, open_files, open_files))

    def apply() -> None:
        for which, soft, hard in limits:
            setrlimit(which, (soft, hard))

    return apply


def wait_then_kill_group(proc: subprocess.Popen, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for the leader to exit, then SIGKILL its whole process group, then reap it.
    The leader is reaped only after the kill, so its group id cannot have been reused. True if it timed out."""
    deadline = time.monotonic() + timeout_s
    delay = 0.001
    timed_out = False
    while True:
        try:
            exited = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            exited = True
        if exited is not None:
            break
        if time.monotonic() >= deadline:
            timed_out = True
            break
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    return timed_out


def file_tail(path: Path, n: int = TAIL_CHARS) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4 * n))
            return f.read().decode("utf-8", errors="replace")[-n:]
    except OSError:
        return ""


def _drain(fd: int, limit: int = 4096) -> bytes:
    os.set_blocking(fd, False)
    chunks, size = [], 0
    while size < limit:
        try:
            chunk = os.read(fd, limit)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def run_untrusted_program(program: str, *, timeout_s: float = 10, memory_mb: int = 1024) -> SandboxResult:
    """Run `program` (a whole Python file) contained; see the module docstring for what contains it."""
    root = Path(tempfile.mkdtemp(prefix="astra_sandbox_"))
    work = root / "work"
    work.mkdir()
    program_path = root / "program.py"  # outside the cwd, so the program cannot rewrite its own source
    program_path.write_text(program, encoding="utf-8")
    nonce = secrets.token_hex(32).encode()
    read_fd, write_fd = os.pipe()
    start = time.monotonic()
    try:
        command = [*isolating_prefix(), sys.executable, "-I", "-B", str(CHILD_SCRIPT), str(program_path), str(write_fd)]
        limits = limit_resources(memory_mb * 1024 * 1024, int(timeout_s) + 1, FILE_SIZE_LIMIT_BYTES, OPEN_FILES_LIMIT)
        with open(root / "stdout", "wb") as stdout, open(root / "stderr", "wb") as stderr:
            try:
                proc = subprocess.Popen(
                    command, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, cwd=work, env=minimal_env(str(work)),
                    start_new_session=True, preexec_fn=limits, pass_fds=(write_fd,), close_fds=True,
                )
            finally:
                os.close(write_fd)
            try:
                proc.stdin.write(nonce)
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            timed_out = wait_then_kill_group(proc, timeout_s)
        seconds = time.monotonic() - start
        reported = _drain(read_fd)
        returncode = proc.returncode
        if timed_out or returncode == -signal.SIGXCPU:
            status = "timeout"
        elif returncode == 0 and reported == nonce:
            status = "passed"
        elif returncode < 0 or returncode == GUARD_FAILED_EXIT:
            status = "crashed"
        else:
            status = "failed"
        return SandboxResult(status, returncode, file_tail(root / "stdout"), file_tail(root / "stderr"), seconds)
    finally:
        os.close(read_fd)
        shutil.rmtree(root, ignore_errors=True)
