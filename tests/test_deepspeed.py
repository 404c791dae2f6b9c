"""The reference trainer setup (DeepSpeed ZeRO-2) runs end to end on CPU in one process, on an init that
changes the base weights, because calibration + init happen before DeepSpeed and are loaded from files.

Runs in a subprocess: DeepSpeed initialises a process-wide torch.distributed group that would leak into
every later test in this process."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from helpers import TINY_OVERRIDES


pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed"),
    pytest.mark.xdist_group("one_process_run"),  # with test_ddp.py: one reference run per test run (conftest.py)
]


def test_zero2_single_process_cpu(tmp_path):
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    overrides = [*TINY_OVERRIDES, "method=astra", "trainer=deepspeed_zero2", "task.train.max_steps=2",
                 "skip_eval=true", "rank=4", f"output_root={tmp_path / 'runs'}"]
    proc = subprocess.run([sys.executable, "-m", "astra_repro.train", *overrides], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((tmp_path / "runs" / "math").iterdir())
    record = json.loads((run_dir / "metrics.json").read_text())
    log = [json.loads(l) for l in (run_dir / "train_log.jsonl").read_text().splitlines() if '"loss"' in l]
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)
    assert record["method"] == "astra" and (run_dir / "export" / "plain_lora" / "adapter_config.json").exists()
    assert "deepspeed: zero2" in (run_dir / "config.yaml").read_text()
    assert "DeepSpeed" in proc.stdout + proc.stderr  # the engine really ran (its banner or info lines)


@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_processes_train_the_single_process_adapter_then_export_and_score(tmp_path, stage, one_process_run):
    """torchrun --nproc_per_node=2 under ZeRO-2 / ZeRO-3 (gloo, CPU) trains what one plain process trains with the
    same global batch, and the run goes on to export and scoring. Under ZeRO-3 every rank holds a slice of each
    parameter after training, so rank 0 rebuilds the whole model from the run folder's files for the export."""
    from test_ddp import batch_of, free_port, launch, trained

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    scoring = ["skip_eval=false", *[f"task.evaluators.{e}.{k}=4" for e in ("gsm8k", "math") for k in ("n", "max_new_tokens")]]
    launch([torchrun, "--nproc_per_node=2", f"--master_port={free_port()}", "-m", "astra_repro.train",
            f"trainer=deepspeed_{stage}", "method=astra"], tmp_path / stage, extra=tuple(scoring))
    sharded, run_dir = trained(tmp_path / stage)
    single, single_dir = trained(one_process_run("astra"))  # test_ddp's COMMON overrides, one process (conftest.py)
    init = load_file(single_dir / "init" / "adapter" / "adapter_model.safetensors")
    assert all(v.numel() > 0 for v in sharded.values())  # a ZeRO-3 slice saved as is would be empty
    moved = max(float((single[k] - init[k]).abs().max()) for k in single)
    difference = max(float((sharded[k] - single[k]).abs().max()) for k in single)
    assert moved > 1e-4 and difference <= 1e-3 * moved, f"{stage}: {difference:.3g} apart (training moved {moved:.3g})"
    # The merged export is the residual base plus the trained adapter, exactly what a fresh load of the files gives.
    merged = load_file(run_dir / "export" / "merged" / "model.safetensors")
    residual = load_file(run_dir / "init" / "base" / "model.safetensors")
    key = "model.layers.0.mlp.down_proj"
    scale = json.loads((run_dir / "init" / "adapter" / "adapter_config.json").read_text())
    scale = scale["lora_alpha"] / scale["r"]
    delta = scale * sharded[f"base_model.model.{key}.lora_B.weight"] @ sharded[f"base_model.model.{key}.lora_A.weight"]
    torch.testing.assert_close(merged[f"{key}.weight"], residual[f"{key}.weight"] + delta, atol=1e-6, rtol=0)
    record = json.loads((run_dir / "metrics.json").read_text())
    assert set(record["metrics"]) == {"gsm8k", "math"} and record["global_batch_size"] == 4
    assert batch_of(run_dir) == {"global": 4, "per_device": 2, "grad_accum": 1, "world_size": 2}
    assert batch_of(single_dir) == {"global": 4, "per_device": 4, "grad_accum": 1, "world_size": 1}
