"""The reference trainer setup (DeepSpeed ZeRO-2) runs end to end on CPU in one process, on an init that
changes the base weights, because calibration + init happen before DeepSpeed and are loaded from files.

Runs in a subprocess: DeepSpeed initialises a process-wide torch.distributed group that would leak into
every later test in this process."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from helpers import TINY_OVERRIDES

from astra_repro.paths import PROJECT_ROOT

pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")


def test_zero2_single_process_cpu(tmp_path):
    env = dict(os.environ, RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
    overrides = [*TINY_OVERRIDES, "method=astra", "trainer=deepspeed_zero2", "task.train.demo.max_steps=2",
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
