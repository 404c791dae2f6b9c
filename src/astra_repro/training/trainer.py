"""Training with the HF Trainer (accelerate / DeepSpeed underneath): loss, grad norm and learning rate at
every step to `train_log.jsonl`, checkpoints in the run folder, and resume from the last one."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Sequence

import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from astra_repro.paths import CONFIG_DIR
from astra_repro.runs import CHECKPOINTS_DIR

log = logging.getLogger(__name__)

TRAIN_LOG = "train_log.jsonl"
BATCH_FILE = "batch.json"  # in the checkpoints folder: the batch layout its checkpoints were written with


class JsonlLogCallback(TrainerCallback):
    """Appends every log event (one line per optimiser step with logging_steps=1) to a JSONL file."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")


def trim_log_after(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint we restart from (they will be re-logged)."""
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line).get("step", 0) <= step]
    path.write_text("".join(line + "\n" for line in kept))


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint that was written to the end, or None. The Trainer writes a checkpoint's files one by
    one and `trainer_state.json` last, so a kill while saving leaves a newer folder without it (or with weights
    cut short); such folders are removed with a warning and training resumes from the one before."""
    import shutil

    from astra_repro.runs import weights_problem

    folder = Path(folder)
    if not folder.exists():
        return None
    candidates = sorted(
        (p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]), reverse=True,
    )
    for checkpoint in candidates:
        problem = None if (checkpoint / "trainer_state.json").exists() else "no trainer_state.json"
        problem = problem or weights_problem(checkpoint)
        if problem is None:
            return str(checkpoint)
        if os.environ.get("RANK", "0") == "0":
            log.warning("checkpoint %s is incomplete (%s; interrupted while saving?): removing it", checkpoint, problem)
            shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def checkpoint_step(checkpoint: str) -> int:
    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text())
    return int(state["global_step"])


def deepspeed_config_path(value: str | None) -> str | None:
    if not value:
        return None
    path = Path(value)
    if path.suffix != ".json":
        path = CONFIG_DIR / "deepspeed" / f"{value}.json"
    if not path.exists():
        from astra_repro.errors import ConfigError

        raise ConfigError(f"DeepSpeed config '{value}' not found; use zero2, zero3 or a path to a JSON file")
    return str(path)


def check_trainer_batch(args: TrainingArguments, batch: dict) -> None:
    """The Trainer's own global batch (its micro-batch, times the GPUs DataParallel would split it over, times
    accumulation and processes) must be the planned one: whatever the launcher, the record never says 128 for 512."""
    real = args.train_batch_size * args.gradient_accumulation_steps * args.world_size
    if real != batch["global"]:
        raise RuntimeError(
            f"the Trainer would train at global batch {real} ({args.train_batch_size} per step x "
            f"{args.gradient_accumulation_steps} accumulation x {args.world_size} processes, {args.n_gpu} GPU(s) in this "
            f"process), not the planned {batch['global']}; launch one process per GPU with torchrun")


def check_resume_layout(output_dir: Path, last: str | None, batch: dict) -> None:
    """Checkpoints resume only under the layout that wrote them (a ZeRO optimizer shard, the data order per process
    and the RNG states are per process): another process count is a one-line error naming the one to use."""
    from astra_repro.errors import ConfigError

    path = output_dir / BATCH_FILE
    saved = json.loads(path.read_text()) if last and path.exists() else None
    if saved is not None and saved != batch:
        raise ConfigError(
            f"{last} was written by {saved['world_size']} process(es) ({saved['per_device']} per device x "
            f"{saved['grad_accum']} accumulation), this launch has {batch['world_size']}; resume it with torchrun "
            f"--nproc_per_node={saved['world_size']}, or start it again with force=true")
    if os.environ.get("RANK", "0") == "0" and saved is None:
        output_dir.mkdir(parents=True, exist_ok=True)
        from astra_repro.runs import atomic_write_json

        atomic_write_json(path, batch)


def build_training_arguments(run_dir: Path, schedule: dict, batch: dict, trainer_cfg, lr: float, seed: int, use_bf16: bool,
                             report_to: list[str]) -> TrainingArguments:
    """`batch` is the launch's layout of the scale's global batch (training.batch.batch_layout): the micro-batch
    and the accumulation come from it, never from the schedule directly."""
    warmup = schedule.get("warmup_steps") or schedule.get("warmup_ratio") or 0
    # Only passed when on: the keyword is being renamed across transformers versions.
    extra = {"gradient_checkpointing": True} if trainer_cfg.gradient_checkpointing else {}
    return TrainingArguments(
        **extra,
        output_dir=str(run_dir / CHECKPOINTS_DIR),
        per_device_train_batch_size=batch["per_device"],
        gradient_accumulation_steps=batch["grad_accum"],
        num_train_epochs=schedule["epochs"],
        max_steps=schedule["max_steps"],
        learning_rate=lr,
        lr_scheduler_type=trainer_cfg.lr_scheduler,
        warmup_steps=warmup,
        weight_decay=trainer_cfg.weight_decay,
        max_grad_norm=trainer_cfg.max_grad_norm,
        optim=trainer_cfg.optim,
        logging_steps=trainer_cfg.logging_steps,
        save_strategy="steps",
        save_steps=schedule["save_steps"],
        save_total_limit=trainer_cfg.save_total_limit,
        bf16=use_bf16,
        seed=seed,
        data_seed=seed,
        report_to=report_to,
        deepspeed=deepspeed_config_path(trainer_cfg.deepspeed),
        dataloader_num_workers=trainer_cfg.dataloader_num_workers,
        remove_unused_columns=False,
        include_num_input_tokens_seen="non_padding",  # the cost table's "tokens trained on" (kept across resumes)
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )


def train(
    model: torch.nn.Module,
    features: Sequence[dict],
    collate_fn,
    args: TrainingArguments,
    run_dir: Path,
    optimizer: torch.optim.Optimizer | None = None,
    save_to: Path | None = None,
    batch: dict | None = None,
) -> dict:
    """Train to the end of the schedule, resuming from the newest complete checkpoint in the run folder if any,
    and save the trained weights (the adapter, or the full model) to `save_to`. Every rank calls this: under
    ZeRO-3 the save gathers the partitioned parameters, which is a collective; rank 0 writes.

    `batch` (the planned layout, {global, per_device, grad_accum, world_size}) is checked against what the Trainer
    will really do, and a checkpoint is resumed only by a launch with the layout that wrote it."""
    log_path = run_dir / TRAIN_LOG
    if batch is not None:
        check_trainer_batch(args, batch)
    last = last_complete_checkpoint(Path(args.output_dir))
    if batch is not None:
        check_resume_layout(Path(args.output_dir), last, batch)
    if os.environ.get("RANK", "0") == "0":
        if last:
            log.info("resuming from %s", last)
            trim_log_after(log_path, checkpoint_step(last))
        elif log_path.exists():
            log_path.unlink()  # a fresh start: an old partial log would mix two runs
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=list(features),
        data_collator=collate_fn,
        callbacks=[JsonlLogCallback(log_path)],
        optimizers=(optimizer, None),
    )
    result = trainer.train(resume_from_checkpoint=last)
    if save_to is not None:
        trainer.save_model(str(save_to))
    return {"train_runtime_s": result.metrics.get("train_runtime"), "train_loss": result.training_loss,
            "global_step": result.global_step, "resumed_from": last,
            "tokens_trained": int(trainer.state.num_input_tokens_seen), "batch": batch}
