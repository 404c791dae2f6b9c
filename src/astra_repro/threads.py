"""CPU thread settings, chosen in one place before torch's OpenMP runtime starts (issue 20: no collapse under load).

On a CPU shared with another busy process, OpenMP threads that spin-wait for work (libgomp's default) burn the
core they share with the competitor: a SmolLM2 training step slowed 2.75x beside one `yes` with 2 threads
(fair share: 2x), 1.8x with OMP_WAIT_POLICY=PASSIVE (threads sleep on a futex as soon as they are idle). The
policy, applied by every entry point (`python -m astra_repro.train|evaluate|...`, scripts/*.py):

* threads: the CPUs this process may run on (`os.sched_getaffinity`, not `os.cpu_count()`: a container or
  `taskset` can give a process fewer CPUs than the machine has), shared out among the processes of a multi-process
  launch on this node (LOCAL_WORLD_SIZE); applied with `torch.set_num_threads` when a run starts (`apply_runtime`).
* OMP_WAIT_POLICY=PASSIVE, put into os.environ by `configure_environment`, which `astra_repro/__init__.py` calls:
  libgomp reads it once, when torch loads it, and `python -m astra_repro.X` imports the package before X's
  `import torch`. A script must import astra_repro before torch (scripts/*.py do, on their first lines).

Overrides, strongest first:
* threads: `runtime.threads=<n>` (config / command line) > the environment's OMP_NUM_THREADS > auto.
* wait policy: the environment's OMP_WAIT_POLICY (and GOMP_SPINCOUNT, which libgomp lets override the policy's
  spin count) is never replaced. `runtime.omp_wait_policy=passive|active` cannot change a runtime that has
  already started (the config is read after torch is loaded): a request that differs from what the runtime uses
  is a warning and is written into the record (`runtime.omp_wait_policy_note`) - set OMP_WAIT_POLICY in the
  environment instead. ASTRA_REPRO_NO_THREAD_POLICY=1 leaves OMP_WAIT_POLICY unset (libgomp's default: spin a
  while, then sleep), the behaviour before issue 20.

Run records carry `runtime` (`runtime_record`): the threads in use, the affinity CPUs, the wait policy the
runtime started with, and where each came from.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping

log = logging.getLogger("astra_repro")

DEFAULT_WAIT_POLICY = "PASSIVE"
WAIT_POLICIES = ("auto", "passive", "active")
# Set in the environment next to the defaults this module wrote, so that a child process (a DDP rank, a sweep's
# run, a benchmark child) that inherits them records them as the project's default, not as the user's choice.
DEFAULTS_MARK = "ASTRA_REPRO_OMP_DEFAULTS"
# ASTRA_REPRO_NO_THREAD_POLICY=1: leave OMP_WAIT_POLICY unset (libgomp's own default, the behaviour before issue 20).
OPT_OUT = "ASTRA_REPRO_NO_THREAD_POLICY"
LIBGOMP_UNSET = "unset (libgomp default: spin ~300k iterations, then sleep)"

_state: dict | None = None  # what configure_environment decided, once per process


def affinity_cpus() -> int:
    """The CPUs this process may run on (its affinity mask), or os.cpu_count() where there is no such call."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def configure_environment(environ: MutableMapping[str, str] | None = None, torch_loaded: bool | None = None) -> dict:
    """Put OMP_WAIT_POLICY=PASSIVE into the environment unless the user set it, before torch loads libgomp.
    Returns (and, for the process's own environment, remembers) what the OpenMP runtime starts or started with.

    When torch is already imported (a caller imported it before astra_repro) the runtime has read its settings:
    the environment is left alone, so it keeps saying what the runtime uses, and the record says the default was
    not applied."""
    global _state
    own = environ is None
    environ = os.environ if environ is None else environ
    torch_loaded = ("torch" in sys.modules) if torch_loaded is None else torch_loaded
    marked = set(filter(None, environ.get(DEFAULTS_MARK, "").split(",")))
    value = environ.get("OMP_WAIT_POLICY")
    if value is not None:
        inherited = "OMP_WAIT_POLICY" in marked and value.upper() == DEFAULT_WAIT_POLICY
        source = "default (inherited)" if inherited else "environment"
    elif torch_loaded:
        source = "not applied: torch was imported before astra_repro"
    elif environ.get(OPT_OUT, "").strip() not in ("", "0"):
        source = f"not applied: {OPT_OUT} is set"
    else:
        environ["OMP_WAIT_POLICY"] = value = DEFAULT_WAIT_POLICY
        environ[DEFAULTS_MARK] = ",".join(sorted(marked | {"OMP_WAIT_POLICY"}))
        source = "default"
    state = {
        "omp_wait_policy": value.upper() if value else LIBGOMP_UNSET,
        "omp_wait_policy_source": source,
        "gomp_spincount": environ.get("GOMP_SPINCOUNT"),  # overrides the policy's spin count when set
    }
    if own:
        _state = state
    return state


def environment_state() -> dict:
    """What the process's OpenMP runtime started with (configure_environment's answer for os.environ)."""
    return dict(_state) if _state is not None else configure_environment()


def choose_threads(requested=None, environ: Mapping[str, str] | None = None, cpus: int | None = None) -> tuple[int, str]:
    """(threads, where the number came from) for `runtime.threads` = `requested` (None / "auto" / an integer)."""
    environ = os.environ if environ is None else environ
    if requested not in (None, "auto"):
        return int(requested), "config runtime.threads"
    env_value = environ.get("OMP_NUM_THREADS", "").strip()
    if env_value:
        try:
            return max(1, int(env_value.split(",")[0])), "environment OMP_NUM_THREADS"
        except ValueError:
            log.warning("OMP_NUM_THREADS=%r is not a thread count; using the affinity CPUs", env_value)
    cpus = affinity_cpus() if cpus is None else cpus
    local_processes = _positive_int(environ.get("LOCAL_WORLD_SIZE")) or 1
    if local_processes > 1:
        return max(1, cpus // local_processes), f"auto: {cpus} affinity CPUs / LOCAL_WORLD_SIZE {local_processes}"
    return max(1, cpus), f"auto: {cpus} affinity CPUs"


def _positive_int(value) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


_applied: dict = {}  # the last apply_runtime's choices, for runtime_record


def apply_runtime(runtime: Mapping | None = None) -> dict:
    """At run start: set torch's intra-op threads from `runtime.threads` (config) and check `runtime.omp_wait_policy`
    against what the runtime started with (a mismatch is a warning and a note in the record, never a pretence).
    Returns runtime_record()."""
    import torch

    runtime = dict(runtime or {})
    requested_threads = runtime.get("threads", "auto")
    threads, threads_source = choose_threads(requested_threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    requested_policy = str(runtime.get("omp_wait_policy", "auto") or "auto").lower()
    state = environment_state()
    note = None
    if requested_policy != "auto" and requested_policy.upper() != state["omp_wait_policy"]:
        note = (f"runtime.omp_wait_policy={requested_policy} was not applied: the OpenMP runtime started with "
                f"OMP_WAIT_POLICY {state['omp_wait_policy']} ({state['omp_wait_policy_source']}) and reads it only "
                f"when torch loads; set OMP_WAIT_POLICY={requested_policy.upper()} in the environment instead")
        log.warning(note)
    _applied.clear()
    _applied.update(threads_source=threads_source, requested={"threads": requested_threads,
                                                                "omp_wait_policy": requested_policy}, note=note)
    record = runtime_record()
    log.info("runtime: %d threads (%s), %d affinity CPUs, OMP_WAIT_POLICY %s (%s)", record["threads"],
             threads_source, record["affinity_cpus"], record["omp_wait_policy"], record["source"]["omp_wait_policy"])
    return record


def runtime_record() -> dict:
    """The `runtime` block of run records: threads in use, affinity CPUs, the wait policy the runtime started with
    and where each came from (plus what the config asked for and any note on a request that could not apply)."""
    import torch

    state = environment_state()
    threads = torch.get_num_threads()
    threads_source = _applied.get("threads_source") or "torch default (apply_runtime not called)"
    record = {
        "threads": threads,
        "affinity_cpus": affinity_cpus(),
        "cpu_count": os.cpu_count(),
        "omp_wait_policy": state["omp_wait_policy"],
        "gomp_spincount": state["gomp_spincount"],
        "parallel_backend": parallel_backend(),
        "source": {"threads": threads_source, "omp_wait_policy": state["omp_wait_policy_source"]},
    }
    if _applied.get("requested"):
        record["requested"] = _applied["requested"]
    if _applied.get("note"):
        record["omp_wait_policy_note"] = _applied["note"]
    return record


def parallel_backend() -> str | None:
    """torch's intra-op backend ("OpenMP", "native thread pool", ...): the wait policy concerns OpenMP only."""
    import torch

    try:
        for line in torch.__config__.parallel_info().splitlines():
            if line.startswith("ATen parallel backend:"):
                return line.split(":", 1)[1].strip()
    except Exception:  # informational only
        return None
    return None
