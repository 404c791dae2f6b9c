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
from run_fixtures import llm_adapters_info, paper_like_runs, write_run

from astra_repro import runs
from astra_repro.report import protocol
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


# ------------------------------------------------------------------------------------------------- protocol marks
def tables_of(root: Path) -> dict:
    return {t.name: t for t in paper_tables(runs.load_records(root))}


def legend_marks(table) -> set[str]:
    return {note[0] for note in table.notes if note[:1] in protocol.ORDER}


CLEAN_MATH = {"gsm8k": 42.0, "math": 6.0}


def test_a_clean_cell_keeps_its_delta_and_the_table_has_no_protocol_legend(tmp_path):
    write_run(tmp_path, "math", "llama2_7b", "lora", 128, 1, CLEAN_MATH)
    table = tables_of(tmp_path)["table2_llama2_7b"]
    lora = row(table, "lora", "128")
    assert lora[2:5] == ["42.00 [1]", "41.40", "+0.60"] and lora[5:8] == ["6.00 [1]", "5.42", "+0.58"]
    assert not legend_marks(table) and protocol.DELTA_RULE not in table.notes
    assert not any(protocol.NOT_COMPARABLE in cell for r in table.rows for cell in r)
    data = table.data.set_index("method").loc["lora"]
    assert data["gsm8k.delta"] == pytest.approx(0.6) and data["gsm8k.protocol"] == ""


# case -> (write_run arguments of a LoRA rank-128 run, its table, the marked column, the mark, the legend's detail)
DEPARTURES = {
    "BoolQ without its passage": (
        dict(task="commonsense", model="llama3_8b", scores={"boolq": 80.0, "piqa": 79.0},
             eval_info=llm_adapters_info(["boolq", "piqa"], n_available=100)),
        "table3_llama3_8b", "BoolQ", protocol.PROMPT, "boolq: the LLM-Adapters file has no passage"),
    "HellaSwag without capitalize": (
        dict(task="commonsense", model="llama3_8b", scores={"hellaswag": 60.0, "piqa": 79.0},
             eval_info=llm_adapters_info(["hellaswag", "piqa"], n_available=100)),
        "table3_llama3_8b", "HellaSwag", protocol.PROMPT, "hellaswag: LLM-Adapters stores ctx = ctx_a + ' ' + ctx_b"),
    "constructed code prompt": (
        dict(task="code", model="llama2_7b", scores={"humaneval": 24.0, "mbpp": 36.0},
             eval_info={"humaneval": {"prompt_source": "constructed"}, "mbpp": {"prompt_source": "pissa_file"}}),
        "table2_llama2_7b", "HumanEval", protocol.CONSTRUCTED, "humaneval"),
    "global batch 64": (
        dict(task="math", model="llama2_7b", scores=CLEAN_MATH, global_batch_size=64),
        "table2_llama2_7b", "GSM8K", protocol.BATCH, "global batch 64 (paper: 128)"),
    "part of the test set": (
        dict(task="commonsense", model="llama3_8b", scores={"boolq": 80.0, "piqa": 79.0},
             eval_info={"piqa": {"n_available": 1838}, "boolq": {"n_available": 100}}),
        "table3_llama3_8b", "PIQA", protocol.TEST_SET, "piqa: 100 of 1838 items scored"),
    "MATH-500": (
        dict(task="math", model="llama2_7b", scores=CLEAN_MATH, eval_info={"math": {"format": "math500"}}),
        "table2_llama2_7b", "MATH", protocol.TEST_SET, "math: MATH-500"),
    "demo recipe": (
        dict(task="math", model="llama2_7b", scores=CLEAN_MATH, recipe="demo"),
        "table2_llama2_7b", "GSM8K", protocol.TRAINING, "recipe demo (paper: paper)"),
}
RUN_WIDE = {"global batch 64", "demo recipe"}  # these mark every cell of the run


@pytest.mark.parametrize("case", sorted(DEPARTURES))
def test_a_cell_off_the_papers_protocol_is_marked_with_a_legend_line_and_no_delta(tmp_path, case):
    spec, name, header, mark, detail = DEPARTURES[case]
    spec = dict(spec)
    write_run(tmp_path, spec.pop("task"), spec.pop("model"), "lora", 128, 1, spec.pop("scores"), n_items=100, **spec)
    table = tables_of(tmp_path)[name]
    lora, at = row(table, "lora", "128"), table.columns.index(header)
    assert lora[at] == f"{lora[at].split(' [1] ')[0]} [1] {mark}"  # the mark right after the value
    assert lora[at + 1] not in ("—", "") and lora[at + 2] == protocol.NOT_COMPARABLE  # paper shown, no Δ
    legend = [note for note in table.notes if note.startswith(mark + " ")]
    assert len(legend) == 1 and detail in legend[0] and protocol.MEANING[mark] in legend[0]
    assert legend_marks(table) == {mark} and protocol.DELTA_RULE in table.notes  # only the marks used
    key = {h: c for c, h in TABLE_HEADERS.items()}[header]
    data = table.data.set_index("method").loc["lora"]
    assert data[f"{key}.protocol"] == mark and pd.isna(data[f"{key}.delta"]) and not pd.isna(data[f"{key}.paper"])
    # the run's other benchmark followed the paper's protocol: it keeps its Δ
    others = [h for c, h in TABLE_HEADERS.items() if h != header and h in table.columns
              and lora[table.columns.index(h)] != "—"]
    assert len(others) == 1
    other = lora[table.columns.index(others[0]) + 2]
    assert other == protocol.NOT_COMPARABLE if case in RUN_WIDE else re.fullmatch(r"[+−]\d+\.\d\d", other), other
    for text in (table.markdown(), table.latex()):
        assert protocol.NOT_COMPARABLE in text and legend[0].split(":")[0] in text


TABLE_HEADERS = {"gsm8k": "GSM8K", "math": "MATH", "humaneval": "HumanEval", "mbpp": "MBPP", "boolq": "BoolQ",
                 "piqa": "PIQA", "hellaswag": "HellaSwag"}


def test_an_average_over_a_marked_cell_is_marked_and_has_no_delta(tmp_path):
    scores = {name: 75.0 for name in ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge",
                                      "openbookqa")}
    write_run(tmp_path, "commonsense", "llama3_8b", "lora", 128, 1, scores, n_items=100,
              eval_info=llm_adapters_info(scores, n_available=100))
    write_run(tmp_path, "math", "llama2_7b", "lora", 128, 1, CLEAN_MATH, global_batch_size=64)
    write_run(tmp_path, "code", "llama2_7b", "lora", 128, 1, {"humaneval": 22.0, "mbpp": 35.0}, n_items=100,
              eval_info={"humaneval": {"prompt_source": "constructed"}, "mbpp": {"prompt_source": "constructed"}})
    tables = tables_of(tmp_path)
    table3 = tables["table3_llama3_8b"]
    lora = row(table3, "lora", "128")
    avg = table3.columns.index("Avg")
    assert lora[avg:avg + 3] == ["75.00 ‡", "67.06", protocol.NOT_COMPARABLE]
    assert lora[table3.columns.index("PIQA") + 2] == "−4.76"  # a clean component keeps its own Δ
    table2 = tables["table2_llama2_7b"]
    lora = row(table2, "lora", "128")
    avg = table2.columns.index("Avg")
    assert lora[avg].endswith(" §¶") and lora[avg + 2] == protocol.NOT_COMPARABLE  # both kinds, in a fixed order
    assert legend_marks(table2) == {protocol.CONSTRUCTED, protocol.BATCH}
    data = table2.data.set_index("method").loc["lora"]
    assert data["average.protocol"] == "§¶" and pd.isna(data["average.delta"]) and data["average.paper"] == 25.17


def test_a_synthetic_evaluation_set_never_fills_a_paper_table_cell(tmp_path):
    write_run(tmp_path, "math", "llama2_7b", "lora", 128, 1, CLEAN_MATH, eval_info={"math": {"data_source": "synthetic"}})
    write_run(tmp_path, "math", "llama2_7b", "astra", 128, 1, {"gsm8k": 50.0, "math": 8.0})
    tables = tables_of(tmp_path)
    real = tables["table2_llama2_7b"]
    assert row(real, "lora (no runs)", "128")[2] == "—"  # its real GSM8K does not carry the run in either
    synthetic = tables["table2_llama2_7b_synthetic"]
    lora = row(synthetic, "lora", "128")
    assert lora[2] == "42.00 [1]" and lora[5] == "6.00 [1] †" and lora[7] == "—"
    assert [n for n in synthetic.notes if n.startswith("† ")] == [
        "† " + protocol.MEANING[protocol.SYNTHETIC] + ": math test set."]
    # the marks do not depend on the routing: a synthetic evaluation set is marked wherever a cell shows it
    record = next(r for r in runs.load_records(tmp_path) if r["method"] == "lora")
    assert protocol.record_departures(record, "math", protocol.NLG) == {protocol.SYNTHETIC: {"math test set"}}
    assert protocol.record_departures(record, "gsm8k", protocol.NLG) == {}


def test_glue_tables_check_their_own_batch_recipe_and_split(tmp_path):
    write_run(tmp_path, "glue", "t5_base", "lora", 8, 1, {"glue_dev": 85.0}, glue_task="sst2", n_items=100,
              global_batch_size=32, recipe="demo", eval_info={"glue_dev": {"n_examples": 872}})
    table9 = tables_of(tmp_path)["table9_t5_base"]
    cell = row(table9, "lora", "8")[table9.columns.index("SST-2")]
    assert cell == "85.00 [1] ‖°" and row(table9, "lora", "8")[table9.columns.index("SST-2") + 2] == "n/c"
    assert any("glue_dev: 100 of 872 items scored" in n for n in table9.notes)
    assert any("recipe demo (paper: paper)" in n for n in table9.notes)  # GLUE's protocol is the paper scale
    record = runs.load_records(tmp_path)[0]
    record["data"].update(n_train=256, n_pool=67349)
    assert "trained on 256 examples (paper: the whole training split)" in protocol.record_departures(
        record, "glue_dev", protocol.GLUE)[protocol.TRAINING]
    record["data"].update(n_train=400, n_pool=395000)
    assert protocol.record_departures(record, "gsm8k", protocol.NLG)[protocol.TRAINING] >= {
        "trained on 400 examples (paper: the first 100000)"}


def test_protocol_and_significance_marks_side_by_side_in_the_sweep(tables):
    fft = row(tables["table2_llama2_7b"], "fft", "full")
    assert fft[8] == "32.32 [1] § L+" and fft[10] == "n/c"  # constructed prompt, and still significant vs LoRA
    assert fft[2] == "58.00 [1] L+ A+" and fft[4] == "−0.76"  # its math runs used the paper's protocol
    pissa = row(tables["table2_llama2_7b"], "pissa", "128")
    assert pissa[2] == "51.00 [1] ¶ L+" and pissa[4] == "n/c"
    table3 = tables["table3_llama3_8b"]
    assert row(table3, "lora", "32")[2] == "70.00 [1] ‡" and row(table3, "lora", "32")[5] == "71.00 [1]"
    assert legend_marks(tables["table2_llama2_7b"]) == {"§", "¶"} and legend_marks(table3) == {"‡"}
    assert legend_marks(tables["table1_t5_base"]) == set() and legend_marks(tables["table9_t5_base"]) == set()
    assert legend_marks(tables["table2_smollm2_135m_synthetic"]) == {"†", "°"}


def test_marks_render_in_latex():
    from astra_repro.report.display import latex_escape

    for mark in protocol.ORDER:
        escaped = latex_escape(mark)
        assert escaped != mark and escaped.startswith("$^") and escaped.endswith("$")


def test_the_copied_reference_values_match_their_sources():
    from astra_repro.evaluators import code_data
    from astra_repro.evaluators.lm_eval_tasks import specs

    assert protocol.SAME_PROMPT == specs.SAME
    differing = {name for name, b in specs.BENCHMARKS.items() if not b.local_difference.startswith(protocol.SAME_PROMPT)}
    assert differing == {"boolq", "hellaswag"}  # the two the issue names; a new one would be marked too
    for dataset, release in code_data.RELEASES.items():
        assert f"{release.name} {release.version}" in protocol.PAPER_CODE_RELEASES[dataset]
    assert code_data.ORIGINAL_HUMANEVAL in protocol.PAPER_CODE_RELEASES["humaneval"]


def test_the_report_page_shows_the_marks_and_their_legend(tmp_path):
    write_run(tmp_path / "runs", "math", "llama2_7b", "lora", 128, 1, CLEAN_MATH, global_batch_size=64)
    page = write_report(tmp_path / "runs", tmp_path / "report.html").read_text()
    assert "42.00 [1] ¶" in page and ">n/c<" in page
    assert "¶ global batch differs from the paper&#x27;s (record: global_batch_size): global batch 64 (paper: 128)." in page
    assert "n/c" in page.split("<nav>")[0]  # the page's opening lines explain the marks


def test_making_tables_does_not_import_the_training_stack():
    import subprocess
    import sys

    code = ("import sys, astra_repro.tables, astra_repro.report.page, astra_repro.report.protocol; "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'astra_repro.train', 'astra_repro.evaluators') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_difference_every_cell_shares_is_a_note_not_a_mark(tmp_path):
    scores = {"boolq": 80.0, "piqa": 79.0}
    info = {e: {"lm_eval_version": "0.4.13", "n_available": 100} for e in scores}
    write_run(tmp_path, "commonsense", "llama3_8b", "lora", 128, 1, scores, n_items=100, eval_info=info)
    table = tables_of(tmp_path)["table3_llama3_8b"]
    assert row(table, "lora", "128")[2:5] == ["80.00 [1]", "85.02", "−5.02"] and not legend_marks(table)
    assert any(n.startswith("Scored by lm-eval 0.4.13 (record: lm_eval_version); the paper cites 0.4.3") for n in table.notes)


def test_math_graded_with_the_latex_parser_is_marked():
    record = {"task": "math", "eval_data": {"math": {"sympy_parse_latex": True}, "gsm8k": {"sympy_parse_latex": False}}}
    assert set(protocol.record_departures(record, "math", protocol.NLG)) == {protocol.TEST_SET}
    assert protocol.record_departures(record, "gsm8k", protocol.NLG) == {}


def test_glue_runs_at_a_batch_neither_table_selects_are_named(tmp_path):
    write_run(tmp_path, "glue", "t5_base", "lora", 8, 1, {"glue_dev": 85.0}, glue_task="sst2", n_items=100)
    write_run(tmp_path, "glue", "t5_base", "lora", 8, 1, {"glue_dev": 84.0}, glue_task="sst2", n_items=100,
              global_batch_size=512)
    table1 = tables_of(tmp_path)["table1_t5_base"]
    assert row(table1, "lora", "8")[table1.columns.index("SST-2")] == "85.00 [1]"
    assert "1 run(s) at global batch 512 are in neither table1 (128) / table9 (32): the per-task tables show them." \
        in table1.notes


def test_runs_at_different_learning_rates_are_separate_groups():
    from astra_repro.report.paper_tables import group_records

    records = [{"method": "astra", "method_label": "astra (Top)", "rank": 16, "learning_rate": lr, "seed": 42}
               for lr in (2e-4, 1e-3)] + [{"method": "lora", "rank": 16, "learning_rate": 1e-3, "seed": s} for s in (1, 2)]
    groups = {g.label: len(g.records) for g in group_records(records)}
    assert groups == {"astra (Top) @0.0002": 1, "astra (Top) @0.001": 1, "lora": 2}


def test_glue_records_from_before_the_flat_configs_follow_the_protocol(tmp_path):
    """Issue 21: records written before the flat configs name T5-base's GLUE scale `glue`; new ones `paper`. Both are
    the GLUE protocol (no ° mark); `demo` is not."""
    for seed, recipe in enumerate(("glue", "paper", "demo")):
        write_run(tmp_path, "glue", "t5_base", "lora", 8, seed, {"glue_dev": 85.0}, glue_task="sst2", recipe=recipe)
    marks = {r["recipe"]: protocol.record_departures(r, "glue_dev", protocol.GLUE) for r in runs.load_records(tmp_path)}
    assert marks["glue"] == {} and marks["paper"] == {}
    assert marks["demo"] == {protocol.TRAINING: {"recipe demo (paper: paper)"}}
