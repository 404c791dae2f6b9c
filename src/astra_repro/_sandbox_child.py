"""The process side of `astra_repro.sandbox`: runs ONE untrusted program, standard library only.

Started as `python -I -B _sandbox_child.py <program file> <result fd>` in a fresh temporary working directory, with
a one-time nonce on stdin. It reads the nonce, detaches stdin, installs the guard, then executes the program as
`__main__`. Only if that execution returns normally does it write the nonce to the result fd, so neither
`sys.exit(0)`, `os._exit(0)` nor printing a success message makes a program pass.

The guard (`contain`) is also imported by path by the EvalPlus runner, which layers it on top of EvalPlus's own
`reliability_guard`. It is a Python-level guard: it stops accidents (file deletion, forks, network, stray
writes), not a determined attacker with access to interpreter internals; the process limits, the separate
process group and (when available) the network namespace set up by the parent are the outer walls.
"""

from __future__ import annotations

import builtins
import faulthandler
import io
import os
import sys
import traceback

# evalplus 0.3.1 evalplus.eval.utils.reliability_guard disables these `os` functions (it sets them to None).
EVALPLUS_DISABLED_OS = (
    "kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir", "setuid", "fork", "forkpty", "killpg",
    "rename", "renames", "truncate", "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot", "lchflags",
    "lchmod", "lchown", "getcwd", "chdir",
)
# ... and these modules (sys.modules entry set to None, so importing them fails).
EVALPLUS_BLOCKED_MODULES = ("ipdb", "joblib", "resource", "psutil", "tkinter")
# Other ways to start programs, escape the process group, change identity or make links outside the cwd.
EXTRA_DISABLED_OS = (
    "popen", "execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnv", "spawnve",
    "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe", "posix_spawn", "posix_spawnp", "setsid",
    "setpgid", "setpgrp", "setgid", "setgroups", "setresuid", "setresgid", "seteuid", "setegid", "setreuid",
    "setregid", "symlink", "link", "mkfifo", "mknod", "unshare", "setns", "pidfd_open",
)
# Native escape hatches and C-level file writers the Python-level checks cannot see.
EXTRA_BLOCKED_MODULES = ("ctypes", "_ctypes", "cffi", "sqlite3", "_sqlite3", "_dbm", "_gdbm", "dbm.gnu", "dbm.ndbm")
WRITE_MODE_CHARS = "wax+"
PROGRAM_FAILED, GUARD_FAILED = 1, 3  # exit codes (a program can fake them; only the nonce means "passed")
OS_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class SandboxViolation(PermissionError):
    """Raised instead of the disabled operation, so the program fails with a readable reason."""


def _denied(what: str):
    def deny(*args, **kwargs):
        raise SandboxViolation(f"{what} is disabled in the sandbox")

    return deny


def _is_inside(path, root: str, dir_fd=None) -> bool:
    """Whether `path` resolves (symlinks followed) to `root` or below it; an fd number counts as already vetted.
    Works without os.getcwd (disabled by the guard): relative paths are taken relative to `root`, the fixed cwd."""
    if isinstance(path, int):
        return True
    if dir_fd is not None:
        return False
    path = os.fsdecode(os.fspath(path))
    if not os.path.isabs(path):
        path = os.path.join(root, path)
    real = os.path.realpath(path)
    return real == root or real.startswith(root + os.sep)


def block_network() -> None:
    """No sockets of any family and no name resolution (a DNS query can leak data on its own)."""
    import _socket
    import socket

    class NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            raise SandboxViolation("network access is disabled in the sandbox")

    class NoRawSocket(_socket.socket):
        def __init__(self, *args, **kwargs):
            raise SandboxViolation("network access is disabled in the sandbox")

    socket.socket = socket.SocketType = NoSocket
    _socket.socket = _socket.SocketType = NoRawSocket
    for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo", "gethostbyname",
                 "gethostbyname_ex", "gethostbyaddr", "getnameinfo"):
        for module in (socket, _socket):
            if hasattr(module, name):
                setattr(module, name, _denied(f"socket.{name}"))


def restrict_file_writes(root: str) -> None:
    """open/io.open/os.open/FileIO/mkdir may create or modify files only under `root` (reading stays allowed).
    A builtins.open already disabled (EvalPlus sets it to None) stays disabled."""
    import _io

    real_open, real_os_open, real_mkdir, real_file_io = _io.open, os.open, os.mkdir, _io.FileIO

    def guarded_open(file, mode="r", *args, **kwargs):
        if isinstance(mode, str) and any(c in mode for c in WRITE_MODE_CHARS) and not _is_inside(file, root):
            raise SandboxViolation(f"writing {file!r} outside the sandbox directory is not allowed")
        return real_open(file, mode, *args, **kwargs)

    def guarded_os_open(path, flags, mode=0o777, *, dir_fd=None):
        if flags & OS_WRITE_FLAGS and not _is_inside(path, root, dir_fd):
            raise SandboxViolation(f"writing {path!r} outside the sandbox directory is not allowed")
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def guarded_mkdir(path, mode=0o777, *, dir_fd=None):
        if not _is_inside(path, root, dir_fd):
            raise SandboxViolation(f"creating {path!r} outside the sandbox directory is not allowed")
        return real_mkdir(path, mode, dir_fd=dir_fd)

    class GuardedFileIO(real_file_io):
        def __init__(self, file, mode="r", closefd=True, opener=None):
            if isinstance(mode, str) and any(c in mode for c in WRITE_MODE_CHARS) and not _is_inside(file, root):
                raise SandboxViolation(f"writing {file!r} outside the sandbox directory is not allowed")
            super().__init__(file, mode, closefd, opener)

    import posix

    io.open = _io.open = guarded_open
    io.FileIO = _io.FileIO = GuardedFileIO
    if builtins.open is not None:
        builtins.open = guarded_open
    for module in (os, posix):
        module.open, module.mkdir = guarded_os_open, guarded_mkdir


def block_process_escape() -> None:
    """No new processes (also via multiprocessing's spawn/forkserver helpers), no leaving the process group."""
    import posix

    # `posix` too: EvalPlus's guard only patches `os`, and `import posix; posix.fork()` reaches the same C functions.
    targets = [(os, EXTRA_DISABLED_OS), (posix, EVALPLUS_DISABLED_OS + EXTRA_DISABLED_OS)]
    for module, names in targets:
        for name in names:
            if hasattr(module, name):
                setattr(module, name, _denied(f"os.{name}"))
    try:
        import _posixsubprocess

        _posixsubprocess.fork_exec = _denied("_posixsubprocess.fork_exec")
    except ImportError:
        pass
    import subprocess

    subprocess.Popen = _denied("subprocess.Popen")
    import signal

    for name in ("pidfd_send_signal",):
        if hasattr(signal, name):
            setattr(signal, name, _denied(f"signal.{name}"))


def block_modules(names) -> None:
    for name in names:
        sys.modules[name] = None


def evalplus_compatible_guard() -> None:
    """What evalplus's reliability_guard does besides memory limits (the parent sets those) and builtins.open=None
    (here writes are restricted to the cwd instead): inlined so this file needs nothing outside the stdlib."""
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    builtins.help = None
    os.environ["OMP_NUM_THREADS"] = "1"
    import posix
    import shutil

    for module in (os, posix):
        for name in EVALPLUS_DISABLED_OS:
            if hasattr(module, name):
                setattr(module, name, _denied(f"os.{name}"))
    shutil.rmtree = _denied("shutil.rmtree")
    shutil.move = _denied("shutil.move")
    shutil.chown = _denied("shutil.chown")
    block_modules(EVALPLUS_BLOCKED_MODULES)


def contain(root: str) -> None:
    """Everything on top of EvalPlus's guard: network, writes outside `root`, process creation, native modules.
    `root` must be computed before EvalPlus's guard runs (it disables os.getcwd)."""
    root = os.path.realpath(root)
    block_network()
    restrict_file_writes(root)
    block_process_escape()
    block_modules(EXTRA_BLOCKED_MODULES)


def _reporter(nonce: bytes, fd: int):
    """Writes the nonce later without leaving it in a plain local of the frame that runs the program."""
    write = os.write

    def report_success() -> None:
        write(fd, nonce)

    return report_success


def main(argv: list[str]) -> None:
    program_path, result_fd = argv[1], int(argv[2])
    exit_now = os._exit
    report_success = _reporter(sys.stdin.buffer.read(), result_fd)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(os.devnull)
    with open(program_path, encoding="utf-8") as f:
        source = f.read()
    root = os.path.realpath(os.getcwd())
    try:
        code = compile(source, program_path, "exec")
    except BaseException:
        traceback.print_exc()
        exit_now(PROGRAM_FAILED)
    try:
        evalplus_compatible_guard()
        contain(root)
    except BaseException:
        traceback.print_exc()
        exit_now(GUARD_FAILED)
    try:
        exec(code, {"__name__": "__main__", "__file__": program_path, "__builtins__": builtins})
    except BaseException:  # SystemExit included: sys.exit(0) is not a pass
        try:
            traceback.print_exc()
            sys.stderr.flush()
        finally:
            exit_now(PROGRAM_FAILED)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    report_success()
    exit_now(0)  # no atexit handlers or lingering threads of the program run after the verdict


if __name__ == "__main__":
    main(sys.argv)
