"""The evaluator registry. Adding a benchmark: one module here (an `Evaluator` subclass with `@register_evaluator`,
declaring its `label`, `item_id_field`, `metrics` and `settings`: reports read the metrics from the record, report/
lists no evaluator, and the run spec checks a block against the settings) plus its block under a task's `evaluators`
in configs/task/<task>.yaml (sizes in configs/task_scale/<task>_<scale>.yaml), and the module name in `_MODULES`."""

import importlib

from astra_repro.evaluators.base import EVALUATORS, EvalResult, EvalTarget, Evaluator, check_settings, register_evaluator

_MODULES = ["gsm8k", "hendrycks_math", "code", "commonsense", "glue", "forgetting"]

for _module in _MODULES:
    try:
        importlib.import_module(f"astra_repro.evaluators.{_module}")
    except ModuleNotFoundError as err:  # an evaluator under construction must not break the others
        if err.name != f"astra_repro.evaluators.{_module}":
            raise


def get_evaluator(name: str):
    return EVALUATORS.get(name)


def describe_evaluators() -> str:
    width = max(len(n) for n in EVALUATORS.names())
    return "\n".join(f"  {name:<{width}}  {cls.description} (v{cls.version})" for name, cls in EVALUATORS)


__all__ = ["EVALUATORS", "EvalResult", "EvalTarget", "Evaluator", "check_settings", "register_evaluator", "get_evaluator",
           "describe_evaluators"]
