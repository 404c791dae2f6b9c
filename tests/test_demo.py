"""`make demo`'s script on tiny_llama: the four rows (base, LoRA, Astra as released, Astra as the theorem states)
on the same problems, each compared with LoRA (bootstrap interval + exact McNemar), one calibration shared by
both Astra rows, and closing lines that say where the outputs are and how to rerun at paper scale."""

import importlib.util
import json
from pathlib import Path

from helpers import TINY_OVERRIDES, tiny_evaluator_overrides

from astra_repro.paths import PROJECT_ROOT


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", PROJECT_ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_rows_comparisons_and_closing_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ASTRA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    demo = load_demo()
    demo.main([*TINY_OVERRIDES, *tiny_evaluator_overrides("math"), "task.evaluators.gsm8k.n.demo=8", "rank=4"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("  ") and "%" in line and "McNemar" not in line]
    assert [r.split("  ")[1].strip() for r in rows[:4]] == list(demo.DEMO_ROWS)
    assert sum("McNemar" in line for line in out.splitlines()) == 1
    assert sum(" p=" in r for r in rows) == 3  # every row but LoRA itself is compared with LoRA
    assert "8 held-out problems (synthetic data), the same for every row" in out
    assert demo.PAPER_SCALE in out and "demo wall time:" in out
    records = [json.loads(p.read_text()) for p in (tmp_path / "results" / "runs").rglob("metrics.json")]
    astra = sorted((r for r in records if r["method"] == "astra"), key=lambda r: r["init"]["astra"]["subspace"])
    assert [r["init"]["astra"]["subspace"] for r in astra] == ["largest", "smallest"]
    assert sorted(r["init"]["calibration"]["cached"] for r in astra) == [False, True]  # one calibration, shared
    assert astra[1]["learning_rate"] == 1e-3 and astra[0]["learning_rate"] == 2e-4
    assert Path(out.split("table    ")[1].split()[0]).exists()
