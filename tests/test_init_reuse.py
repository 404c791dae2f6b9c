"""Runs that differ only in the learning rate (or the evaluators) share one init: the second reuses the first's saved
init instead of calibrating and decomposing again, and trains exactly as if it had computed the init itself."""

import json

import torch
from helpers import tiny_cfg
from safetensors.torch import load_file

from astra_repro.artifacts import init_identity
from astra_repro.spec import plan_run
from astra_repro.train import run

FAST = ["method=astra", "skip_eval=true", "method.subspace=smallest"]


def record(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def tensors(folder):
    out = {}
    for shard in sorted(folder.rglob("*.safetensors")):
        out.update({f"{shard.parent.name}/{k}": v for k, v in load_file(shard).items()})
    return out


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_identity_ignores_only_the_learning_rate_and_the_evaluators():
    base = init_identity(plan_run(tiny_cfg(*FAST, "lr=1e-3")))
    assert init_identity(plan_run(tiny_cfg(*FAST, "lr=5e-4"))) == base
    assert init_identity(plan_run(tiny_cfg(*FAST, "lr=1e-3", "evaluators=[gsm8k]"))) == base
    for other in ("seed=1", "rank=8", "method.subspace=largest", "calibration.n_samples=8"):
        assert init_identity(plan_run(tiny_cfg(*FAST, "lr=1e-3", other))) != base, other


def test_a_learning_rate_grid_reuses_the_init_and_trains_as_a_fresh_one(tmp_path, capsys):
    first = run(tiny_cfg(*FAST, "lr=1e-3", f"output_root={tmp_path / 'grid'}"))
    second = run(tiny_cfg(*FAST, "lr=5e-3", f"output_root={tmp_path / 'grid'}"))
    assert f"init: reusing {first.name}'s initialisation" in capsys.readouterr().out
    assert record(second)["init"]["reused_from"] == first.name
    assert "reused_from" not in record(first)["init"]
    # the init cost stays the method's (the cost tables), not the few milliseconds of linking the files
    assert record(second)["cost"]["init_s"] == record(first)["cost"]["init_s"]
    assert_same(tensors(second / "init"), tensors(first / "init"))
    # the same run computed from scratch in an empty folder trains to the same weights, bit for bit
    alone = run(tiny_cfg(*FAST, "lr=5e-3", f"output_root={tmp_path / 'alone'}"))
    assert "reused_from" not in record(alone)["init"]
    assert_same(tensors(second / "trained"), tensors(alone / "trained"))
    # and a different seed is a different init
    other = run(tiny_cfg(*FAST, "lr=5e-3", "seed=7", f"output_root={tmp_path / 'grid'}"))
    assert "reused_from" not in record(other)["init"]
