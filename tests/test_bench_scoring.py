"""The scoring benchmarks (issue 20). `make bench`'s comparison times today's path at today's settings: the padded path
at the demo batch sizes from before issue 20 (HumanEval's moved from 16 to 32), the default path at the current demo
scale. `bench_decode_floor.py` measures a decoding step per row count (smoke-tested on the tiny model)."""

import argparse
import importlib.util

from astra_repro.paths import PROJECT_ROOT

spec = importlib.util.spec_from_file_location("bench_scoring", PROJECT_ROOT / "scripts" / "bench_scoring.py")
bench_scoring = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_scoring)


def args(**given):
    values = dict(gsm8k=None, math=None, humaneval=None, n=None, batch_size=None, baseline_batch_size=None,
                  max_new_tokens=None)
    values.update(given)
    return argparse.Namespace(**values)


def test_the_padded_baseline_runs_at_the_batch_before_issue_20_and_the_default_at_the_demo_scale():
    assert set(bench_scoring.PADDED_BATCH_BEFORE) == set(bench_scoring.BENCHMARKS)
    demo = {name: bench_scoring.evaluator_settings(name, args()).batch_size for name in bench_scoring.BENCHMARKS}
    assert demo == {"gsm8k": 50, "math": 50, "humaneval": 32}
    padded = {name: bench_scoring.padded_batch(name, args()) for name in bench_scoring.BENCHMARKS}
    assert padded == {"gsm8k": 50, "math": 50, "humaneval": 16}
    assert bench_scoring.evaluator_settings("humaneval", args(), padded["humaneval"]).batch_size == 16


def test_batch_size_flags_override_both_paths():
    assert bench_scoring.padded_batch("humaneval", args(batch_size=8)) == 8
    assert bench_scoring.padded_batch("humaneval", args(batch_size=8, baseline_batch_size=4)) == 4
    settings = bench_scoring.evaluator_settings("gsm8k", args(batch_size=8, n=3, max_new_tokens=5))
    assert (settings.batch_size, settings.n, settings.max_new_tokens) == (8, 3, 5)


def test_the_decode_floor_script_measures_every_row_count_it_is_given(tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "floor.json"
    subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "bench_decode_floor.py"), "--model", "tiny_llama",
                    "--rows", "1", "3", "--cache", "8", "--repeats", "2", "--out", str(out)], check=True, timeout=300)
    record = json.loads(out.read_text())
    assert [r["rows"] for r in record["steps"]] == [1, 3] and record["model"] == "tiny_llama"
    assert all(r["step_ms"] > 0 and abs(r["ms_per_row"] - r["step_ms"] / r["rows"]) < 0.06 for r in record["steps"])
    assert record["prefill_tokens_per_s"] > 0 and record["runtime"]["threads"] >= 1
