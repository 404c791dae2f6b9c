"""The reference trainer setup (DeepSpeed ZeRO-2) runs end to end on CPU in one process, on an init that
changes the base weights, because calibration + init happen before DeepSpeed and are loaded from files."""

import importlib.util
import json

import pytest
from helpers import tiny_cfg

from astra_repro.train import run

pytestmark = pytest.mark.skipif(importlib.util.find_spec("deepspeed") is None, reason="deepspeed not installed")


def test_zero2_single_process_cpu(monkeypatch):
    for key, value in {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29533"}.items():
        monkeypatch.setenv(key, value)
    run_dir = run(tiny_cfg("method=astra", "trainer=deepspeed_zero2", "task.train.demo.max_steps=2", "skip_eval=true", "rank=4"))
    record = json.loads((run_dir / "metrics.json").read_text())
    log = [json.loads(l) for l in (run_dir / "train_log.jsonl").read_text().splitlines() if '"loss"' in l]
    assert [r["step"] for r in log] == [1, 2] and all(r["loss"] > 0 for r in log)
    assert record["method"] == "astra" and (run_dir / "export" / "plain_lora" / "adapter_config.json").exists()
