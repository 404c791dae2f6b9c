"""Declared settings, checked before anything runs: a method's options (`Method.options`) and an evaluator's
settings (`Evaluator.settings`) are each declared once, as `Option`s, and a config block is checked against them
(`check_block`): an unknown key names the nearest declared one, a bad value is one line naming key, value and fix
(the same checked accessors below serve the run spec: the same mistake reads the same wherever it is caught)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from astra_repro.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """One key of a config block (a method's YAML, an evaluator's settings): the default read when the key is absent,
    and what a valid value is. Checked when the run spec is built, before any model loads. `None` is valid only for
    an option whose default is None (= "someone else's value", or "all" for an evaluator's n)."""

    default: Any = None
    choices: tuple | None = None  # the valid values; with `kind` too, a value of that kind also passes
    kind: type | None = None  # bool, int, float or str; None = any value
    minimum: float | None = None
    below: float | None = None  # exclusive upper bound
    positive: bool = False  # > 0 (a number)
    doc: str = ""

    def describe(self) -> str:
        """The valid values, as an error message lists them."""
        listed = ", ".join(map(str, self.choices or ()))
        if self.kind is None:
            return listed
        kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}[self.kind]
        return f"{listed} or {kind}" if listed else kind


def check_block(prefix: str, owner: str, declared: Mapping[str, Option], values: Mapping) -> None:
    """Every key of `values` declared and valid; `prefix` is how the user types the block (method,
    task.evaluators.gsm8k), `owner` what declares it (astra, gsm8k)."""
    for key in values:
        if key not in declared:
            near = difflib.get_close_matches(key, declared, n=1)
            valid = ", ".join(declared)
            fix = f"did you mean {prefix}.{near[0]}? (valid: {valid})" if near else f"valid: {valid}"
            raise ConfigError(f"{prefix}.{key} is not an option of {owner}; {fix}")
    for key, value in values.items():
        check_value(prefix, owner, key, declared[key], value)


def check_value(prefix: str, owner: str, key: str, option: Option, value: Any) -> None:
    """One value against its declaration."""
    name = f"{prefix}.{key}"
    if value is None and option.default is None:
        return
    if option.choices is not None and value in option.choices and not isinstance(value, bool):
        return
    if value is None or (option.choices is not None and not _of_kind(value, option.kind)):
        raise ConfigError(f"{name}={value!r} is not valid for {owner}; valid: {option.describe()}")
    block: dict = {}
    node = block
    parts = name.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    if option.kind is bool:
        boolean(block, name)
    elif option.kind is int:
        integer(block, name, minimum=option.minimum)
    elif option.kind is float:
        number(block, name, minimum=option.minimum, below=option.below, positive=option.positive)
    elif option.kind is str and not isinstance(value, str):
        raise ConfigError(f"{name}={value!r} is not a string; set {name}=<string>")


def _of_kind(value: Any, kind: type | None) -> bool:
    if kind is None:
        return False
    if isinstance(value, bool):  # bool is an int to Python, never to a user
        return kind is bool
    return isinstance(value, (int, float) if kind is float else kind)


# ------------------------------------------------------------------------------------------------- checked accessors
# Each returns the value it checked (the run spec is built from them, spec.py), or raises one ConfigError line
# naming the key, the value and the fix.
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
