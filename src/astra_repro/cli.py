"""Command-line checks shared by the entry points: a config-group choice that does not exist is a one-line error
listing the valid ones, and a key that does not exist is one line naming the nearest valid key (Hydra's own messages
are multi-line traceback-like blocks listing everything)."""

from __future__ import annotations

import difflib
import sys

from astra_repro.errors import ConfigError
from astra_repro.paths import CONFIG_DIR

CONFIG_GROUPS = ("model", "task", "method", "trainer", "calibration", "experiment", "scale")


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


def check_override_keys(overrides: list[str], config_name: str = "config") -> None:
    """Raise ConfigError for a `key=value` override whose key the composed config does not have (a typo, or a key
    that moved), naming the nearest one. Composes once with the command line's group choices only."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    plain = [a.split("=", 1)[0] for a in overrides if "=" in a and not a.startswith(("+", "~", "-"))]
    groups = [a for a in overrides if "=" in a and a.lstrip("+~").split("=", 1)[0] in CONFIG_GROUPS]
    keys_to_check = [k for k in plain if k not in CONFIG_GROUPS and not k.startswith("hydra.")]
    if not keys_to_check:
        return
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=groups)
    known = set(_flat_keys(OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)))
    for key in keys_to_check:
        if key in known or any(k.startswith(key + ".") for k in known):
            continue
        raise ConfigError(f"unknown key '{key}'{_nearest(key, known)} (a new key is added with +{key}=...)")


def _flat_keys(node, prefix: str = ""):
    if isinstance(node, dict):
        for key, value in node.items():
            name = f"{prefix}{key}"
            yield name
            yield from _flat_keys(value, name + ".")


def _nearest(key: str, known: set[str]) -> str:
    """'; did you mean X?' for the closest known key: the same last part under another parent first (a key that
    moved, e.g. task.train.demo.max_steps -> task.train.max_steps), else the closest spelling."""
    last = key.rsplit(".", 1)[-1]
    same_leaf = [k for k in known if k.rsplit(".", 1)[-1] == last]
    pool = same_leaf or sorted(known)
    match = difflib.get_close_matches(key, pool, n=1, cutoff=0.0 if same_leaf else 0.6)
    return f"; did you mean {match[0]}?" if match else ""


def exit_with(err: ConfigError) -> None:
    print(f"error: {err}", file=sys.stderr)
    sys.exit(2)
