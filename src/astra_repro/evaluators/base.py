"""Evaluators: versioned, each carrying its prompt, decoding settings and answer extraction, and each
returning every sample it scored (so a disagreement with another codebase can be traced to one sample).

An evaluator receives an `EvalTarget`: the model in memory (adapter merged) and, when one exists, a folder on disk
that holds the same weights (a run's `export/merged`, a model folder). Generation goes through
`Evaluator.generate`, which picks the backend (`eval.backend=auto|hf|vllm`), so an evaluator never cares which
one runs.
"""

from __future__ import annotations

import functools
import warnings
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from omegaconf import DictConfig

from astra_repro.options import Option
from astra_repro.registry import Registry


DIRECTIONS = ("higher", "lower")
DECLARATION_KEY = "declaration"  # EvalResult.info[DECLARATION_KEY]: the evaluator's Declaration, as a dict


@dataclass(frozen=True)
class MetricSpec:
    """One metric an evaluator reports, declared once on its class. Reports read it from the record, so a new
    evaluator needs no entry anywhere else to get labels, significance and its primary column."""

    name: str  # the key in EvalResult.metrics
    item_field: str | None  # the per-item boolean whose mean (x100) is the metric; None: not a mean (mcc, a count)
    label: str  # its column header; "{benchmark}" stands for the evaluator's label ("{benchmark}+": HumanEval+)
    direction: str = "higher"  # which way is better: higher | lower

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"metric {self.name!r}: direction must be one of {DIRECTIONS}, got {self.direction!r}")


@dataclass(frozen=True)
class Declaration:
    """What an evaluator declares about its results: its label, the per-item field naming an item (the same item
    has the same id in every run), and its metrics, the primary one (the one tables show first) first."""

    evaluator: str
    label: str
    item_id_field: str
    metrics: tuple[MetricSpec, ...]

    @property
    def primary_metric(self) -> str:
        return self.metrics[0].name

    def metric(self, name: str) -> MetricSpec | None:
        return next((m for m in self.metrics if m.name == name), None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Declaration:
        return cls(data["evaluator"], data["label"], data["item_id_field"],
                   tuple(MetricSpec(**m) for m in data["metrics"]))


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


# Settings most evaluators share (an evaluator declares the ones it reads, once, in `settings`).
N = Option(None, kind=int, minimum=1, doc="the first n items; null = all of them")
BATCH_SIZE = Option(16, kind=int, minimum=1, doc="prompts per forward / generation batch")
MAX_NEW_TOKENS = Option(512, kind=int, minimum=1, doc="greedy token cap")
PATH = Option(None, kind=str, doc="a local test file (else the hub, else a synthetic stand-in where there is one)")


class Evaluator(ABC):
    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str]
    label: ClassVar[str]  # how tables and figures name the benchmark (GSM8K, HumanEval, ARC-e)
    item_id_field: ClassVar[str]  # the per-item field that names an item
    metrics: ClassVar[tuple[MetricSpec, ...]]  # every metric it reports that a report may show, primary first
    # The keys of its block under task.evaluators.<name>, declared once; checked (unknown key, type, range) when the
    # run spec is built, before any model loads (evaluators.base.check_settings).
    settings: ClassVar[dict[str, Option]] = {}
    primary_metric: ClassVar[str]  # derived: metrics[0].name (the metric tables show first)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "metrics" in cls.__dict__:
            cls.primary_metric = cls.metrics[0].name
        # Every result carries the declaration, so the record does and a report needs no table of its own; wrapped
        # here, not left to each evaluate(), so no evaluator can forget it.
        if "evaluate" in cls.__dict__:
            cls.evaluate = _writes_declaration(cls.__dict__["evaluate"])

    @classmethod
    def declaration(cls) -> Declaration:
        label = cls.label
        metrics = tuple(MetricSpec(m.name, m.item_field, m.label.format(benchmark=label), m.direction) for m in cls.metrics)
        return Declaration(cls.name, label, cls.item_id_field, metrics)

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


def _writes_declaration(evaluate):
    @functools.wraps(evaluate)
    def wrapper(self: Evaluator, target: EvalTarget) -> EvalResult:
        result = evaluate(self, target)
        result.info[DECLARATION_KEY] = type(self).declaration().to_dict()
        return result

    return wrapper


def percent_true(predictions: Sequence[dict], key: str) -> float:
    """Share of samples whose `key` is truthy, in percent (0 for no samples): every accuracy-like metric."""
    return 100.0 * sum(bool(p[key]) for p in predictions) / max(len(predictions), 1)


EVALUATORS: Registry[type[Evaluator]] = Registry("evaluator", config_group="task.evaluators")


def register_evaluator(cls: type[Evaluator]) -> type[Evaluator]:
    EVALUATORS.register(cls.name)(cls)
    return cls


def check_settings(task_evaluators: Mapping) -> None:
    """Every evaluator block of the task against its evaluator's declared `settings`, before any model is loaded:
    `n=0` would score nothing and `n=-3` drop the last three records silently; `batch_size=0` or
    `max_new_tokens=abc` would fail after the model is loaded; a mistyped key would be ignored."""
    from astra_repro.options import check_block

    for name, block in (task_evaluators or {}).items():
        if isinstance(block, Mapping) and name in EVALUATORS:
            cls = EVALUATORS.get(name)
            check_block(f"task.evaluators.{name}", name, cls.settings, block)
