"""What a task is. A task family (math, code, ...) is one module in this package plus one YAML in `configs/task/`.

The runner only calls this interface and never names a task:

    task = get_task(cfg.task, recipe, model_kind)     # model_kind: the kind of the model being trained
    records, info = task.load_training_records()      # local file -> hub -> declared fallback; info names the source
    features = task.training_features(tokenizer, records[:n_train], max_length)
    collate = task.collator(tokenizer)
    task.calibration_records(records)                 # what data-driven inits calibrate on
    task.model_kinds                                   # the model kinds it supports: causal_lm and/or seq2seq

Evaluators are named in the task's YAML (`evaluators:` block, one entry per benchmark) and live in the evaluator
registry, so a benchmark can be shared by several tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, Sequence

from omegaconf import DictConfig

from astra_repro.data.sft import SFTCollator, tokenize_records
from astra_repro.registry import Registry

MODEL_KINDS = ("causal_lm", "seq2seq")


class Task(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    model_kinds: ClassVar[tuple[str, ...]] = ("causal_lm",)  # the model kinds this task can train and score

    def __init__(self, cfg: DictConfig, recipe: str, model_kind: str = "causal_lm"):
        self.cfg = cfg  # the task's YAML block (cfg.task)
        self.recipe = recipe
        self.model_kind = model_kind  # the kind of the model in this run (features may depend on it)

    @abstractmethod
    def load_training_records(self) -> tuple[list[dict], dict]:
        """All training records in file order as {"instruction": str, "output": str}, and where they came from
        ({"data_source": local|hub|synthetic, "data_path": ...}); the runner trains on the first n_train."""

    @property
    def variant(self) -> str | None:
        """Which member of a task family this run is (GLUE: sst2, mnli, ...), or None; records and tables use it."""
        return None

    def calibration_records(self, records: Sequence[dict]) -> Sequence[dict]:
        """Records calibration samples are drawn from: the whole set, not the training slice (protocol §1.1)."""
        return records

    def training_features(self, tokenizer: Any, records: Sequence[dict], max_length: int) -> list[dict]:
        """Tokenised examples with the reference label masking (prompt positions = -100; protocol §2.2)."""
        return tokenize_records(tokenizer, records, max_length)

    def collator(self, tokenizer: Any):
        return SFTCollator(tokenizer.pad_token_id)


TASKS: Registry[type[Task]] = Registry("task")


def register_task(cls: type[Task]) -> type[Task]:
    if not set(cls.model_kinds) <= set(MODEL_KINDS):
        raise ValueError(f"task {cls.name}: model_kinds must be among {MODEL_KINDS}")
    TASKS.register(cls.name)(cls)
    return cls
