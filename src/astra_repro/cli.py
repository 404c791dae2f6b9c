"""Command-line checks shared by the entry points: a config-group choice that does not exist is a one-line error
listing the valid ones (Hydra's own message is a multi-line traceback-like block)."""

from __future__ import annotations

import sys

from astra_repro.errors import ConfigError
from astra_repro.paths import CONFIG_DIR

CONFIG_GROUPS = ("model", "task", "method", "trainer", "calibration", "experiment")


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def check_config_choices(overrides: list[str]) -> None:
    """Raise ConfigError for `group=name` overrides whose YAML does not exist (`-m` sweeps: every comma value)."""
    for arg in overrides:
        if "=" not in arg or arg.startswith("-"):
            continue
        key, value = arg.split("=", 1)
        key = key.lstrip("+~")
        if key not in CONFIG_GROUPS or not value or value == "null":
            continue
        valid = group_options(key)
        for choice in value.split(","):
            if choice not in valid:
                raise ConfigError(f"unknown {key} '{choice}'; valid: {', '.join(valid)} (set {key}=<name>)")


def exit_with(err: ConfigError) -> None:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
