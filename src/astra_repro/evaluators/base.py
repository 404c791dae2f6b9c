"""Evaluators: versioned, each carrying its prompt, decoding settings and answer extraction, and each
returning every sample it scored (so a disagreement with another codebase can be traced to one sample)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from omegaconf import DictConfig

from astra_repro.registry import Registry


@dataclass
class EvalResult:
    metrics: dict[str, float]  # e.g. {"accuracy": 0.41, "accuracy_math_verify": 0.40}
    predictions: list[dict]  # one dict per sample: prompt, output, extracted answer, verdict, ...
    info: dict = field(default_factory=dict)  # data source, sample count, decoding settings


class Evaluator(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]

    def __init__(self, cfg: DictConfig, recipe: str):
        self.cfg = cfg
        self.recipe = recipe

    @abstractmethod
    def evaluate(self, model: Any, tokenizer: Any) -> EvalResult: ...


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", config_group="task.evaluators")


def register_evaluator(cls: type[Evaluator]) -> type[Evaluator]:
    EVALUATORS.register(cls.name)(cls)
    return cls
