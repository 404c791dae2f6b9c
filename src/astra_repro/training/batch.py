"""How one launch lays out the paper's global batch over its processes (the run spec computes it with these).

The global batch is an invariant of the run: every task_scale file states the one the paper used
(`task.train.global_batch_size`), and the per-device micro-batch and the gradient accumulation are derived
from it, the number of processes (`WORLD_SIZE`, set by torchrun, the DeepSpeed launcher or `export_submitit_env`)
and `per_device_batch_size`, the largest micro-batch one device runs:

    share      = global_batch_size / world_size          (must divide)
    micro      = min(per_device_batch_size, share)
    grad_accum = share / micro                           (must divide)

so Table 1 (128, at most 128 per device) is 128 x 1 on one GPU, 32 x 1 on four and 16 x 1 on eight, and the math
scale (128, at most 8 per device) is 8 x 16, 8 x 4 and 8 x 2. Numbers that do not divide are a one-line
ConfigError naming the key to change or the process count to use, never a different global batch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from astra_repro.errors import ConfigError


def world_size() -> int:
    """The number of training processes of this launch (WORLD_SIZE; 1 when unset)."""
    value = os.environ.get("WORLD_SIZE") or "1"
    try:
        size = int(value)
    except ValueError:
        size = 0
    if size < 1:
        raise ConfigError(f"WORLD_SIZE={value!r} is not a positive process count; launch with torchrun --nproc_per_node=<N>")
    return size


def batch_layout(schedule: Mapping, n_processes: int, prefix: str) -> dict:
    """{global, per_device, grad_accum, world_size} for a schedule (task.train) on `n_processes` processes.

    `prefix` is the key the user types (`task.train`), for the error messages. A `grad_accum` in the schedule
    (only by `+task.train.grad_accum=N`: the scale files leave it out) must equal the derived one."""
    global_batch, cap = schedule.get("global_batch_size"), schedule.get("per_device_batch_size")
    if global_batch is None:
        raise ConfigError(f"{prefix}.global_batch_size is not set; set it to the paper's global batch "
                          f"(e.g. {prefix}.global_batch_size=128)")
    for key, value in (("global_batch_size", global_batch), ("per_device_batch_size", cap)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{prefix}.{key}={value!r} must be an integer >= 1; set {prefix}.{key}=<integer >= 1>")
    if global_batch % n_processes:
        below = max(d for d in range(1, min(n_processes, global_batch) + 1) if global_batch % d == 0)
        above = [d for d in range(n_processes, global_batch + 1) if global_batch % d == 0][:1]
        counts = " or ".join(str(d) for d in [below, *above])
        raise ConfigError(
            f"{prefix}.global_batch_size={global_batch} does not split over {n_processes} processes (WORLD_SIZE); "
            f"launch a process count that divides it (torchrun --nproc_per_node={counts}) "
            f"or set {prefix}.global_batch_size to a multiple of {n_processes}")
    share = global_batch // n_processes
    micro = min(cap, share)
    if share % micro:
        divisors = [d for d in range(micro, 0, -1) if share % d == 0]
        raise ConfigError(
            f"{prefix}.per_device_batch_size={cap} does not divide the {share} examples per process and step "
            f"({prefix}.global_batch_size={global_batch} over {n_processes} process(es)); set "
            f"{prefix}.per_device_batch_size={divisors[0]} (or another divisor of {share})")
    accum = share // micro
    explicit = schedule.get("grad_accum")
    if explicit is not None and explicit != accum:
        raise ConfigError(
            f"{prefix}.grad_accum={explicit!r} contradicts {prefix}.global_batch_size={global_batch}: at "
            f"{n_processes} process(es) of at most {cap} per device the accumulation is {accum}; drop grad_accum "
            f"(it is derived) and set {prefix}.per_device_batch_size to trade memory for accumulation")
    return {"global": micro * accum * n_processes, "per_device": micro, "grad_accum": accum, "world_size": n_processes}
