"""Run a command-line entry point as `python -m <module> ARGS` does: in a subprocess, or in this process through the
same function the command line calls (`<module>.main()`, with sys.argv set as `python -m` sets it).

In process saves ~10 s a call (no interpreter, torch or transformers to start). What the entry point changes for the
rest of the process is put back afterwards: sys.argv, the working directory, the environment, the logging setup
(Hydra configures the root logger, `evaluate` calls basicConfig: both see a root logger without handlers, as in a
fresh interpreter), grad mode, torch's RNG and thread count, and Hydra's global state. Output is read with pytest's
`capfd`, at the file-descriptor level, as a subprocess's would be."""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import torch


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str


def run_subprocess(module: str, args: list[str], cwd: Path, **env: str) -> Outcome:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def run_subprocesses(module: str, jobs: list[list[str]], cwd: Path, **env: str) -> list[Outcome]:
    """`python -m module` once per argument list, all at once (they mostly wait on imports), in job order."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
        return list(pool.map(lambda args: run_subprocess(module, args, cwd, **env), jobs))


def run_in_process(module: str, args: list[str], cwd: Path, capfd=None, **env: str) -> Outcome:
    """`module.main()` under `python -m module *args`'s sys.argv. SystemExit gives the exit status; any other
    exception is printed as the interpreter would print it, with status 1. Without `capfd` (a module-scoped
    fixture has none) the output is not read: stdout and stderr come back empty."""
    entry = importlib.import_module(module)
    if capfd is not None:
        capfd.readouterr()  # only this call's output
    with entry_point_state([entry.__file__, *args], cwd, env):
        try:
            entry.main()
            returncode = 0
        except SystemExit as exit_:
            returncode = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
            if exit_.code is not None and not isinstance(exit_.code, int):
                print(exit_.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            returncode = 1
        sys.stdout.flush()
        sys.stderr.flush()
    out, err = capfd.readouterr() if capfd is not None else ("", "")
    return Outcome(returncode, out, err)


@contextlib.contextmanager
def entry_point_state(argv: list[str], cwd: Path, env: dict[str, str]):
    from hydra.core.global_hydra import GlobalHydra

    root = logging.getLogger()
    loggers = [root, *(lg for lg in list(logging.root.manager.loggerDict.values()) if isinstance(lg, logging.Logger))]
    saved_loggers = [(lg, lg.level, lg.disabled, lg.propagate, list(lg.handlers)) for lg in loggers]
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    grad, rng, threads = torch.is_grad_enabled(), torch.random.get_rng_state(), torch.get_num_threads()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    GlobalHydra.instance().clear()
    sys.argv = argv
    os.chdir(cwd)
    try:
        with mock.patch.dict(os.environ, env):
            yield
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        GlobalHydra.instance().clear()
        torch.set_grad_enabled(grad)
        torch.random.set_rng_state(rng)
        if torch.get_num_threads() != threads:  # a run applies its thread policy (astra_repro.threads)
            torch.set_num_threads(threads)
        for lg, level, disabled, propagate, handlers in saved_loggers:
            lg.setLevel(level)
            lg.disabled, lg.propagate = disabled, propagate
            for handler in list(lg.handlers):
                lg.removeHandler(handler)
            for handler in handlers:
                lg.addHandler(handler)
