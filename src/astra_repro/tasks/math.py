"""Math: MetaMathQA -> GSM8K and MATH (paper Table 2; protocol §2.1, §3.1, §3.2)."""

from __future__ import annotations

from astra_repro.data.sources import load_math_training
from astra_repro.tasks.base import Task, register_task


@register_task
class MathTask(Task):
    name = "math"
    description = "MetaMathQA (pissa-dataset, 8 MetaMath types) -> GSM8K + MATH, greedy, reference answer extraction"

    def load_training_records(self) -> tuple[list[dict], dict]:
        return load_math_training(self.cfg.data, None)
