"""How a launch's processes come to exist (torchrun, DeepSpeed, submitit) and the checks made before they start:
one process per GPU, and the global batch's layout over the processes (training/batch.py) printed in one line.

A single process that sees several GPUs is refused: HF Trainer would wrap the model in DataParallel and split each
micro-batch over them, training at a multiple of the planned batch while every log says otherwise.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from astra_repro.errors import ConfigError


def wait_for(path: Path, what: str, timeout_s: float = 6 * 3600) -> None:
    """Non-zero ranks wait for rank 0 to finish a single-process stage (calibration + init)."""
    start = time.time()
    while not path.exists():
        if time.time() - start > timeout_s:
            raise RuntimeError(f"timed out waiting for {what} ({path})")
        time.sleep(5)


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

    from astra_repro.cli import check_config_choices, check_override_keys, exit_with

    overrides = sys.argv[1:] if argv is None else list(argv)
    try:
        check_config_choices(overrides)
        check_override_keys(overrides)
        from hydra import compose, initialize_config_dir
        from hydra.errors import HydraException
        from omegaconf.errors import OmegaConfBaseException

        from astra_repro.methods import METHODS
        from astra_repro.paths import CONFIG_DIR
        from astra_repro.spec import RunSpec

        try:
            with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
                cfg = compose("config", overrides=overrides)
        except (HydraException, OmegaConfBaseException) as err:  # Hydra's own message, as the entry point gives it
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        spec = RunSpec.from_config(cfg)
        if METHODS.get(spec.method["name"]).trains:
            check_one_process_per_device(spec.batch["world_size"])
    except ConfigError as err:
        exit_with(err)
    print(f"[astra_repro] {describe(spec.batch)} (task.train)", flush=True)


if __name__ == "__main__":
    main()
