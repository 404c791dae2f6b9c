"""The evaluator registry. Adding a benchmark: one module here + its block under a task's `evaluators`."""

import importlib

from astra_repro.evaluators.base import EVALUATORS, EvalResult, Evaluator, register_evaluator

for _module in ["gsm8k"]:
    importlib.import_module(f"astra_repro.evaluators.{_module}")


def get_evaluator(name: str):
    return EVALUATORS.get(name)


__all__ = ["EVALUATORS", "EvalResult", "Evaluator", "register_evaluator", "get_evaluator"]
