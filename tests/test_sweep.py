"""Sweep manifests: the cartesian product, grouped overrides, alpha = r references, and that every line is a
valid run of the real config."""

import shlex

import pytest
from helpers import tiny_cfg

from astra_repro import sweep
from astra_repro.errors import ConfigError
from astra_repro.train import plan_run


def test_rank_sweep_sets_alpha_equal_to_rank(tmp_path):
    manifest = sweep.write_manifest("fig2_rank_math_llama2", tmp_path)
    lines = manifest.read_text().splitlines()
    assert len(lines) == 4 * 5
    assert "model=llama2_7b task=math trainer=deepspeed_zero2 method=lora rank=8 alpha=8 seed=42" in lines
    for line in lines:
        overrides = shlex.split(line)
        rank = next(o for o in overrides if o.startswith("rank=")).split("=")[1]
        assert f"alpha={rank}" in overrides


def test_table4_groups_are_applied_together_and_compose():
    runs = sweep.expand(sweep.load_sweep("table4_eigen_ablation"))
    assert len(runs) == 6
    windows = [r for r in runs if "method.subspace=window" in r]
    assert {next(o for o in r if o.startswith("method.window_start")) for r in windows} == {
        "method.window_start=d/4", "method.window_start=d/2", "method.window_start=3d/4"}
    for run in runs:  # each line composes with the real config (shrunk to tiny_llama)
        overrides = [o for o in run if not o.startswith(("model=", "trainer="))]
        plan = plan_run(tiny_cfg(*overrides))
        assert plan["method"]["name"] == "astra"


def test_unknown_sweep_lists_valid_ones():
    with pytest.raises(ConfigError, match="table2_math_llama2"):
        sweep.load_sweep("nope")


def test_dangling_reference_is_an_error():
    with pytest.raises(ConfigError, match="rank"):
        sweep.expand({"fixed": [], "axes": {"alpha": ["${rank}"]}})


@pytest.mark.parametrize("name, batch", [("table1", 128), ("table9", 32)])
def test_glue_table_sweeps_plan_every_method_task_and_seed_at_their_batch_size(name, batch):
    from hydra import compose, initialize_config_dir

    from astra_repro.paths import CONFIG_DIR

    runs = sweep.expand(sweep.load_sweep(name))
    assert len(runs) == 8 * 5 * 3
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        plans = [plan_run(compose("config", overrides=list(run))) for run in runs]
    assert {p["method"]["name"] for p in plans} == {"fft", "lora", "dora", "rslora", "pissa", "corda", "loraga", "astra"}
    assert {p["seed"] for p in plans} == {0, 1, 2} and all(p["recipe"] == "glue" for p in plans)
    assert all(p["schedule"]["per_device_batch_size"] * p["schedule"]["grad_accum"] == batch for p in plans)
    lora = next(p for p in plans if p["method"]["name"] == "lora")
    dora = next(p for p in plans if p["method"]["name"] == "dora")
    assert (lora["hp"]["rank"], lora["hp"]["alpha"], lora["hp"]["learning_rate"]) == (8, 16.0, 1e-4)
    assert dora["hp"]["learning_rate"] == 2e-4 and dora["hp"]["use_dora"]


def test_table3_sweep_plans_commonsense_with_the_reference_calibration_and_batch():
    from hydra import compose, initialize_config_dir

    from astra_repro.paths import CONFIG_DIR

    runs = sweep.expand(sweep.load_sweep("table3"))
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        plans = [plan_run(compose("config", overrides=list(run))) for run in runs]
    assert len(plans) == 12 and all(p["task"]["name"] == "commonsense" for p in plans)
    astra = next(p for p in plans if p["method"]["name"] == "astra")
    assert astra["calibration"]["n_samples"] == 64
    assert (astra["schedule"]["per_device_batch_size"], astra["schedule"]["grad_accum"]) == (8, 2)
