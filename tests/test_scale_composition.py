"""Issue 21 item 1: the scale is composed, never looked up. Every method's hyper-parameters at every scale and task
family equal the tables they came from (the paper's Table 7/8, App. F.1, and the demo rates measured on SmolLM2),
keys are flat, a missing scale file fails at composition with one line naming it, and `--cfg job` shows the run."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from astra_repro.errors import ConfigError
from astra_repro.paths import CONFIG_DIR
from astra_repro.spec import RunSpec, plan_run

METHODS = sorted(p.stem for p in (CONFIG_DIR / "method").glob("*.yaml"))
# (lr, rank, alpha) per method, as the per-method `hp:` tables stated them before the flat configs
DEMO = {"astra": (2e-4, 16, 32), "astra_paper_math": (2e-4, 16, 32), "base": (0.0, 0, 0), "corda": (2e-4, 16, 32),
        "dora": (1e-3, 16, 32), "eva": (1e-3, 16, 32), "fft": (1e-5, 0, 0), "lora": (1e-3, 16, 32),
        "loraga": (2e-4, 16, 16), "loraplus": (5e-4, 16, 32), "milora": (2e-4, 16, 32), "olora": (2e-4, 16, 32),
        "pissa": (2e-4, 16, 32), "rslora": (2.5e-4, 16, 32)}
PAPER_NLG = {m: (0.0, 0, 0) if m == "base" else (2e-5, 0, 0) if m == "fft" else (2e-5, 128, 16) if m == "loraga"
             else (2e-5, 128, 128) for m in METHODS}
PAPER_GLUE = {m: (0.0, 0, 0) if m == "base" else (1e-4, 0, 0) if m == "fft" else (2e-4, 8, 16) if m == "dora"
              else (1e-4, 8, 16) for m in METHODS}


def composed(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def hp(cfg) -> tuple:
    return (pytest.approx(float(cfg.lr)), int(cfg.rank), pytest.approx(float(cfg.alpha)))


def test_every_method_has_a_row_in_each_table():
    assert set(DEMO) == set(METHODS)


def composed_all(*overrides_per_run: list[str]) -> list:
    """Many compositions in one Hydra context (each context costs as much as a composition)."""
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return [compose("config", overrides=list(o)) for o in overrides_per_run]


def test_demo_scale_gives_each_method_its_demo_hyperparameters_on_every_task():
    runs = [(m, "math") for m in METHODS] + [(m, t) for m in ("lora", "astra", "fft") for t in ("code", "commonsense", "glue")]
    for (method, task), cfg in zip(runs, composed_all(*[[f"method={m}", f"task={t}"] for m, t in runs])):
        assert cfg.scale == "demo" and hp(cfg) == DEMO[method], (method, task)


def test_paper_models_pick_the_paper_scale_and_table8():
    runs = [(m, "llama2_7b", "math") for m in METHODS] + [("lora", "llama2_7b", "code"), ("astra", "llama3_8b", "commonsense")]
    for (method, model, task), cfg in zip(runs, composed_all(*[[f"model={m}", f"method={me}", f"task={t}"] for me, m, t in runs])):
        assert cfg.scale == "paper" and hp(cfg) == PAPER_NLG[method], (method, model, task)
        assert (cfg.task.train.global_batch_size, cfg.task.train.max_length, cfg.calibration.seq_len) == (128, 512, 512)


def test_t5_on_glue_takes_table7_and_dora_its_own_rate():
    for method, cfg in zip(METHODS, composed_all(*[["model=t5_base", "task=glue", f"method={m}"] for m in METHODS])):
        assert cfg.scale == "paper" and hp(cfg) == PAPER_GLUE[method], method
        assert cfg.task.data.n_train is None and cfg.task.train.global_batch_size == 128 and cfg.calibration.n_samples == 64


@pytest.mark.parametrize("task, steps, batch, n_samples", [("math", 20, 4, 16), ("code", 32, 8, 32),
                                                            ("commonsense", 32, 8, 32), ("glue", 16, 16, 16)])
def test_demo_schedules_and_calibration_sizes(task, steps, batch, n_samples):
    cfg = composed(f"task={task}")
    assert (cfg.task.train.max_steps, cfg.task.train.global_batch_size, cfg.calibration.n_samples) == (steps, batch, n_samples)


def test_flat_keys_override_at_any_scale():
    cfg = composed("model=llama2_7b", "task.train.max_steps=4", "task.train.per_device_batch_size=32",
                   "calibration.n_samples=64", "task.evaluators.gsm8k.n=50", "lr=1e-4")
    assert (cfg.task.train.max_steps, cfg.task.train.per_device_batch_size, cfg.calibration.n_samples) == (4, 32, 64)
    assert cfg.task.evaluators.gsm8k.n == 50 and cfg.lr == 1e-4 and cfg.scale == "paper"
    assert composed("model=llama2_7b", "scale=demo").task.train.max_steps == 20  # the command line's scale wins


def test_rank_keeps_the_scales_alpha_rule_and_alpha_sets_it():
    assert hp(composed("rank=8")) == (1e-3, 8, 16)  # demo: alpha = 2r
    assert hp(composed("model=llama2_7b", "rank=32")) == (2e-5, 32, 32)  # paper: alpha = r
    assert hp(composed("method=loraga", "rank=8")) == (2e-4, 8, 16)  # LoRA-GA: alpha 16 at every rank
    assert hp(composed("rank=8", "alpha=4")) == (1e-3, 8, 4)


def test_plan_reads_the_flat_values():
    plan = plan_run(composed("method=astra", "task.train.max_steps=3", "calibration.n_samples=8"))
    assert plan["schedule"]["max_steps"] == 3 and plan["calibration"]["n_samples"] == 8
    assert plan["hp"]["learning_rate"] == 2e-4 and plan["recipe"] == "demo"


def test_a_missing_scale_file_is_one_line_naming_it(tmp_path):
    # a task with no file for the paper scale: copy the configs and drop one task_scale file
    import shutil

    configs = tmp_path / "configs"
    shutil.copytree(CONFIG_DIR, configs)
    (configs / "task_scale" / "code_paper.yaml").unlink()
    with initialize_config_dir(config_dir=str(configs), version_base="1.3"):
        cfg = compose("config", overrides=["model=llama2_7b", "task=code"])
    with pytest.raises(ConfigError, match=r"^calibration\.n_samples, calibration\.seq_len, task\.data\.n_train, .* and \d+ "
                                          r"more are not set at scale 'paper' \(no configs/task_scale/code_paper\.yaml\?\); "
                                          r"add that file or set calibration\.n_samples=<value>$"):
        RunSpec.from_config(cfg)


def test_cfg_job_prints_the_resolved_run():
    out = subprocess.run([sys.executable, "-m", "astra_repro.train", "model=tiny_llama", "rank=4", "--cfg", "job",
                          "--resolve"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cfg = OmegaConf.create(out.stdout)
    assert (cfg.rank, cfg.alpha, cfg.lr, cfg.task.train.max_steps, cfg.scale) == (4, 8, 1e-3, 20, "demo")


@pytest.mark.parametrize("override, nearest", [
    ("task.train.max_step=4", "task.train.max_steps"),
    ("task.train.demo.max_steps=4", "task.train.max_steps"),  # the key before the flat configs
    ("lrr=1e-4", "lr"),
    ("task.evaluators.gsm8k.nn=3", "task.evaluators.gsm8k.n"),
])
def test_an_unknown_key_is_one_line_naming_the_nearest(override, nearest):
    from astra_repro.cli import check_override_keys

    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=rf"^unknown key '{key}'; did you mean {nearest}\? \(a new key is added with "):
        check_override_keys(["model=tiny_llama", override])
    check_override_keys(["task=code", "task.evaluators.humaneval.n=3", "+task.train.grad_accum=2", "scale=paper"])


def test_an_unknown_key_at_the_entry_point_exits_2_with_one_line(tmp_path, capfd):
    from entry_points import run_in_process

    outcome = run_in_process("astra_repro.train", ["model=tiny_llama", "task.train.max_step=4"], tmp_path, capfd)
    assert outcome.returncode == 2
    assert outcome.stderr.strip() == ("error: unknown key 'task.train.max_step'; did you mean task.train.max_steps? "
                                      "(a new key is added with +task.train.max_step=...)")


def test_the_run_spec_is_frozen_and_its_plan_is_what_the_run_writes(tmp_path):
    import dataclasses

    import yaml

    from astra_repro import runs
    from astra_repro.train import run

    cfg = composed("model=tiny_llama", "method=lora", "task.train.max_steps=2", "task.train.global_batch_size=2",
                   "task.train.per_device_batch_size=2", "task.data.n_train=8", "task.data.synthetic.n_train=16",
                   "skip_eval=true", f"output_root={tmp_path}")
    spec = RunSpec.from_config(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seed = 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.hp.rank = 4
    with pytest.raises(TypeError):
        spec.model["name"] = "other"  # nested mappings are read-only views
    with pytest.raises(TypeError):
        spec.task["data"]["n_train"] = 1
    run_dir = run(cfg)
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == spec.plan()
    assert runs.read_json(run_dir / runs.METRICS_FILE)["config_hash"] == runs.config_hash(spec.plan())
