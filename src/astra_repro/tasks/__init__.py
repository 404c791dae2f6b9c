"""The task registry. Adding a task family: one module here (a `Task` subclass with `@register_task`) plus
`configs/task/<name>.yaml` (data, schedule and evaluators; their sizes per scale in configs/task_scale/<name>_<scale>.yaml),
and its module name below."""

import importlib

from omegaconf import DictConfig

from astra_repro.tasks.base import TASKS, Task, register_task

_MODULES = ["math", "code", "commonsense", "glue"]

for _module in _MODULES:
    importlib.import_module(f"astra_repro.tasks.{_module}")


def get_task(cfg: DictConfig, recipe: str, model_kind: str = "causal_lm") -> Task:
    """The task object for a task YAML block (`cfg.task`); an unknown name is a one-line error listing the valid ones."""
    return TASKS.get(cfg.name)(cfg, recipe, model_kind)


def describe_tasks() -> str:
    """One line per task: name, what it trains on and what it scores, and its evaluators (from its YAML)."""
    from omegaconf import OmegaConf

    from astra_repro.paths import CONFIG_DIR

    lines = []
    width = max(len(n) for n in TASKS.names())
    for name, cls in TASKS:
        yaml = CONFIG_DIR / "task" / f"{name}.yaml"
        evaluators = list(OmegaConf.load(yaml).get("evaluators", {})) if yaml.exists() else []
        lines.append(f"  {name:<{width}}  {cls.description}  [evaluators: {', '.join(evaluators) or '-'}; model: {' or '.join(cls.model_kinds)}]")
    return "\n".join(lines)


__all__ = ["TASKS", "Task", "register_task", "get_task", "describe_tasks"]
