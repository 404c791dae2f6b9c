"""The checks of the composed config: every user-settable value that has a type or a range. The run spec is built
through them (spec.RunSpec.from_config: the checked value is the used value); `python -m astra_repro.evaluate` runs
the shared and evaluator checks (check_eval_config).

A mistake gives one line naming the key, the bad value and the fix (a `ConfigError`, printed by the entry point
without a traceback), never a Python traceback from deep inside a stage and never a silently wrong run: `alpha=0`
would train an adapter whose scaling is 0, `force=maybe` would delete a finished run.

Every key is flat (the scale's values are composed in: configs/scale, task_scale, method_scale); a value the
composition left unset (`???`) is one error naming the keys and the file that sets them for the run's scale.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from astra_repro.errors import ConfigError
from astra_repro.threads import WAIT_POLICIES

BACKENDS = ("auto", "hf", "vllm")
GENERATION_PATHS = ("regroup", "padded")  # evaluators/decoding.PATHS (not imported: no torch here)
BF16 = ("auto", True, False)
# What an evaluator block (task.evaluators.<name>) may set; each evaluator reads only its own.
# `n` null = every record, `workers` null = the default; the others must be set when present.
EVALUATOR_SETTINGS = {
    "n": {"kind": "integer", "minimum": 1, "optional": True},
    "batch_size": {"kind": "integer", "minimum": 1},
    "max_new_tokens": {"kind": "integer", "minimum": 1},
    "max_length": {"kind": "integer", "minimum": 2},
    "workers": {"kind": "integer", "minimum": 1, "optional": True},
    "timeout_s": {"kind": "number", "positive": True},
    "synthetic_seed": {"kind": "integer", "minimum": 0},
}


def check_complete(cfg: DictConfig, under: str = "") -> None:
    """Every value set: a `???` left by the composition means no scale file states it for this run."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra") and k.startswith(under))
    if not missing:
        return
    scale, task = _get(cfg, "scale"), _get(cfg, "task.name")
    where = f"configs/task_scale/{task}_{scale}.yaml" if missing[0].startswith(("task.", "calibration.")) else \
        f"configs/scale/{scale}.yaml"
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    raise ConfigError(f"{shown} {'is' if len(missing) == 1 else 'are'} not set at scale '{scale}' (no {where}?); "
                      f"add that file or set {missing[0]}=<value>")


def check_eval_config(cfg: DictConfig, recipe: str | None = None) -> None:
    """What `python -m astra_repro.evaluate` reads of the config: the shared keys and the evaluator blocks (composed at
    a rescored run's own scale)."""
    check_complete(cfg, under="task.evaluators")
    check_shared_keys(cfg)
    check_evaluator_settings(cfg)


def check_shared_keys(cfg: DictConfig) -> None:
    """The top-level keys both entry points take (`seed` is part of the composed config either way: a typo in it is
    still a mistake, not something to ignore)."""
    integer(cfg, "seed", minimum=0)
    boolean(cfg, "force")
    choice(cfg, "eval.backend", BACKENDS)
    check_runtime(cfg)
    choice(cfg, "eval.generation", GENERATION_PATHS)
    evaluators = _get(cfg, "evaluators")
    if evaluators is not None and not isinstance(evaluators, str) and not (
        isinstance(evaluators, (list, ListConfig)) and all(isinstance(e, str) for e in evaluators)
    ):
        raise ConfigError(f"evaluators={evaluators!r} is not a name or a list of names; e.g. evaluators=[gsm8k]")


def check_runtime(cfg: DictConfig) -> None:
    """`runtime.threads` (auto or a count) and `runtime.omp_wait_policy` (astra_repro/threads.py)."""
    if _get(cfg, "runtime") is None:  # a config without the block: the defaults apply
        return
    if _get(cfg, "runtime.threads") != "auto":
        integer(cfg, "runtime.threads", minimum=1, example="runtime.threads=2 or runtime.threads=auto")
    choice(cfg, "runtime.omp_wait_policy", WAIT_POLICIES)


def check_evaluator_settings(cfg: DictConfig) -> None:
    """Every evaluator block of the task, before any model is loaded: `n=0` would score nothing and `n=-3` drop the
    last three records silently; `batch_size=0` or `max_new_tokens=abc` would fail after the model is loaded."""
    for name, block in (_get(cfg, "task.evaluators") or {}).items():
        if not isinstance(block, Mapping):
            continue
        for setting, rule in EVALUATOR_SETTINGS.items():
            if setting not in block:
                continue
            key, value = f"task.evaluators.{name}.{setting}", block[setting]
            if setting == "batch_size" and value == "auto" and _sizes_its_own_batches(name):
                continue
            _check_value(key, value, **rule)


# ------------------------------------------------------------------------------------------------- checks
# The checked accessors: each returns the value it checked (the run spec is built from them, spec.py).
def integer(cfg, key: str, minimum: int | None = None, optional: bool = False, example: str | None = None) -> int | None:
    value = _get(cfg, key)
    _check_value(key, value, "integer", minimum=minimum, optional=optional, example=example)
    return None if value is None else int(value)


def number(cfg, key: str, minimum: float | None = None, below: float | None = None, positive: bool = False,
           optional: bool = False, example: str | None = None, why: str | None = None) -> float | None:
    value = _get(cfg, key)
    _check_value(key, value, "number", minimum=minimum, below=below, positive=positive, optional=optional,
                 example=example, why=why)
    return None if value is None else float(value)


def boolean(cfg, key: str, optional: bool = False) -> bool | None:
    value = _get(cfg, key)
    if value is None and optional:
        return None
    if not isinstance(value, bool):
        raise ConfigError(f"{key}={value!r} is not a boolean; use {key}=true or {key}=false")
    return value


def choice(cfg, key: str, valid: tuple):
    value = _get(cfg, key)
    if value not in valid:
        raise ConfigError(f"{key}={value!r} is not valid; use one of {', '.join(map(str, valid))}")
    return value


def bf16(cfg):
    value = _get(cfg, "trainer.bf16")
    if value not in BF16:
        raise ConfigError(f"trainer.bf16={value!r} is not valid; use auto, true or false")
    return value


def max_steps(cfg) -> int:
    steps = integer(cfg, "task.train.max_steps", minimum=-1)
    if steps == 0:
        raise ConfigError("task.train.max_steps=0 trains nothing; use a positive number or -1 (= the epochs)")
    return steps


def get(cfg, key: str) -> Any:
    """The plain value at a dotted key (None when absent)."""
    return _get(cfg, key)


def _check_value(key: str, value: Any, kind: str, minimum=None, below=None, positive: bool = False,
                 optional: bool = False, example: str | None = None, why: str | None = None) -> None:
    if value is None:
        if optional:
            return
        raise ConfigError(f"{key} is not set; set {key}=<{kind}>")
    hint = f" (e.g. {example})" if example else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}={value!r} is not {'an integer' if kind == 'integer' else 'a number'}; set {key}=<{kind}>{hint}")
    if kind == "integer" and not float(value).is_integer():
        raise ConfigError(f"{key}={value!r} is not an integer; set {key}=<integer>{hint}")
    if not math.isfinite(float(value)):
        raise ConfigError(f"{key}={value!r} is not a finite number; set {key}=<{kind}>{hint}")
    reason = f": {why}" if why else ""
    if positive and value <= 0:
        raise ConfigError(f"{key}={value!r} must be > 0{reason}; set {key}=<positive {kind}>{hint}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key}={value!r} must be >= {minimum}{reason}; set {key}=<{kind} >= {minimum}>{hint}")
    if below is not None and value >= below:
        raise ConfigError(f"{key}={value!r} must be < {below}; set {key}=<{kind} in [{minimum or 0}, {below})>{hint}")


def _get(cfg, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        if node is None:
            return None
        node = node.get(part) if isinstance(node, (DictConfig, Mapping)) else None
    if isinstance(node, (DictConfig, ListConfig)):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _sizes_its_own_batches(evaluator: str) -> bool:
    """Whether an evaluator takes `batch_size: auto` (lm-eval's commonsense evaluators do)."""
    from astra_repro.evaluators import EVALUATORS

    return evaluator in EVALUATORS and getattr(EVALUATORS.get(evaluator), "batch_size_auto", False)
