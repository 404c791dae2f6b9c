"""Compose the real Hydra config and shrink it to a run that takes seconds on tiny_llama."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from astra_repro.evaluators import EVALUATORS
from astra_repro.evaluators.commonsense import CommonsenseEvaluator
from astra_repro.paths import CONFIG_DIR

TINY_OVERRIDES = [
    "model=tiny_llama",
    "task.data.synthetic.n_train=64",
    "task.data.n_train=32",
    "task.train.max_steps=4",
    "task.train.global_batch_size=4",
    "task.train.per_device_batch_size=4",
    "task.train.save_steps=2",
    "task.train.max_length=640",
    "calibration.n_samples=4",
    "calibration.seq_len=32",
]
# Per task: every evaluator shrunk to a few samples (and, for generation, a few tokens).
GENERATION_SHRINK = {"n": 4, "max_new_tokens": 8, "batch_size": 4}
LOGLIKELIHOOD_SHRINK = {"n": 4, "batch_size": 4}
COMMONSENSE_EVALUATORS = [name for name, cls in EVALUATORS if issubclass(cls, CommonsenseEvaluator)]  # the registry's
TINY_EVALUATORS = {
    "math": {"gsm8k": GENERATION_SHRINK, "math": GENERATION_SHRINK},
    "code": {"humaneval": GENERATION_SHRINK, "mbpp": GENERATION_SHRINK},
    "commonsense": {name: LOGLIKELIHOOD_SHRINK for name in COMMONSENSE_EVALUATORS},
    "glue": {"glue_dev": LOGLIKELIHOOD_SHRINK},
}


def tiny_evaluator_overrides(task: str) -> list[str]:
    return [
        f"task.evaluators.{name}.{key}={value}"
        for name, shrink in TINY_EVALUATORS.get(task, {}).items()
        for key, value in shrink.items()
    ]


def tiny_cfg(*overrides: str):
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "math")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        base = [o for o in TINY_OVERRIDES if not (o.startswith("model=") and any(x.startswith("model=") for x in overrides))]
        return compose("config", overrides=[*base, *tiny_evaluator_overrides(task), *overrides])
