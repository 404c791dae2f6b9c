"""Evaluators: versioned, each carrying its prompt, decoding settings and answer extraction, and each
returning every sample it scored (so a disagreement with another codebase can be traced to one sample).

An evaluator receives an `EvalTarget`: the model in memory (adapter merged) and, when one exists, a folder on disk
that holds the same weights (a run's `export/merged`, a model folder). Generation goes through
`Evaluator.generate`, which picks the backend (`eval.backend=auto|hf|vllm`), so an evaluator never cares which
one runs.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

from omegaconf import DictConfig

from astra_repro.registry import Registry


@dataclass
class EvalResult:
    metrics: dict[str, float]  # e.g. {"accuracy": 0.41, "accuracy_math_verify": 0.40}
    predictions: list[dict]  # one dict per sample: prompt, output, extracted answer, verdict, ...
    info: dict = field(default_factory=dict)  # data source, sample count, decoding settings


@dataclass
class EvalTarget:
    """What is being scored. `model` is an in-memory HF model (None when only `path` is known); `path` is a folder
    that `from_pretrained` / vLLM / lm-eval can load with the same weights, or None (e.g. an unsaved model)."""

    model: Any
    tokenizer: Any
    path: str | None = None
    backend: str = "auto"  # auto | hf | vllm (see evaluators/generation.py)
    generation: str = "regroup"  # the hf backend's batching: regroup | padded (see evaluators/decoding.py)


class Evaluator(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    primary_metric: ClassVar[str] = "accuracy"  # the metric tables show first (code benchmarks: pass@1)

    def __init__(self, cfg: DictConfig, recipe: str):
        self.cfg = cfg
        self.recipe = recipe

    @abstractmethod
    def evaluate(self, target: EvalTarget) -> EvalResult: ...

    def skipped(self, info: dict) -> EvalResult:
        """No data for this benchmark: say so (printed and warned, `info["skipped"]` names the fix) and score
        nothing, so the run's other evaluators still run."""
        print(f"[astra_repro] {self.name} skipped: {info['skipped']}")
        warnings.warn(info["skipped"])
        return EvalResult(metrics={}, predictions=[], info=info)

    def generate(
        self,
        target: EvalTarget,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
        stop_strings: Sequence[str] = (),
        desc: str | None = None,
    ) -> tuple[list[str], dict]:
        """Greedy completions (stop strings cut off, as vLLM returns them) and a dict describing the backend used."""
        from astra_repro.evaluators.generation import generate

        return generate(
            target, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, stop_strings=stop_strings,
            desc=desc or self.name,
        )


def percent_true(predictions: Sequence[dict], key: str) -> float:
    """Share of samples whose `key` is truthy, in percent (0 for no samples): every accuracy-like metric."""
    return 100.0 * sum(bool(p[key]) for p in predictions) / max(len(predictions), 1)


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", config_group="task.evaluators")


def register_evaluator(cls: type[Evaluator]) -> type[Evaluator]:
    EVALUATORS.register(cls.name)(cls)
    return cls
