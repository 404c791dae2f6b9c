"""How one launch lays out the paper's global batch over its processes, and how its processes come to exist.

The global batch is an invariant of the run: every task recipe states the one the paper used
(`task.train.<recipe>.global_batch_size`), and the per-device micro-batch and the gradient accumulation are derived
from it, the number of processes (`WORLD_SIZE`, set by torchrun, the DeepSpeed launcher or `export_submitit_env`)
and `per_device_batch_size`, the largest micro-batch one device runs:

    share      = global_batch_size / world_size          (must divide)
    micro      = min(per_device_batch_size, share)
    grad_accum = share / micro                           (must divide)

so Table 1 (128, at most 128 per device) is 128 x 1 on one GPU, 32 x 1 on four and 16 x 1 on eight, and the math
recipe (128, at most 8 per device) is 8 x 16, 8 x 4 and 8 x 2. Numbers that do not divide are a one-line
ConfigError naming the key to change or the process count to use, never a different global batch.

A single process that sees several GPUs is refused: HF Trainer would wrap the model in DataParallel and split each
micro-batch over them, training at a multiple of the planned batch while every log says otherwise.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from pathlib import Path

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


def wait_for(path: Path, what: str, timeout_s: float = 6 * 3600) -> None:
    """Non-zero ranks wait for rank 0 to finish a single-process stage (calibration + init)."""
    start = time.time()
    while not path.exists():
        if time.time() - start > timeout_s:
            raise RuntimeError(f"timed out waiting for {what} ({path})")
        time.sleep(5)


def batch_layout(schedule: Mapping, n_processes: int, prefix: str) -> dict:
    """{global, per_device, grad_accum, world_size} for a recipe's schedule on `n_processes` processes.

    `prefix` is the key the user types (`task.train.<recipe>`), for the error messages. A `grad_accum` in the schedule
    (only by `+task.train.<recipe>.grad_accum=N`: the recipes leave it out) must equal the derived one."""
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


def check_one_process_per_device(n_processes: int, n_visible_gpus: int | None = None) -> None:
    """Refuse a lone process that sees several GPUs (HF Trainer would silently use DataParallel over them)."""
    if n_processes != 1:
        return
    if n_visible_gpus is None:
        import torch

        n_visible_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n_visible_gpus > 1:
        raise ConfigError(
            f"this single process sees {n_visible_gpus} GPUs (WORLD_SIZE unset or 1): HF Trainer would split every "
            f"batch over them with DataParallel; start one process per GPU with torchrun --nproc_per_node="
            f"{n_visible_gpus} -m astra_repro.train ..., or show it one GPU with CUDA_VISIBLE_DEVICES=0")


def export_submitit_env() -> dict | None:
    """Under a SLURM job started by submitit with several tasks (configs/hydra/launcher/slurm_cluster.yaml: one
    task per GPU) every task runs the entry point itself, without torchrun: export to os.environ the variables
    torchrun would set (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) from SLURM's
    (SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST, SLURM_JOB_ID), through submitit's own
    TorchDistributedEnvironment: the first node of the job is the master, the port is drawn from the job id so that
    every task agrees (a MASTER_PORT already set wins). CUDA_VISIBLE_DEVICES is left alone: each task sees the
    node's GPUs and takes cuda:LOCAL_RANK, as under torchrun.

    Does nothing (returns None) outside submitit, for a one-task job, or when a launcher already set RANK or
    WORLD_SIZE; returns the exported variables otherwise."""
    env = os.environ
    if env.get("SUBMITIT_EXECUTOR") != "slurm" or "RANK" in env or "WORLD_SIZE" in env:
        return None
    try:
        n_tasks = int(env.get("SLURM_NTASKS") or 1)
    except ValueError:
        raise ConfigError(f"SLURM_NTASKS={env['SLURM_NTASKS']!r} is not a task count") from None
    if n_tasks <= 1:
        return None
    from submitit.helpers import TorchDistributedEnvironment

    dist = TorchDistributedEnvironment()
    exported = {
        "MASTER_ADDR": str(dist.master_addr), "MASTER_PORT": str(dist.master_port), "RANK": str(dist.rank),
        "WORLD_SIZE": str(dist.world_size), "LOCAL_RANK": str(dist.local_rank),
        "LOCAL_WORLD_SIZE": str(dist.local_world_size),
    }
    env.update(exported)
    return exported


def describe(batch: dict) -> str:
    return (f"global batch {batch['global']} = {batch['per_device']} per device x {batch['grad_accum']} accumulation x "
            f"{batch['world_size']} process(es)")


def main(argv: list[str] | None = None) -> None:
    """`WORLD_SIZE=N python -m astra_repro.training.launch <overrides>`: the run's batch layout at N processes, one
    line, before slurm/array.sbatch starts them; a layout that does not divide (or one process seeing several GPUs)
    is the entry point's one-line error and exit status 2, before any process loads a model."""
    import sys

    from astra_repro.cli import check_config_choices, exit_with

    overrides = sys.argv[1:] if argv is None else list(argv)
    try:
        check_config_choices(overrides)
        from hydra import compose, initialize_config_dir
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from astra_repro.config_check import check_run_config
        from astra_repro.methods import METHODS
        from astra_repro.paths import CONFIG_DIR
        from astra_repro.train import plan_run

        try:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                cfg = compose("config", overrides=overrides)
        except (HydraException, OmegaConfBaseException) as err:  # Hydra's own message, as the entry point gives it
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        check_run_config(cfg)
        plan = plan_run(cfg)
        if METHODS.get(plan["method"]["name"]).trains:
            check_one_process_per_device(plan["batch"]["world_size"])
    except ConfigError as err:
        exit_with(err)
    print(f"[astra_repro] {describe(plan['batch'])} (task.train.{plan['recipe']})", flush=True)


if __name__ == "__main__":
    main()
