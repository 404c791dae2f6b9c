"""The paper's tables, the cost tables and the HTML report from fixture run records (tests/run_fixtures.py).

Golden files (tests/golden/tables/) hold the Markdown, CSV and LaTeX of every table the fixture sweep fills;
after an intended change of format, regenerate them with `UPDATE_GOLDEN=1 pytest tests/test_paper_tables.py` and
review the diff. The other tests check what the tables mean, independently of their format."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
import pytest
from run_fixtures import paper_like_runs, write_run

from astra_repro import runs
from astra_repro.report.cost import cost_tables
from astra_repro.report.page import write_report
from astra_repro.report.paper_tables import paper_tables

GOLDEN = Path(__file__).parent / "golden" / "tables"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> list[dict]:
    return runs.load_records(paper_like_runs(tmp_path_factory.mktemp("fixture_runs")))


@pytest.fixture(scope="module")
def tables(records) -> dict:
    return {t.name: t for t in paper_tables(records) + cost_tables(records)}


def test_every_table_matches_its_golden_files(tables):
    expected = {"table1_t5_base", "table9_t5_base", "table2_llama2_7b", "table3_llama3_8b", "table4_llama2_7b",
                "table2_smollm2_135m_synthetic", "table1_t5_base_significance", "table2_llama2_7b_significance",
                "cost_table_math", "cost_no_sweep"}
    assert expected <= set(tables)
    update = os.environ.get("UPDATE_GOLDEN") == "1"
    for name, table in sorted(tables.items()):
        for ext, text in (("md", table.markdown()), ("csv", table.data.to_csv(index=False)), ("tex", table.latex())):
            path = GOLDEN / f"{name}.{ext}"
            if update:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
            assert path.exists(), f"no golden file {path.name}: run with UPDATE_GOLDEN=1 and review it"
            assert text == path.read_text(), f"{path.name} changed (UPDATE_GOLDEN=1 to accept an intended change)"


def row(table, first_cell: str, rank: str | None = None) -> list[str]:
    (found,) = [r for r in table.rows if r[0] == first_cell and (rank is None or r[1] == rank)]
    return found


def test_paper_rows_stay_without_runs_and_delta_is_ours_minus_paper(tables):
    table2 = tables["table2_llama2_7b"]
    assert row(table2, "milora (no runs)")[2:5] == ["—", "39.12", "—"]
    data = table2.data.set_index("method")
    astra = data.loc["astra"]
    astra = astra[astra["rank"] == 128].iloc[0]
    assert astra["gsm8k.seeds"] == 3 and astra["gsm8k.paper"] == 55.19
    assert astra["gsm8k.delta"] == pytest.approx(astra["gsm8k"] - 55.19)
    # a benchmark without runs leaves the row's Avg empty instead of averaging fewer columns
    assert pd.isna(data.loc["pissa", "average"]) and data.loc["pissa", "average.paper"] == 28.08
    # variants and other ranks are shown, without the paper's value (it is for rank 128, the reference selection)
    assert row(table2, "astra (Top)")[3] == "—" and row(table2, "astra (wikitext2)")[3] == "—"


def test_synthetic_rows_never_enter_a_paper_table(tables):
    shown = [r[0] for name, t in tables.items() if name.startswith("table") and "synthetic" not in name for r in t.rows]
    assert shown and not any("smollm2" in name for name in tables if name.startswith("table2_smollm2_135m") and "synthetic" not in name)
    synthetic = tables["table2_smollm2_135m_synthetic"]
    assert {r[0] for r in synthetic.rows} == {"lora", "astra"} and "SYNTHETIC" in synthetic.title
    assert all(cell == "—" for r in synthetic.rows for cell in r[3:5])  # no paper value, no Δ


def test_significance_marks_follow_the_bootstrap(tables):
    table2 = tables["table2_llama2_7b"]
    assert row(table2, "pissa", "128")[2].endswith("L+")  # 51.5 vs 41 on 200 items: clear
    assert "L" not in row(table2, "lora", "128")[2]  # never compared with itself
    data = tables["table2_llama2_7b"].data.set_index("method")
    assert data.loc["pissa", "gsm8k.vs_lora"] == pytest.approx(10.0)
    significance = tables["table2_llama2_7b_significance"]
    cell = next(r for r in significance.rows if r[0] == "pissa" and r[2] == "lora")[3]
    low, high = map(float, re.search(r"\[([+-][\d.]+), ([+-][\d.]+)\]", cell).groups())
    assert 0 < low < 10 < high


def test_table4_names_each_window_under_both_conventions(tables):
    table4 = tables["table4_llama2_7b"]
    assert [r[0] for r in table4.rows] == ["Random", "Top", "Upper Quartile (Q3)", "Medium", "Lower Quartile (Q1)", "Tail"]
    assert row(table4, "Top")[1] == "Tail"  # the paper's "Top" (code: smallest eigenvalues) is the spectrum's tail
    assert row(table4, "Tail")[1] == "Top" and row(table4, "Tail")[2].endswith("[3]")  # = Table 2's Astra runs
    assert row(table4, "Medium")[2] == "—" and row(table4, "Medium")[3] == "38.74"  # paper row kept without runs


def test_cost_tables_per_sweep_with_totals(tables, records):
    cost = tables["cost_table_math"]
    runs_in_sweep = [r for r in records if r.get("sweep") == "table_math"]
    assert len(cost.rows) == len(runs_in_sweep) + 1
    total = cost.rows[-1]
    assert total[0] == "total" and total[2] == f"{len(runs_in_sweep)} runs"
    assert float(total[14]) == pytest.approx(sum(r["cost"]["device_hours"] for r in runs_in_sweep), abs=1e-3)
    lora = next(r for r in cost.rows if r[2] == "lora" and r[3] == "128")
    assert lora[12].startswith("NVIDIA") and lora[13] == "4" and lora[15] == "61.5" and lora[5] == "1.54M"
    # the demo runs have no sweep: their own table
    assert {r[1] for r in tables["cost_no_sweep"].rows[:-1]} == {"smollm2_135m"}


def test_cost_table_reads_records_without_a_cost_block(tmp_path):
    run_dir = write_run(tmp_path, "math", "llama2_7b", "lora", 128, 1, {"gsm8k": 40.0})
    record = runs.load_records(tmp_path)[0]
    record.pop("cost")
    (table,) = cost_tables([record])
    assert table.rows[0][12] == "—" and table.rows[0][14] == "1.000"  # device-hours from the wall time, one device
    assert run_dir.exists()


def test_report_is_one_self_contained_page(tmp_path, records):
    root = paper_like_runs(tmp_path / "runs")
    page = write_report(root, tmp_path / "site" / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Table 2 (math and code) — llama2_7b" in page
    assert "data:image/png;base64," in page  # figures embedded
    assert not re.search(r"""(src|href)=['"]https?://""", page)  # nothing fetched from the network
    assert "subspace=smallest" in page and "source=wikitext2" in page  # the fidelity options each run used
    assert "Cost — sweep table_math" in page
