"""The run spec: one typed, frozen object built once from the composed config, and checked as it is built.

`RunSpec.from_config(cfg)` reads every value a run uses through the checked accessors of `config_check` (each returns
the value it checked, or raises a one-line `ConfigError` naming the key and the fix), so the checked object is the
used object. Stages receive the spec, never `cfg`. `spec.plan()` is the plain dict that names and hashes the run and
is written as its `config.yaml`; it has the layout run folders have always had (`recipe` = the scale's name).

Identity vs launch: everything in `plan()` except `batch` is the run's identity (runs.config_hash); `launch` holds how
this process runs it (where to write, redo or not, score or not, the generation backend, threads, wandb), which
never changes the numbers.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from types import MappingProxyType
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from astra_repro import config_check as check
from astra_repro.errors import ConfigError
from astra_repro.methods.base import HyperParams

# Trainer settings that change logging or disk use but never the numbers; kept out of the run hash.
NON_SEMANTIC_TRAINER_KEYS = {"name", "logging_steps", "save_total_limit", "dataloader_num_workers"}


def frozen(value: Any) -> Any:
    """A read-only deep copy: mappings become MappingProxyType, lists tuples (the spec cannot be changed by a stage)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(frozen(v) for v in value)
    return value


def thawed(value: Any) -> Any:
    """The plain (JSON-like) copy of a frozen value."""
    if isinstance(value, Mapping):
        return {k: thawed(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed(v) for v in value]
    return value


@dataclass(frozen=True)
class Schedule:
    """task.train: the paper's global batch and the schedule (micro-batch and accumulation are derived: `batch`)."""

    epochs: int
    max_steps: int  # -1: the epochs decide
    global_batch_size: int
    per_device_batch_size: int
    warmup_steps: int
    warmup_ratio: float
    max_length: int
    save_steps: int
    grad_accum: int | None = None  # only by +task.train.grad_accum=N; must equal the derived one

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not (k == "grad_accum" and v is None)}


@dataclass(frozen=True)
class Launch:
    """How this process runs the spec; not part of the run's identity."""

    output_root: str | None
    force: bool
    skip_eval: bool
    keep_weights: bool
    eval_backend: str
    eval_generation: str
    runtime: Mapping
    wandb: Mapping


@dataclass(frozen=True)
class RunSpec:
    scale: str
    seed: int
    model: Mapping  # cfg.model, resolved
    task: Mapping  # cfg.task, resolved, with the selected evaluators (the schedule is `schedule`)
    method: Mapping  # the method's options (configs/method/<name>.yaml), resolved
    hp: HyperParams
    schedule: Schedule
    trainer: Mapping  # every trainer key (the non-semantic ones stay out of plan())
    calibration: Mapping | None  # None for a method that does not calibrate
    batch: Mapping  # {global, per_device, grad_accum, world_size} at this launch's process count
    launch: Launch

    @classmethod
    def from_config(cls, cfg: DictConfig) -> "RunSpec":
        """Check and build. The first invalid value raises a one-line ConfigError (keys as the user types them)."""
        from astra_repro.evaluators import check_settings
        from astra_repro.methods import METHODS
        from astra_repro.models import model_kind
        from astra_repro.tasks import TASKS
        from astra_repro.training.batch import batch_layout, world_size

        check.check_complete(cfg)
        check.check_shared_keys(cfg)
        method_name = check.get(cfg, "method.name")
        method_cls = METHODS.get(method_name)  # an unknown name lists the valid ones
        task_cls = TASKS.get(check.get(cfg, "task.name"))
        kind = model_kind(cfg.model)
        if kind not in task_cls.model_kinds:
            raise ConfigError(f"task '{task_cls.name}' needs a {' or '.join(task_cls.model_kinds)} model but "
                              f"model={cfg.model.name} is {kind}; pick another model=")

        # hyper-parameters: lr, rank, alpha are flat keys the scale files set (configs/scale, method_scale, ...)
        if method_cls.uses_peft:
            rank = check.integer(cfg, "rank", minimum=1, example="rank=16")
            alpha = check.number(cfg, "alpha", positive=True, example="alpha=32",
                                 why="the adapter's scaling is alpha/rank: 0 trains an adapter that never changes the output")
        else:  # FFT / base: no adapter, rank and alpha unused (recorded as 0)
            check.integer(cfg, "rank", minimum=0, example="rank=16")
            check.number(cfg, "alpha", minimum=0.0, example="alpha=32")
            rank, alpha = 0, 0.0
        lr = check.number(cfg, "lr", positive=method_cls.trains, minimum=0.0, example="lr=2e-4")  # base: lr 0
        hp = HyperParams(
            rank=int(rank), alpha=float(alpha), dropout=check.number(cfg, "method.dropout", minimum=0.0, below=1.0,
                                                                     example="method.dropout=0.05"),
            target_modules=list(check.get(cfg, "model.target_modules")), learning_rate=float(lr),
            use_rslora=check.boolean(cfg, "method.use_rslora"), use_dora=check.boolean(cfg, "method.use_dora"),
        )

        schedule = Schedule(
            epochs=check.integer(cfg, "task.train.epochs", minimum=0),
            max_steps=check.max_steps(cfg),
            global_batch_size=check.integer(cfg, "task.train.global_batch_size", minimum=1,
                                            example="task.train.global_batch_size=128"),
            per_device_batch_size=check.integer(cfg, "task.train.per_device_batch_size", minimum=1),
            warmup_steps=check.integer(cfg, "task.train.warmup_steps", minimum=0),
            warmup_ratio=float(check.number(cfg, "task.train.warmup_ratio", minimum=0.0, below=1.0)),
            max_length=check.integer(cfg, "task.train.max_length", minimum=2),
            save_steps=check.integer(cfg, "task.train.save_steps", minimum=1),
            grad_accum=check.integer(cfg, "task.train.grad_accum", minimum=1, optional=True),
        )
        check.integer(cfg, "task.data.n_train", minimum=1, optional=True)
        check_settings(check.get(cfg, "task.evaluators"))  # a run scores at its end: refused before hours of training
        task = OmegaConf.to_container(cfg.task, resolve=True)
        task.pop("train")
        task["evaluators"] = select_evaluators(task["evaluators"], check.get(cfg, "evaluators"))

        # calibration: checked for every run (a bad value is a mistake even where this method does not read it);
        # in the spec only for a method that calibrates (the enumerations are CalibrationSpec's own checks)
        calibration = None
        if cfg.get("calibration") is not None:
            check.integer(cfg, "calibration.n_samples", minimum=1, example="calibration.n_samples=64")
            check.integer(cfg, "calibration.seq_len", minimum=2, example="calibration.seq_len=128")
            check.integer(cfg, "calibration.batch_size", minimum=1)
            check.integer(cfg, "calibration.seed", minimum=0)
            for key in ("calibration.include_padding", "calibration.center"):
                check.boolean(cfg, key, optional=True)
            if method_cls.needs_calibration:
                calibration = OmegaConf.to_container(cfg.calibration, resolve=True)

        check.number(cfg, "trainer.max_grad_norm", minimum=0.0, optional=True)
        check.number(cfg, "trainer.weight_decay", minimum=0.0, optional=True)
        check.bf16(cfg)
        # the method's declared options (Method.options): a typo or a bad value is one line here, before any model
        # loads; fill=False keeps the dict (the run hash) exactly what the YAML and the overrides set
        checked = method_cls.check_options(OmegaConf.to_container(cfg.method, resolve=True), fill=False)
        method = {k: v for k, v in checked.items() if k != "description"}
        launch = Launch(
            output_root=cfg.get("output_root"), force=check.boolean(cfg, "force"),
            skip_eval=check.boolean(cfg, "skip_eval"), keep_weights=check.boolean(cfg, "keep_weights"), eval_backend=check.get(cfg, "eval.backend"),
            eval_generation=check.get(cfg, "eval.generation"), runtime=frozen(check.get(cfg, "runtime") or {}),
            wandb=frozen({**(check.get(cfg, "wandb") or {}), "enabled": check.boolean(cfg, "wandb.enabled")}),
        )
        return cls(
            scale=str(check.get(cfg, "scale")), seed=check.integer(cfg, "seed", minimum=0),
            model=frozen(OmegaConf.to_container(cfg.model, resolve=True)), task=frozen(task), method=frozen(method),
            hp=hp, schedule=schedule, trainer=frozen(OmegaConf.to_container(cfg.trainer, resolve=True)),
            calibration=frozen(calibration) if calibration is not None else None,
            # the scale's global batch over this launch's processes (WORLD_SIZE): recorded, not part of the identity
            batch=frozen(batch_layout(schedule.as_dict(), world_size(), "task.train")), launch=launch,
        )

    def plan(self) -> dict:
        """The plain dict that names, hashes and records the run (its config.yaml)."""
        plan = {
            "model": thawed(self.model),
            "recipe": self.scale,  # records have always called the scale so
            "task": {"name": self.task["name"], "data": thawed(self.task["data"]),
                     "evaluators": thawed(self.task["evaluators"])},
            "schedule": self.schedule.as_dict(),
            "method": thawed(self.method),
            "hp": {"rank": self.hp.rank, "alpha": self.hp.alpha, "learning_rate": self.hp.learning_rate,
                   "dropout": self.hp.dropout, "use_rslora": self.hp.use_rslora, "use_dora": self.hp.use_dora,
                   "target_modules": list(self.hp.target_modules)},
            "trainer": {k: v for k, v in thawed(self.trainer).items() if k not in NON_SEMANTIC_TRAINER_KEYS},
            "seed": self.seed,
        }
        if self.calibration is not None:
            plan["calibration"] = thawed(self.calibration)
        plan["batch"] = thawed(self.batch)
        return json.loads(json.dumps(plan))  # plain JSON types only (the hash and the YAML see what the record sees)

    def model_config(self) -> DictConfig:
        """cfg.model as `load_model` reads it, read-only."""
        return _readonly(thawed(self.model))

    def trainer_config(self) -> DictConfig:
        """cfg.trainer as the HF TrainingArguments builder reads it, read-only."""
        return _readonly(thawed(self.trainer))

    def method_options(self) -> DictConfig:
        """The method's options as the read-only DictConfig methods read (`options.subspace`, ...)."""
        return _readonly(thawed(self.method))

    def task_config(self) -> DictConfig:
        """The task block as tasks read it (data, glue_task, ...), read-only."""
        return _readonly({**thawed(self.task), "train": self.schedule.as_dict()})


def _readonly(value: dict) -> DictConfig:
    node = OmegaConf.create(value)
    OmegaConf.set_readonly(node, True)
    return node


def plan_run(cfg: DictConfig) -> dict:
    """The plan of the run `cfg` composes (checked): what names, hashes and records it (sweeps plan with it)."""
    return RunSpec.from_config(cfg).plan()


def select_evaluators(task_evaluators: dict, requested) -> dict:
    """The task's evaluator blocks, or the subset named by `evaluators=[a,b]` (order kept as requested)."""
    if requested is None:
        return task_evaluators
    names = [requested] if isinstance(requested, str) else list(requested)
    unknown = [n for n in names if n not in task_evaluators]
    if unknown:
        raise ConfigError(f"evaluators={unknown} are not evaluators of this task; valid: {', '.join(task_evaluators)}")
    return {n: task_evaluators[n] for n in names}
