"""Issue 21 item 4: each evaluator declares its settings once (`Evaluator.settings`); the run spec checks every
evaluator block against them before any model loads (`evaluators.check_settings`): a mistyped key names the nearest
declared one, a bad value is one line."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from astra_repro.errors import ConfigError
from astra_repro.evaluators import EVALUATORS, check_settings
from astra_repro.paths import CONFIG_DIR
from astra_repro.spec import RunSpec
from helpers import tiny_cfg


def shipped_blocks() -> dict[tuple[str, str], dict]:
    """(task, scale) -> the composed task.evaluators block of every shipped task at both scales."""
    blocks = {}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for task in ("math", "code", "commonsense", "glue"):
            for scale in ("demo", "paper"):
                cfg = compose("config", overrides=[f"task={task}", f"scale={scale}"])
                blocks[task, scale] = OmegaConf.to_container(cfg.task.evaluators, resolve=True)
    return blocks


def test_every_shipped_block_is_declared_and_valid_at_both_scales():
    for (task, scale), block in shipped_blocks().items():
        for name, settings in block.items():
            assert set(settings) <= set(EVALUATORS.get(name).settings), (task, scale, name)
        check_settings(block)  # raises on the first invalid value


def test_every_evaluator_declares_settings_whose_defaults_pass():
    for name, cls in EVALUATORS:
        assert cls.settings, f"{name} declares no settings"
        check_settings({name: {key: option.default for key, option in cls.settings.items()}})


@pytest.mark.parametrize("override, message", [
    ("task.evaluators.gsm8k.max_new_token=8", r"^task\.evaluators\.gsm8k\.max_new_token is not an option of gsm8k; "
                                               r"did you mean task\.evaluators\.gsm8k\.max_new_tokens\?"),
    ("task.evaluators.gsm8k.n=0", r"^task\.evaluators\.gsm8k\.n=0 must be >= 1"),
    ("task.evaluators.math.batch_size=auto", r"^task\.evaluators\.math\.batch_size='auto' is not an integer"),
])
def test_a_bad_block_is_refused_when_the_spec_is_built(override, message, monkeypatch):
    import astra_repro.models

    monkeypatch.setattr(astra_repro.models, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    cfg = tiny_cfg(f"+{override}" if "max_new_token=" in override else override)
    with pytest.raises(ConfigError, match=message) as err:
        RunSpec.from_config(cfg)
    assert "\n" not in str(err.value)


def test_commonsense_takes_auto_batches_and_a_source_choice():
    check_settings({"piqa": {"batch_size": "auto", "source": "official"}})
    with pytest.raises(ConfigError, match=r"^task\.evaluators\.piqa\.source='hub' is not valid for piqa; valid: auto, "):
        check_settings({"piqa": {"source": "hub"}})
