"""Issue 19, item 3: the paper's global batch is an invariant of every route. The micro-batch and the accumulation
are derived from the recipe's global batch, the process count and the per-device cap; numbers that do not divide
are one-line errors naming the fix; a lone process that sees several GPUs is refused (no silent DataParallel); the
Trainer's own product is checked against the plan; a checkpoint resumes only under the layout that wrote it; and a
multi-task submitit job gets torchrun's variables from SLURM's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import TINY_OVERRIDES, tiny_cfg

from astra_repro.errors import ConfigError
from astra_repro.spec import plan_run
from astra_repro.train import run
from astra_repro.training import launch
from astra_repro.training.batch import batch_layout

PREFIX = "task.train"


def layout(global_batch: int, cap: int, world: int, **extra) -> dict:
    return batch_layout({"global_batch_size": global_batch, "per_device_batch_size": cap, **extra}, world, PREFIX)


@pytest.mark.parametrize("global_batch, cap, world, per_device, grad_accum", [
    (128, 128, 1, 128, 1), (128, 128, 4, 32, 1), (128, 128, 8, 16, 1),   # Table 1
    (32, 128, 1, 32, 1), (32, 128, 4, 8, 1), (32, 128, 8, 4, 1),         # Table 9
    (128, 8, 1, 8, 16), (128, 8, 4, 8, 4), (128, 8, 8, 8, 2),            # math / code / commonsense (Table 8)
    (128, 8, 32, 4, 1), (4, 4, 2, 2, 1), (4, 2, 1, 2, 2),
])
def test_layout_is_derived_from_the_global_batch(global_batch, cap, world, per_device, grad_accum):
    assert layout(global_batch, cap, world) == {"global": global_batch, "per_device": per_device,
                                                "grad_accum": grad_accum, "world_size": world}


@pytest.mark.parametrize("global_batch, cap, world, extra, message", [
    (128, 8, 3, {}, r"^task\.train\.global_batch_size=128 does not split over 3 processes \(WORLD_SIZE\); "
                    r"launch a process count that divides it \(torchrun --nproc_per_node=2 or 4\) or set "
                    r"task\.train\.global_batch_size to a multiple of 3$"),
    (32, 128, 64, {}, r"does not split over 64 processes .*torchrun --nproc_per_node=32\)"),
    (128, 6, 1, {}, r"^task\.train\.per_device_batch_size=6 does not divide the 128 examples per process and "
                    r"step \(task\.train\.global_batch_size=128 over 1 process\(es\)\); set "
                    r"task\.train\.per_device_batch_size=4 \(or another divisor of 128\)$"),
    (128, 8, 4, {"grad_accum": 2}, r"^task\.train\.grad_accum=2 contradicts task\.train\."
                                   r"global_batch_size=128: at 4 process\(es\) of at most 8 per device the "
                                   r"accumulation is 4; drop grad_accum"),
    (None, 8, 1, {}, r"^task\.train\.global_batch_size is not set; set it"),
    (0, 8, 1, {}, r"^task\.train\.global_batch_size=0 must be an integer >= 1"),
])
def test_numbers_that_do_not_divide_are_one_line_errors_naming_the_fix(global_batch, cap, world, extra, message):
    with pytest.raises(ConfigError, match=message) as err:
        layout(global_batch, cap, world, **extra)
    assert "\n" not in str(err.value)


def test_a_grad_accum_that_agrees_is_accepted():
    assert layout(128, 8, 4, grad_accum=4)["grad_accum"] == 4


def test_every_scale_states_its_global_batch_and_no_accumulation(monkeypatch):
    """The paper scale: the paper's global batch. The demo scale: the batch a single process always trained it at
    (per device x accumulation before issue 19), so `make demo` and one-process runs are unchanged."""
    from hydra import compose, initialize_config_dir

    from astra_repro.paths import CONFIG_DIR

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    expected = {"math": {"demo": (4, 4), "paper": (128, 8)}, "code": {"demo": (8, 8), "paper": (128, 8)},
                "commonsense": {"demo": (8, 8), "paper": (128, 8)},
                "glue": {"demo": (16, 16), "paper": (128, 128)}}
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for task, scales in expected.items():
            for scale, (global_batch, cap) in scales.items():
                train = compose("config", overrides=[f"task={task}", f"scale={scale}"]).task.train
                assert (train.global_batch_size, train.per_device_batch_size) == (global_batch, cap)
                assert "grad_accum" not in train
        plan = plan_run(compose("config", overrides=["task=math"]))  # the embedded demo, one process
    assert plan["batch"] == {"global": 4, "per_device": 4, "grad_accum": 1, "world_size": 1}


def test_a_bad_world_size_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ConfigError, match=r"^WORLD_SIZE='two' is not a positive process count"):
        plan_run(tiny_cfg())


# ------------------------------------------------------------------------------------------------- the entry point
def entry_point(args: list[str], tmp: Path, **env) -> subprocess.CompletedProcess:
    environ = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", **env)
    return subprocess.run([sys.executable, "-m", "astra_repro.train", *TINY_OVERRIDES, "skip_eval=true",
                           f"output_root={tmp / 'runs'}", *args], capture_output=True, text=True, cwd=tmp,
                          env=environ, timeout=300)


@pytest.mark.parametrize("args, env, message", [
    ([], {"WORLD_SIZE": "3"}, r"^task\.train\.global_batch_size=4 does not split over 3 processes"),
    (["task.train.per_device_batch_size=3"], {}, r"^task\.train\.per_device_batch_size=3 does not divide"),
    (["+task.train.grad_accum=2"], {}, r"^task\.train\.grad_accum=2 contradicts"),
    (["task.train.global_batch_size=0"], {}, r"^task\.train\.global_batch_size=0 must be >= 1"),
])
def test_layout_errors_exit_2_with_one_line_through_the_entry_point(tmp_path, args, env, message):
    import re

    done = entry_point(args, tmp_path, **env)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2, done.stderr[-2000:]
    assert not any("Traceback" in line for line in lines), done.stderr[-2000:]
    assert re.search(message, lines[-1][len("error: "):]) and lines[-1].startswith("error: "), lines[-1]
    assert not (tmp_path / "runs").exists()  # refused before a run folder was written


def pretend_gpus(monkeypatch, n: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


def test_one_process_that_sees_two_gpus_is_refused_with_the_torchrun_line(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    pretend_gpus(monkeypatch, 2)
    with pytest.raises(ConfigError) as err:
        run(tiny_cfg("method=lora", f"output_root={tmp_path}"))
    message = str(err.value)
    assert "\n" not in message and "DataParallel" in message
    assert "torchrun --nproc_per_node=2 -m astra_repro.train" in message and "CUDA_VISIBLE_DEVICES=0" in message
    assert not any(tmp_path.iterdir())  # nothing written


def test_one_gpu_or_one_process_per_gpu_is_fine(monkeypatch):
    launch.check_one_process_per_device(1, 1)
    launch.check_one_process_per_device(1, 0)
    launch.check_one_process_per_device(4, 4)  # torchrun: each process takes cuda:LOCAL_RANK
    with pytest.raises(ConfigError, match="torchrun --nproc_per_node=8"):
        launch.check_one_process_per_device(1, 8)
    pretend_gpus(monkeypatch, 1)
    launch.check_one_process_per_device(1)


def test_the_trainer_product_is_checked_against_the_plan(tmp_path, monkeypatch):
    """Whatever the launcher, training never starts at another global batch than the planned one (DataParallel
    over 2 GPUs would double the micro-batch)."""
    from transformers import TrainingArguments

    from astra_repro.training.trainer import check_trainer_batch

    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2,
                             use_cpu=True, report_to=[])
    check_trainer_batch(args, {"global": 8, "per_device": 4, "grad_accum": 2, "world_size": 1})
    monkeypatch.setattr(TrainingArguments, "n_gpu", property(lambda self: 2))
    with pytest.raises(RuntimeError, match=r"global batch 16 \(8 per step x 2 accumulation x 1 processes, 2 GPU"):
        check_trainer_batch(args, {"global": 8, "per_device": 4, "grad_accum": 2, "world_size": 1})


def test_a_checkpoint_resumes_only_under_the_layout_that_wrote_it(tmp_path, monkeypatch):
    from astra_repro.training.trainer import BATCH_FILE, check_resume_layout

    monkeypatch.delenv("RANK", raising=False)
    four = {"global": 128, "per_device": 32, "grad_accum": 1, "world_size": 4}
    one = {"global": 128, "per_device": 128, "grad_accum": 1, "world_size": 1}
    check_resume_layout(tmp_path, None, four)  # a fresh start writes its layout
    assert json.loads((tmp_path / BATCH_FILE).read_text()) == four
    check_resume_layout(tmp_path, str(tmp_path / "checkpoint-2"), four)
    with pytest.raises(ConfigError, match=r"written by 4 process\(es\) .* this launch has 1; resume it with torchrun "
                                          r"--nproc_per_node=4, or start it again with force=true$"):
        check_resume_layout(tmp_path, str(tmp_path / "checkpoint-2"), one)
    check_resume_layout(tmp_path, None, one)  # no checkpoint left: a fresh start under the new layout
    assert json.loads((tmp_path / BATCH_FILE).read_text()) == one


def test_the_record_holds_the_real_global_batch(tmp_path, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run_dir = run(tiny_cfg("method=lora", "skip_eval=true", "task.train.max_steps=2",
                           "task.train.global_batch_size=4", "task.train.per_device_batch_size=2",
                           f"output_root={tmp_path}"))
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["global_batch_size"] == 4
    assert record["batch"] == {"global": 4, "per_device": 2, "grad_accum": 2, "world_size": 1}
    state = json.loads(max((run_dir / "checkpoints").glob("checkpoint-*/trainer_state.json")).read_text())
    assert state["train_batch_size"] == 2  # what HF Trainer ran per step and device


# ------------------------------------------------------------------------------------------------- submitit
SLURM_TASK = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2",
              "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_NODEID": "1", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}
TORCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def environ():
    """os.environ restored after the test (the export writes to it directly)."""
    saved = dict(os.environ)
    for key in (*TORCH_VARS, *SLURM_TASK, "CUDA_VISIBLE_DEVICES"):
        os.environ.pop(key, None)
    yield os.environ
    os.environ.clear()
    os.environ.update(saved)


def test_submitit_tasks_get_torchruns_variables_from_slurms(environ):
    pytest.importorskip("submitit")
    environ.update(SLURM_TASK)
    exported = launch.export_submitit_env()
    port = exported["MASTER_PORT"]
    assert exported == {"RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
                        "MASTER_ADDR": "gpu07", "MASTER_PORT": port}
    assert {k: environ[k] for k in TORCH_VARS} == exported
    assert "CUDA_VISIBLE_DEVICES" not in environ  # each task sees the node's GPUs and takes cuda:LOCAL_RANK
    assert 20000 <= int(port) <= 60000
    # every task of the job agrees on the master's port (drawn from the job id)
    for key in TORCH_VARS:
        environ.pop(key)
    environ.update(SLURM_PROCID="0", SLURM_LOCALID="0", SLURM_NODEID="0")
    assert launch.export_submitit_env()["MASTER_PORT"] == port and environ["RANK"] == "0"


def test_submitit_export_keeps_a_given_port_and_leaves_other_launches_alone(environ):
    pytest.importorskip("submitit")
    environ.update(SLURM_TASK, MASTER_PORT="29512")
    assert launch.export_submitit_env()["MASTER_PORT"] == "29512"
    for key in TORCH_VARS:
        environ.pop(key)
    environ.update(RANK="3", WORLD_SIZE="8")  # torchrun (or DeepSpeed's launcher) set them: nothing to do
    assert launch.export_submitit_env() is None and environ["RANK"] == "3" and "LOCAL_RANK" not in environ
    environ.pop("RANK"), environ.pop("WORLD_SIZE")
    environ["SLURM_NTASKS"] = "1"  # one task: one process, the multi-GPU check decides
    assert launch.export_submitit_env() is None and "RANK" not in environ
    environ["SLURM_NTASKS"] = "8"
    environ.pop("SUBMITIT_EXECUTOR")  # plain sbatch/srun without submitit: array.sbatch uses torchrun
    assert launch.export_submitit_env() is None and "RANK" not in environ


def test_the_submitit_launcher_runs_one_task_per_gpu():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from astra_repro.paths import CONFIG_DIR

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for gpus in (None, 1, 8):
            extra = [f"hydra.launcher.gpus_per_node={gpus}"] if gpus else []
            cfg = compose("config", overrides=["hydra/launcher=slurm_cluster", *extra], return_hydra_config=True)
            launcher = cfg.hydra.launcher
            assert launcher.tasks_per_node == launcher.gpus_per_node == (gpus or 4)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_a_two_task_submitit_job_trains_as_two_processes_at_the_planned_batch(tmp_path):
    """The entry point as two tasks of one submitit SLURM job would start it (no torchrun): both join one process
    group from SLURM's variables, and the record says 2 processes x 2 per device = the recipe's 4."""
    pytest.importorskip("submitit")
    port = str(free_port())
    procs = []
    for task in (0, 1):
        env = {k: v for k, v in os.environ.items() if k not in TORCH_VARS and not k.startswith("SLURM_")}
        env.update(SLURM_TASK, SLURM_NTASKS="2", SLURM_JOB_NUM_NODES="1", SLURM_JOB_NODELIST="localhost",
                   SLURM_NODEID="0", SLURM_PROCID=str(task), SLURM_LOCALID=str(task), MASTER_PORT=port,
                   HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "astra_repro.train", *TINY_OVERRIDES, "trainer=ddp", "method=lora", "skip_eval=true",
             "task.train.max_steps=2", f"output_root={tmp_path / 'runs'}"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    (metrics,) = (tmp_path / "runs").rglob("metrics.json")
    record = json.loads(metrics.read_text())
    assert record["global_batch_size"] == 4
    assert record["batch"] == {"global": 4, "per_device": 2, "grad_accum": 1, "world_size": 2}
    assert record["cost"]["n_devices"] == 2
