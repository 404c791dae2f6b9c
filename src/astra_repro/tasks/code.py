"""Code: CodeFeedback-Python -> HumanEval(+) / MBPP(+) scored by EvalPlus in a sandbox (paper Table 2;
protocol §2.1, §3.3)."""

from __future__ import annotations

from astra_repro.data.code_sources import load_code_training
from astra_repro.tasks.base import Task, register_task


@register_task
class CodeTask(Task):
    name = "code"
    description = "CodeFeedback-Python (pissa-dataset type=python) -> HumanEval(+), MBPP(+) via EvalPlus, sandboxed"

    def load_training_records(self) -> tuple[list[dict], dict]:
        return load_code_training(self.cfg.data)
