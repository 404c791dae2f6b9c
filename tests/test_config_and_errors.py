"""The real Hydra config composes at its scale, and bad names fail with the valid ones listed."""

import subprocess
import sys

import pytest
from hydra.errors import MissingConfigException
from helpers import tiny_cfg

from astra_repro.errors import ConfigError
from astra_repro.methods import METHODS
from astra_repro.paths import CONFIG_DIR
from astra_repro.spec import plan_run


def test_default_config_is_the_embedded_model_at_the_demo_scale():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config")
    assert cfg.model.name == "smollm2_135m" and cfg.model.source == "embedded"
    plan = plan_run(cfg)
    assert plan["recipe"] == "demo"
    assert plan["hp"] == {**plan["hp"], "rank": 16, "alpha": 32.0, "learning_rate": 1e-3}


def test_paper_model_brings_table8_hyperparameters():
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):  # no tiny overrides: they are flat
        cfg = compose("config", overrides=["model=llama2_7b", "method=lora"])
    plan = plan_run(cfg)
    assert plan["hp"]["rank"] == 128 and plan["hp"]["alpha"] == 128 and plan["hp"]["learning_rate"] == 2e-5
    assert plan["schedule"]["max_length"] == 512 and plan["schedule"]["warmup_ratio"] == 0.03
    assert plan["schedule"]["global_batch_size"] == 128
    assert plan["batch"] == {"global": 128, "per_device": 8, "grad_accum": 16, "world_size": 1}
    assert plan["model"]["dtype"] == "bfloat16"
    assert plan["task"]["data"]["n_train"] == 100000


def test_rank_override_keeps_alpha_ratio_and_alpha_override_wins():
    assert plan_run(tiny_cfg("rank=8"))["hp"]["alpha"] == 16.0
    assert plan_run(tiny_cfg("rank=8", "alpha=8"))["hp"]["alpha"] == 8.0


def test_hash_changes_with_semantics_not_with_logging():
    from astra_repro.runs import config_hash

    base = config_hash(plan_run(tiny_cfg()))
    assert config_hash(plan_run(tiny_cfg("seed=1"))) != base
    assert config_hash(plan_run(tiny_cfg("lr=0.01"))) != base
    assert config_hash(plan_run(tiny_cfg("trainer.logging_steps=5"))) == base
    assert config_hash(plan_run(tiny_cfg("force=true"))) == base


@pytest.mark.parametrize("group", ["method", "model", "task"])
def test_unknown_group_option_lists_valid_ones(group):
    with pytest.raises(MissingConfigException) as err:
        tiny_cfg(f"{group}=no_such_thing")
    message = str(err.value)
    assert "no_such_thing" in message
    valid = {"method": "lora", "model": "tiny_llama", "task": "math"}[group]
    assert valid in message


def test_registry_error_names_the_valid_methods():
    with pytest.raises(ConfigError) as err:
        METHODS.get("nope")
    assert "lora" in str(err.value) and "method=<name>" in str(err.value)


def test_cli_unknown_method_exits_nonzero_listing_options(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "astra_repro.train", "model=tiny_llama", "method=nope"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode != 0
    assert "method" in proc.stderr and "lora" in proc.stderr


def test_hub_model_offline_gives_one_line_fix(monkeypatch):
    from astra_repro.models import load_model

    cfg = tiny_cfg("model=llama2_7b")
    with pytest.raises(ConfigError) as err:
        load_model(cfg.model)
    assert "model.path" in str(err.value) and "meta-llama/Llama-2-7b-hf" in str(err.value)


def test_method_cli_lists_descriptions():
    proc = subprocess.run([sys.executable, "-m", "astra_repro.methods"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    for name in ["lora", "rslora", "dora", "fft"]:
        assert f"  {name} " in proc.stdout
