"""Sweep manifests: the cartesian product, grouped overrides, alpha = r references, and that every line is a
valid run of the real config."""

import functools
import shlex
import subprocess

import pytest
from helpers import tiny_cfg

from astra_repro import sweep
from astra_repro.errors import ConfigError
from astra_repro.spec import plan_run


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


@functools.lru_cache(maxsize=None)
def composed(name: str) -> tuple:
    """Every line of a sweep composed with the real config (once per sweep: composing is the slow part)."""
    from hydra import compose, initialize_config_dir

    from astra_repro.paths import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return tuple(compose("config", overrides=list(run)) for run in sweep.expand(sweep.load_sweep(name)))


def plan_sweep(name: str, monkeypatch, world_size: int | None = None) -> list[dict]:
    """Every line of a sweep planned as each of `world_size` processes plans it (WORLD_SIZE, as torchrun sets it)."""
    if world_size is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
    return [plan_run(cfg) for cfg in composed(name)]


# The paper's global batch per sweep (Table 8 for Tables 2 and 3; LoRA-GA's 128 / 32 for Tables 1 and 9).
PAPER_GLOBAL_BATCH = {"table1": 128, "table9": 32, "table2": 128, "table3": 128}


@pytest.mark.parametrize("name, batch", [("table1", 128), ("table9", 32)])
def test_glue_table_sweeps_plan_every_method_task_and_seed_at_their_batch_size(name, batch, monkeypatch):
    plans = plan_sweep(name, monkeypatch)
    assert len(plans) == 8 * 5 * 3
    assert {p["method"]["name"] for p in plans} == {"fft", "lora", "dora", "rslora", "pissa", "corda", "loraga", "astra"}
    assert {p["seed"] for p in plans} == {0, 1, 2} and all(p["recipe"] == "paper" for p in plans)  # the GLUE protocol: task_scale/glue_paper
    assert all(p["schedule"]["global_batch_size"] == batch for p in plans)
    # one process: the whole global batch in one micro-batch (at most 128 per device), no accumulation
    assert all(p["batch"] == {"global": batch, "per_device": batch, "grad_accum": 1, "world_size": 1} for p in plans)
    lora = next(p for p in plans if p["method"]["name"] == "lora")
    dora = next(p for p in plans if p["method"]["name"] == "dora")
    assert (lora["hp"]["rank"], lora["hp"]["alpha"], lora["hp"]["learning_rate"]) == (8, 16.0, 1e-4)
    assert dora["hp"]["learning_rate"] == 2e-4 and dora["hp"]["use_dora"]


@pytest.mark.parametrize("world_size", [1, 2, 4, 8])
@pytest.mark.parametrize("name", ["table1", "table9", "table2", "table3"])
def test_every_sweep_line_plans_the_papers_global_batch_at_any_process_count(name, world_size, monkeypatch):
    """The invariant of issue 19: micro-batch x accumulation x processes is the paper's global batch, whatever the
    number of processes torchrun (slurm/array.sbatch: one per GPU) starts."""
    paper = PAPER_GLOBAL_BATCH[name]
    plans = plan_sweep(name, monkeypatch, world_size)
    assert plans
    for plan in plans:
        batch = plan["batch"]
        assert batch["world_size"] == world_size
        assert batch["per_device"] * batch["grad_accum"] * world_size == batch["global"] == paper, batch
        assert batch["per_device"] <= plan["schedule"]["per_device_batch_size"]  # never above the memory cap
        assert "grad_accum" not in plan["schedule"]  # derived, never written by hand in a scale file


@pytest.mark.parametrize("name, world_size, per_device, grad_accum", [
    ("table1", 1, 128, 1), ("table1", 4, 32, 1), ("table1", 8, 16, 1),
    ("table9", 1, 32, 1), ("table9", 4, 8, 1), ("table9", 8, 4, 1),
    ("table2", 1, 8, 16), ("table2", 4, 8, 4), ("table2", 8, 8, 2),
    ("table3", 1, 8, 16), ("table3", 4, 8, 4), ("table3", 8, 8, 2),
])
def test_the_layout_fills_a_device_before_it_accumulates(name, world_size, per_device, grad_accum, monkeypatch):
    layouts = {tuple(sorted(p["batch"].items())) for p in plan_sweep(name, monkeypatch, world_size)}
    assert layouts == {tuple(sorted({"global": PAPER_GLOBAL_BATCH[name], "per_device": per_device,
                                     "grad_accum": grad_accum, "world_size": world_size}.items()))}


def test_the_process_count_is_not_part_of_the_run(monkeypatch):
    """The same run is found (done, or to resume) at any process count: the layout is recorded, not hashed."""
    from astra_repro import runs

    names = {runs.run_name(plan_sweep("table9", monkeypatch, n)[0]) for n in (1, 2, 4, 8)}
    assert len(names) == 1


def test_table3_sweep_plans_commonsense_with_the_reference_calibration_and_batch(monkeypatch):
    plans = plan_sweep("table3", monkeypatch, 8)
    assert len(plans) == 12 and all(p["task"]["name"] == "commonsense" for p in plans)
    astra = next(p for p in plans if p["method"]["name"] == "astra")
    assert astra["calibration"]["n_samples"] == 64
    # the reference's own layout: 8 per device x 2 accumulation x 8 GPUs
    assert astra["batch"] == {"global": 128, "per_device": 8, "grad_accum": 2, "world_size": 8}


# ----------------------------------------------------------------------------------------------- --local runs
def test_the_local_progress_line_gives_time_so_far_and_an_estimate_of_what_is_left():
    assert sweep.progress_line(0, 43, 0.0) == "[1/43]"  # no estimate before a run has finished
    assert sweep.progress_line(2, 43, 420.0) == "[3/43] 7.0 min so far, ~2.4 h left"  # 210 s a run x 41 runs
    assert sweep.progress_line(40, 43, 8400.0) == "[41/43] 2.3 h so far, ~10.5 min left"


def test_a_failing_local_run_stops_the_sweep_with_one_line_naming_it(monkeypatch, capsys):
    lines = [["method=lora", "seed=1"], ["method=lora", "seed=2"], ["method=lora", "seed=3"]]
    monkeypatch.setattr(sweep, "finished_runs", lambda overrides: [True, False, False])
    started = []

    def fails(command, **kwargs):
        started.append(command[3:])
        raise subprocess.CalledProcessError(3, command)

    monkeypatch.setattr(sweep.subprocess, "run", fails)
    with pytest.raises(SystemExit) as exit_info:
        sweep.run_locally("mysweep", lines)
    assert exit_info.value.code == 1 and started == [["method=lora", "seed=2"]]  # the finished one skipped, then stop
    out, err = capsys.readouterr()
    assert "1 of 3 runs already finished; 2 to run" in out and "[1/2] method=lora seed=2" in out
    assert err.count("\n") == 1 and "run 1 of 2 exited with status 3" in err
    assert "python -m astra_repro.train method=lora seed=2" in err and "python -m astra_repro.sweep mysweep --local" in err
