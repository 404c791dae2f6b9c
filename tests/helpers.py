"""Compose the real Hydra config and shrink it to a run that takes seconds on tiny_llama."""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from astra_repro.paths import CONFIG_DIR

TINY_OVERRIDES = [
    "model=tiny_llama",
    "task.data.synthetic.n_train=64",
    "task.data.n_train.demo=32",
    "task.train.demo.max_steps=4",
    "task.train.demo.per_device_batch_size=4",
    "task.train.demo.save_steps=2",
    "task.train.demo.max_length=640",
    "task.calibration_samples.demo=4",
    "calibration.seq_len.demo=32",
]
# Per task: every evaluator shrunk to a few samples and tokens.
TINY_EVALUATORS = {
    "math": ["gsm8k", "math"],
    "code": ["humaneval", "mbpp"],
}


def tiny_evaluator_overrides(task: str) -> list[str]:
    out = []
    for name in TINY_EVALUATORS.get(task, []):
        out += [f"task.evaluators.{name}.n.demo=4", f"task.evaluators.{name}.max_new_tokens.demo=8", f"task.evaluators.{name}.batch_size.demo=4"]
    return out


def tiny_cfg(*overrides: str):
    task = next((o.split("=", 1)[1] for o in overrides if o.startswith("task=")), "math")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=[*TINY_OVERRIDES, *tiny_evaluator_overrides(task), *overrides])
