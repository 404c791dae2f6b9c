"""The training stage of a run: the method's init trained to the end of the schedule into `trained/`, or the
finished weights loaded when an earlier launch already trained them."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch

from astra_repro import runs
from astra_repro.artifacts import artifacts_of
from astra_repro.errors import ConfigError

log = logging.getLogger("astra_repro")


def check_targets_survive_truncation(features: list[dict], max_length: int) -> None:
    """A prompt longer than max_length leaves no response tokens: the loss would silently be zero."""
    empty = sum(1 for f in features if all(label == -100 for label in f["labels"]))
    if features and empty == len(features):
        raise ConfigError(
            f"every training example is cut before its response at max_length={max_length}; raise task.train.max_length"
        )
    if empty:
        log.warning("%d of %d training examples have no response tokens left after truncation", empty, len(features))


def train_stage(spec, method, model, features, collate, run_dir: Path) -> dict:
    """Train (or load what a finished training left) as the run spec (spec.RunSpec) says."""
    from astra_repro.training.trainer import build_training_arguments, train

    trained = run_dir / runs.TRAINED_DIR
    if runs.stage_done(trained):
        problem = runs.weights_problem(trained)
        if problem is None:
            log.info("train: already done, loading %s", trained)
            artifacts_of(method).load_trained(model, trained)
            return runs.stage_record(trained)
        log.warning("train: the saved weights in %s are unusable (%s); finishing training again from the last "
                    "checkpoint", trained, problem)
    bf16 = spec.trainer["bf16"]
    use_bf16 = bf16 is True or (bf16 == "auto" and spec.model["dtype"] == "bfloat16" and torch.cuda.is_available())
    report_to = []
    if spec.launch.wandb["enabled"]:
        os.environ.setdefault("WANDB_PROJECT", spec.launch.wandb["project"])
        if not os.environ.get("WANDB_API_KEY"):
            os.environ.setdefault("WANDB_MODE", "offline")
        report_to = ["wandb"]
    plan = spec.plan()
    args = build_training_arguments(run_dir, plan["schedule"], plan["batch"], spec.trainer_config(), spec.hp.learning_rate,
                                    spec.seed, use_bf16, report_to)
    groups = method.optimizer_param_groups(model, spec.hp.learning_rate, spec.trainer["weight_decay"], spec.method_options())
    optimizer = torch.optim.AdamW(groups) if groups else None
    # trained/ is kept (training resumes from the run folder's checkpoints); rank 0 alone marks it finished
    with runs.stage_folder(trained, clear=False, mark=runs.world_rank() == 0) as record:
        record.update(train(model, features, collate, args, run_dir, optimizer=optimizer, save_to=trained,
                            batch=plan["batch"]))
    return dict(record)


def zero3_partitioned(model) -> bool:
    """True when DeepSpeed ZeRO-3 has sharded the live parameters across ranks (each rank holds a slice)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())
