"""Commonsense: Commonsense170K -> BoolQ, PIQA, HellaSwag, WinoGrande, ARC-e, ARC-c, OBQA (+ SIQA), zero-shot
lm-eval `acc` (paper Table 3; protocol §2.1, §3.4). Prompt and label masking are the math task's (protocol §2.2)."""

from __future__ import annotations

from astra_repro.data.commonsense_sources import load_commonsense_training
from astra_repro.tasks.base import Task, register_task


@register_task
class CommonsenseTask(Task):
    name = "commonsense"
    description = "Commonsense170K (LLM-Adapters, first 100k) -> BoolQ, PIQA, HellaSwag, WinoGrande, ARC-e/c, OBQA, SIQA (lm-eval acc)"

    def load_training_records(self) -> tuple[list[dict], dict]:
        return load_commonsense_training(self.cfg.data)
