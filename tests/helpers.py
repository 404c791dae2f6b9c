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
    "task.evaluators.gsm8k.n.demo=4",
    "task.evaluators.gsm8k.max_new_tokens.demo=8",
    "task.evaluators.gsm8k.batch_size.demo=4",
]


def tiny_cfg(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=[*TINY_OVERRIDES, *overrides])
