"""`make demo`'s script on tiny_llama: the five rows (base, LoRA, Astra as released, Astra as the theorem states at
the released rate and at its own) on the same problems, each compared with LoRA (bootstrap interval + exact
McNemar), the two selections compared at the same rate, the share of data-determined directions per Astra row,
one float64 init shared by both theorem rows, and closing lines that say where the outputs are; in this process (the
default, as `make demo` runs) and as processes in two lanes (--jobs 2)."""

import importlib.util
import json
from pathlib import Path

import pytest

from helpers import TINY_OVERRIDES, tiny_evaluator_overrides

from astra_repro.paths import PROJECT_ROOT


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", PROJECT_ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("jobs", [[], ["--jobs", "2"]], ids=["in process (default)", "two lanes"])
def test_demo_rows_comparisons_and_closing_lines(tmp_path, monkeypatch, capsys, jobs):
    monkeypatch.setenv("ASTRA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("astra_repro.threads.affinity_cpus", lambda: 2)  # two lanes wherever the test runs
    demo = load_demo()
    demo.main([*jobs, *TINY_OVERRIDES, *tiny_evaluator_overrides("math"), "task.evaluators.gsm8k.n=8", "rank=4"])
    out = capsys.readouterr().out
    logs = sorted(p.name for p in (tmp_path / "results" / "demo_logs").glob("*.log"))
    assert ("5 rows in 2 lanes of 1 thread(s)" in out) == bool(jobs)
    assert len(logs) == (5 if jobs else 0)
    rows = [line for line in out.splitlines() if line.startswith("  ") and "%" in line and "McNemar" not in line]
    assert [r.split("  ")[1].strip() for r in rows[:5]] == list(demo.DEMO_ROWS)
    assert sum("McNemar" in line for line in out.splitlines()) == 1
    assert sum(" p=" in r for r in rows) == 4  # every row but LoRA itself is compared with LoRA
    same_rate = [line for line in out.splitlines() if "Same rate, subspace alone" in line]
    assert len(same_rate) == 1 and " p=" in same_rate[0] and " pts [" in same_rate[0]
    shares = {line.split("  ")[1].strip(): line for line in out.splitlines() if " from data" in line}
    assert set(shares) == {demo.RELEASED, demo.THEOREM_SAME_RATE, demo.THEOREM_OWN_RATE}
    # tiny_llama: gate/up have 128 outputs from 64 inputs, so the smallest selection there is structural null
    assert "structural null" in shares[demo.THEOREM_SAME_RATE] and "structural null" not in shares[demo.RELEASED]
    assert "8 held-out problems (synthetic data), the same for every row" in out
    assert demo.PAPER_SCALE in out and "demo wall time:" in out
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").rglob("metrics.json")]
    astra = sorted((r for r in records if r["method"] == "astra"),
                   key=lambda r: (r["init"]["astra"]["subspace"], r["learning_rate"]))
    assert [(r["init"]["astra"]["subspace"], r["learning_rate"]) for r in astra] == [
        ("largest", 2e-4), ("smallest", 2e-4), ("smallest", 1e-3)]
    assert [r["init"]["astra"]["accumulate_dtype"] for r in astra] == ["model", "float64", "float64"]
    assert not astra[0]["init"]["calibration"]["cached"]  # fp32, the reference's arithmetic
    # one float64 init, shared: the theorem's second row reuses the first's saved init (only the rate differs)
    assert sorted(r["init"].get("reused_from", "") != "" for r in astra[1:]) == [False, True]
    assert not any(r["init"]["calibration"]["cached"] for r in astra[1:])
    for record in astra:
        shares = record["init"]["astra_directions"]
        assert shares["data"] + shares["structural_null"] + shares["rounding_level"] == shares["columns"]
    assert Path(out.split("table    ")[1].split()[0]).exists()
