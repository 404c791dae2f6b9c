"""One run: calibrate -> init -> train -> export -> evaluate -> record.

    python -m astra_repro.train method=astra task=math              # embedded SmolLM2, offline, minutes on a CPU
    python -m astra_repro.train method=astra task=code              # CodeFeedback -> HumanEval(+)/MBPP(+)
    python -m astra_repro.train model=llama2_7b method=pissa         # the paper's setup (Table 8)
    python -m astra_repro.methods                                    # list the methods
    python -m astra_repro.tasks                                      # list the tasks

Every stage leaves files in the run folder, so running the same command again skips what is done: a finished
run only prints where its record is (force=true redoes it) and an interrupted one resumes.

This module checks the composed config into a run spec (spec.RunSpec) and calls the stages in order, handing them
the spec, never the config; each stage lives with what it owns: the init, the saved
weights and the export in `artifacts`, training in `training.stage`, scoring in `evaluators.stage`, the run
folder and its record in `runs`.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from astra_repro import runs, threads
from astra_repro.artifacts import build_context, disk_estimate, export_stage, init_identity, initialize, \
    reload_trained_model, saved_model_path
from astra_repro.errors import ConfigError, FolderInUse
from astra_repro.evaluators import EvalTarget
from astra_repro.evaluators.stage import evaluate_stage, print_metrics
from astra_repro.methods import get_method
from astra_repro.models import count_parameters, load_model, model_kind
from astra_repro.paths import CONFIG_DIR
from astra_repro.spec import RunSpec
from astra_repro.tasks import get_task
from astra_repro.training.launch import check_one_process_per_device, export_submitit_env, wait_for
from astra_repro.training.stage import check_targets_survive_truncation, train_stage, zero3_partitioned

log = logging.getLogger("astra_repro")



def run(cfg: DictConfig) -> Path:
    """One run of the composed config: checked into a run spec (spec.RunSpec), then the stages in order."""
    spec = RunSpec.from_config(cfg)
    threads.apply_runtime(spec.launch.runtime)  # torch's threads for this run; the wait policy was set at import
    wall_start = time.time()
    plan = spec.plan()
    method = get_method(spec.method["name"])
    run_dir = runs.run_dir(plan, spec.launch.output_root)
    if runs.is_complete(run_dir) and not spec.launch.force:
        print(f"[astra_repro] already done: {run_dir}  (force=true redoes it)")
        print_metrics(runs.read_json(run_dir / runs.METRICS_FILE))
        if not spec.launch.keep_weights:
            runs.drop_weights(run_dir)
        return run_dir
    if method.trains:  # never HF Trainer's DataParallel over the GPUs one process sees: a multiple of the batch
        check_one_process_per_device(spec.batch["world_size"])
    if spec.launch.force and run_dir.exists() and runs.world_rank() == 0:
        shutil.rmtree(run_dir)
    runs.check_disk(run_dir, 0, "this run")  # writable (space is checked once the model's size is known)
    runs.atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plan)))
    print(f"[astra_repro] run folder: {run_dir}")
    try:
        if runs.world_rank() != 0:  # the other ranks of a multi-process run share rank 0's folder
            return run_stages(spec, method, run_dir, wall_start)
        with runs.FolderLock(run_dir, "run folder"):  # two processes never write one run folder at once
            return run_stages(spec, method, run_dir, wall_start)
    except FolderInUse:  # another process is running this folder: it is not ours to mark
        raise
    except BaseException as err:  # the folder must not look like a run in progress or a finished one
        if runs.world_rank() == 0:
            runs.mark_failed(run_dir, err)
        raise


def run_stages(spec: RunSpec, method, run_dir: Path, wall_start: float) -> Path:
    """Load, calibrate + init, train, export, evaluate and record into an existing run folder."""
    (run_dir / runs.FAILED_FILE).unlink(missing_ok=True)  # a re-run after a fix starts clean
    timings: dict[str, float] = {}
    plan = spec.plan()

    import transformers

    transformers.set_seed(spec.seed)
    model_cfg = spec.model_config()
    model, tokenizer = load_model(model_cfg)
    if runs.world_rank() == 0:  # before hours of work, not after: the folder is writable and has room for the outputs
        runs.check_disk(run_dir, disk_estimate(method, model, spec.trainer), "this run")
    task = get_task(spec.task_config(), spec.scale, model_kind(model_cfg))
    # Training uses the first n_train records in file order; calibration samples from the whole set, as the
    # reference does (protocol §1.1), so the pool is kept.
    pool, data_info = task.load_training_records()
    n_train = spec.task["data"]["n_train"]
    records = pool[:n_train] if n_train else pool
    data_info.update(n_train=len(records), n_pool=len(pool))
    features = task.training_features(tokenizer, records, spec.schedule.max_length)
    check_targets_survive_truncation(features, spec.schedule.max_length)
    collate = task.collator(tokenizer)
    ctx = build_context(spec, tokenizer, task.calibration_records(pool), features, collate)

    # calibrate + init (single process: rank 0 writes, the others load)
    t0 = time.time()
    if runs.world_rank() == 0:
        model, init_report = initialize(method, model, ctx, run_dir, init_identity(plan))
    else:
        wait_for(run_dir / runs.INIT_DIR / runs.COMPLETE_FILE, "rank 0's calibration + init")
        model, init_report = initialize(method, model, ctx, run_dir)
    timings["init_s"] = round(time.time() - t0, 2)
    n_trainable, n_total = count_parameters(model)
    print(f"[astra_repro] method={method.name} rank={spec.hp.rank} trainable params={n_trainable:,} / {n_total:,}")

    train_stats: dict = {}
    if method.trains:
        t0 = time.time()
        train_stats = train_stage(spec, method, model, features, collate, run_dir)
        if runs.world_rank() == 0 and zero3_partitioned(model):
            model = reload_trained_model(spec, method, ctx, run_dir)
        timings["train_s"] = round(time.time() - t0, 2)
        t0 = time.time()
        export_stage(method, model, tokenizer, run_dir)
        timings["export_s"] = round(time.time() - t0, 2)

    if runs.world_rank() != 0:
        return run_dir
    evaluation: tuple[dict, dict, dict] = ({}, {}, {})
    if not spec.launch.skip_eval:
        t0 = time.time()
        target = EvalTarget(model, tokenizer, path=saved_model_path(method, run_dir, model_cfg),
                            backend=spec.launch.eval_backend, generation=spec.launch.eval_generation)
        evaluation = evaluate_stage(plan, target, run_dir)
        timings["eval_s"] = round(time.time() - t0, 2)
    timings["wall_s"] = round(time.time() - wall_start, 2)
    record = runs.build_record(
        run_dir, plan, task_variant=task.variant, method_name=method.name,
        label=runs.method_label(method, spec.method_options()), params=(n_trainable, n_total), data_info=data_info,
        evaluation=evaluation, train_stats=train_stats, init_report=init_report, timings=timings,
    )
    runs.atomic_write_json(run_dir / runs.METRICS_FILE, record)  # the last write: its presence means "done"
    print_metrics(record)
    print(f"[astra_repro] record: {run_dir / runs.METRICS_FILE}  ({timings['wall_s']:.0f} s)")
    if not spec.launch.keep_weights:
        print(f"[astra_repro] keep_weights=false: dropped {', '.join(runs.drop_weights(run_dir)) or 'nothing'}")
    return run_dir


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    try:
        export_submitit_env()  # a task of a multi-task submitit job: RANK, WORLD_SIZE, ... from SLURM's variables
        run(cfg)
    except ConfigError as err:
        from astra_repro.cli import exit_with

        exit_with(err)
    finally:
        close_process_group()


def close_process_group() -> None:
    """Tear the process group down before the interpreter does: a gloo group left to interpreter shutdown can
    abort a rank at exit ("terminate called without an active exception", seen once in the DDP test)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            torch.distributed.destroy_process_group()
        except Exception as err:  # never mask the run's own outcome
            log.warning("could not tear the process group down: %s", err)


def main() -> None:
    from astra_repro.cli import check_config_choices, check_override_keys, exit_with

    logging.getLogger("transformers").setLevel(logging.WARNING)
    try:
        check_config_choices(sys.argv[1:])
        check_override_keys(sys.argv[1:])
    except ConfigError as err:
        exit_with(err)
    hydra_entry()


if __name__ == "__main__":
    main()
