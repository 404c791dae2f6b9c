"""`make tables` from fixture run records: mean ± std over seeds, parameters, data sources, paper numbers."""

import json

import pandas as pd
import pytest

from astra_repro import runs
from astra_repro.tables import write_tables


def fake_record(root, method, seed, acc, model="llama2_7b", source="local", params=319_815_680, label=None):
    folder = root / "math" / f"{method}_{model}_r128_s{seed}_abcd{seed}"
    runs.atomic_write_json(folder / "metrics.json", {
        "task": "math", "model": model, "method": method, "method_label": label or method, "rank": 128, "seed": seed,
        "n_trainable_params": params, "data": {"data_source": source},
        "eval_data": {"gsm8k": {"data_source": source}},
        "metrics": {"gsm8k": {"accuracy": acc, "accuracy_math_verify": acc - 1}},
    })


def test_tables_aggregate_seeds_and_show_paper_numbers(tmp_path):
    root = tmp_path / "runs"
    fake_record(root, "lora", 1, 40.0)
    fake_record(root, "lora", 2, 42.0)
    fake_record(root, "astra", 1, 55.0, label="astra (Tail)")
    paths = write_tables(root, tmp_path / "tables")
    md = (tmp_path / "tables" / "math_llama2_7b.md").read_text()
    assert "| lora | 128 | 2 | 319.82M | 41.00 ± 1.41 | 41.40 |" in md  # mean ± sample std, paper's Table 2 value
    assert "| astra (Tail) | 128 | 1 | 319.82M | 55.00 | 55.19 |" in md
    assert "local / local" in md
    csv = pd.read_csv(tmp_path / "tables" / "math_llama2_7b.csv")
    assert csv.set_index("method").loc["lora", "gsm8k.accuracy"] == 41.0
    # no logs -> no training curves; Table 2's layout (+ its significance table, Table 4, the cost) beside the per-task table
    names = [p.name for p in paths]
    assert names[:2] == ["math_llama2_7b.md", "math_llama2_7b.csv"]
    assert not [n for n in names if n.startswith("fig1") or n.endswith("_training.png")]  # curves need logs
    for stem in ("table2_llama2_7b", "table4_llama2_7b", "cost_no_sweep"):  # no predictions: no significance table
        assert {f"{stem}.md", f"{stem}.csv", f"{stem}.tex"} <= set(names)


def test_tables_flag_synthetic_data_and_list_paper_reference_for_other_models(tmp_path):
    root = tmp_path / "runs"
    fake_record(root, "lora", 42, 30.0, model="smollm2_135m", source="synthetic", params=4_884_480)
    write_tables(root, tmp_path / "tables")
    md = (tmp_path / "tables" / "math_smollm2_135m.md").read_text()
    assert "synthetic / synthetic" in md
    assert "measure the pipeline, not the paper's benchmark" in md
    assert "The paper reports this task for llama2_7b, llama3_8b only" in md
    assert "| llama2_7b | astra | 55.19 |" in md


def test_tables_with_no_runs_says_what_to_do(tmp_path, capsys):
    assert write_tables(tmp_path / "empty", tmp_path / "tables") == []
    assert "make demo" in capsys.readouterr().out


def test_training_curves_figure_from_logs(tmp_path):
    root = tmp_path / "runs"
    for method, seed, scale in [("lora", 1, 1.0), ("lora", 2, 5.0), ("astra", 1, 0.5)]:
        fake_record(root, method, seed, 40.0)
        log = root / "math" / f"{method}_llama2_7b_r128_s{seed}_abcd{seed}" / "train_log.jsonl"
        log.write_text("".join(json.dumps({"step": s, "loss": scale / s, "grad_norm": scale}) + "\n" for s in range(1, 6)))
    paths = write_tables(root, tmp_path / "tables", tmp_path / "figures")
    figure = tmp_path / "figures" / "math_llama2_7b_training.png"
    assert figure in paths and figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 10_000

    from astra_repro.report.figures import read_train_log

    assert [r["loss"] for r in read_train_log(log.parent)][:2] == [0.5, 0.25]


def fake_code_record(root, method, seed, he, he_plus, mbpp, mbpp_plus, model="llama2_7b", source="local"):
    folder = root / "code" / f"{method}_{model}_r128_s{seed}_c0de{seed}"
    runs.atomic_write_json(folder / "metrics.json", {
        "task": "code", "model": model, "method": method, "method_label": method, "rank": 128, "seed": seed,
        "n_trainable_params": 319_815_680, "data": {"data_source": source},
        "eval_data": {"humaneval": {"data_source": "local", "primary_metric": "pass@1"},
                      "mbpp": {"data_source": "local", "primary_metric": "pass@1"}},
        "metrics": {"humaneval": {"pass@1": he, "pass@1_plus": he_plus}, "mbpp": {"pass@1": mbpp, "pass@1_plus": mbpp_plus}},
    })


def test_table2_joins_math_and_code_runs_with_paper_numbers_and_average(tmp_path):
    root = tmp_path / "runs"
    fake_record(root, "astra", 1, 55.0)
    fake_record(root, "astra", 2, 57.0)
    runs.atomic_write_json(root / "math" / "astra_llama2_7b_r128_s1_abcd1" / "metrics.json", {
        "task": "math", "model": "llama2_7b", "method": "astra", "method_label": "astra", "rank": 128, "seed": 1,
        "data": {"data_source": "local"}, "eval_data": {"gsm8k": {"data_source": "local"}, "math": {"data_source": "local"}},
        "metrics": {"gsm8k": {"accuracy": 55.0}, "math": {"accuracy": 9.0}},
    })
    fake_code_record(root, "astra", 1, 25.0, 23.0, 38.0, 31.0)
    fake_record(root, "lora", 1, 40.0)  # no code runs, no MATH: its Avg stays empty
    write_tables(root, tmp_path / "tables")
    md = (tmp_path / "tables" / "table2_llama2_7b.md").read_text()
    # GSM8K mean of 55 and 57 [2 seeds], MATH 9, code cells, and Avg over all six, each with the paper's value and Δ
    assert ("| astra | 128 | 56.00 ± 1.41 [2] | 55.19 | +0.81 | 9.00 [1] | 8.98 | +0.02 | 25.00 [1] | 25.00 | +0.00 | "
            "23.00 [1] | 23.20 | −0.20 | 38.00 [1] | 38.40 | −0.40 | 31.00 [1] | 31.20 | −0.20 | 30.33 | 30.33 | +0.00 |") in md
    lora_row = next(line for line in md.splitlines() if line.startswith("| lora |"))
    assert lora_row.startswith("| lora | 128 | 40.00 [1] | 41.40 | −1.40 | — | 5.42 | — |")
    assert lora_row.endswith("| — | 25.17 | — |")
    # the paper's other methods stay, without runs; nothing is dropped
    assert "| milora (no runs) | 128 | — | 39.12 | — |" in md and "| fft (no runs) | full |" in md
    csv = pd.read_csv(tmp_path / "tables" / "table2_llama2_7b.csv").set_index("method")
    assert csv.loc["astra", "humaneval_plus"] == 23.0 and csv.loc["astra", "gsm8k.seeds"] == 2
    assert csv.loc["astra", "gsm8k.delta"] == pytest.approx(0.81) and csv.loc["astra", "gsm8k.paper"] == 55.19
    tex = (tmp_path / "tables" / "table2_llama2_7b.tex").read_text()
    assert "\\toprule" in tex and "\\multicolumn{3}{c}{GSM8K}" in tex and "56.00 $\\pm$ 1.41 [2] & 55.19 & +0.81" in tex
    code_md = (tmp_path / "tables" / "code_llama2_7b.md").read_text()
    assert "humaneval pass@1" in code_md and "| astra | 128 | 1 | 319.82M | 25.00 | 25.00 |" in code_md


def test_table2_marks_rows_from_synthetic_data(tmp_path):
    root = tmp_path / "runs"
    fake_code_record(root, "lora", 1, 5.0, None, 0.0, None, model="smollm2_135m", source="synthetic")
    write_tables(root, tmp_path / "tables")
    assert not (tmp_path / "tables" / "table2_smollm2_135m.md").exists()  # never mixed into a paper table
    md = (tmp_path / "tables" / "table2_smollm2_135m_synthetic.md").read_text()
    assert "| lora | 128 | — | — | — | — | — | — | 5.00 [1] † | — | — | — | — | — | 0.00 [1] † | — | — |" in md
    assert "SYNTHETIC data" in md and "paper values are not shown" in md
    assert "† synthetic data: a run in the cell trained or was scored on the built-in synthetic data" in md
    assert "Δ n/c" not in md  # no Δ column to explain: a synthetic table shows no paper values


COMMONSENSE = ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "siqa")


def fake_commonsense_record(root, method, seed, accs: dict, model="llama2_7b"):
    folder = root / "commonsense" / f"{method}_{model}_r128_s{seed}_c5{seed}"
    runs.atomic_write_json(folder / "metrics.json", {
        "task": "commonsense", "model": model, "method": method, "method_label": method, "rank": 128, "seed": seed,
        "n_trainable_params": 319_815_680, "data": {"data_source": "local"},
        "eval_data": {e: {"data_source": "local", "primary_metric": "acc"} for e in accs},
        "metrics": {e: {"acc": a, "acc_norm": a + 1} for e, a in accs.items()},
    })


def test_table3_averages_the_seven_benchmarks_and_keeps_siqa_outside(tmp_path):
    root = tmp_path / "runs"
    accs = dict(zip(COMMONSENSE, (80.0, 78.0, 57.0, 71.0, 79.0, 48.0, 34.0, 99.0)))
    fake_commonsense_record(root, "astra", 1, accs)
    fake_commonsense_record(root, "astra", 2, {**accs, "boolq": 82.0})
    fake_commonsense_record(root, "lora", 1, {e: 50.0 for e in COMMONSENSE if e != "hellaswag"})  # hellaswag missing
    write_tables(root, tmp_path / "tables")
    md = (tmp_path / "tables" / "table3_llama2_7b.md").read_text()
    assert ("| method | rank | BoolQ | paper | Δ | PIQA | paper | Δ | HellaSwag | paper | Δ | WinoGrande | paper | Δ | "
            "ARC-e | paper | Δ | ARC-c | paper | Δ | OBQA | paper | Δ | Avg | paper | Δ | SIQA |") in md
    # BoolQ over two seeds, the paper's values, Avg of the seven means (81+78+57+71+79+48+34)/7 = 64.00, SIQA after Avg
    assert ("| astra | 128 | 81.00 ± 1.41 [2] | 83.76 | −2.76 | 78.00 ± 0.00 [2] | 78.51 | −0.51 | 57.00 ± 0.00 [2] | "
            "57.28 | −0.28 | 71.00 ± 0.00 [2] | 71.74 | −0.74 | 79.00 ± 0.00 [2] | 79.63 | −0.63 | 48.00 ± 0.00 [2] | 48.72 "
            "| −0.72 | 34.00 ± 0.00 [2] | 34.20 | −0.20 | 64.00 | 64.83 | −0.83 | 99.00 ± 0.00 [2] |") in md
    lora_row = next(line for line in md.splitlines() if line.startswith("| lora |"))
    assert "| — | 57.30 | — |" in lora_row and lora_row.endswith("| — | 63.01 | — | 50.00 [1] |")  # no HellaSwag: no Avg
    assert "SIQA: not in the paper's table, outside Avg." in md
    csv = pd.read_csv(tmp_path / "tables" / "table3_llama2_7b.csv").set_index("method")
    assert csv.loc["astra", "siqa"] == 99.0 and csv.loc["astra", "average"] == 64.0
    per_task = (tmp_path / "tables" / "commonsense_llama2_7b.md").read_text()
    assert "boolq acc" in per_task and "acc_norm" in per_task


def fake_glue_record(root, method, seed, glue_task, acc, batch, model="t5_base"):
    folder = root / "glue" / f"{method}_{model}_{glue_task}_b{batch}_s{seed}"
    runs.atomic_write_json(folder / "metrics.json", {
        "task": "glue", "task_variant": glue_task, "model": model, "method": method, "method_label": method, "rank": 8,
        "seed": seed, "global_batch_size": batch, "n_trainable_params": 3_244_032, "data": {"data_source": "local"},
        "eval_data": {"glue_dev": {"data_source": "local", "glue_task": glue_task, "primary_metric": "accuracy"}},
        "metrics": {"glue_dev": {"accuracy": acc, "accuracy_generated": acc - 1}},
    })


def test_glue_runs_fill_table1_or_table9_by_batch_size_one_column_per_glue_task(tmp_path):
    root = tmp_path / "runs"
    for seed, acc in enumerate((87.0, 88.0, 89.0)):
        fake_glue_record(root, "astra", seed, "mrpc", acc, 128)
    fake_glue_record(root, "astra", 0, "sst2", 96.0, 128)
    fake_glue_record(root, "astra", 0, "mrpc", 92.0, 32)
    write_tables(root, tmp_path / "tables")
    table1 = (tmp_path / "tables" / "table1_t5_base.md").read_text()
    assert "| method | rank | MNLI | paper | Δ | SST-2 | paper | Δ | QNLI | paper | Δ | CoLA | paper | Δ | MRPC |" in table1
    # MRPC: three seeds of batch 128 only (the batch-32 run goes to Table 9), SST-2 its own column
    assert ("| astra | 8 | — | 87.09 | — | 96.00 [1] | 96.45 | −0.45 | — | 98.83 | — | — | 87.87 | — | 88.00 ± 1.00 [3] | "
            "88.36 | −0.36 | — | 91.72 | — |") in table1
    table9 = (tmp_path / "tables" / "table9_t5_base.md").read_text()
    assert "| astra | 8 | — | 86.94 | — | — | 96.56 | — | — | 98.66 | — | — | 90.08 | — | 92.00 [1] | 92.65 | −0.65 |" in table9
    # per-task tables keep GLUE tasks apart, and runs of different batch sizes apart
    assert (tmp_path / "tables" / "glue_sst2_t5_base.md").exists()
    mrpc = (tmp_path / "tables" / "glue_mrpc_t5_base.md").read_text()
    assert "| astra (batch 128) | 8 | 3 |" in mrpc and "| astra (batch 32) | 8 | 1 |" in mrpc


def test_per_task_tables_mark_scores_off_the_papers_protocol(tmp_path):
    root = tmp_path / "runs"
    fake_code_record(root, "lora", 1, 22.0, 20.0, 35.0, 30.0)
    fake_code_record(root, "astra", 1, 25.0, 23.0, 38.0, 31.0)
    path = root / "code" / "astra_llama2_7b_r128_s1_c0de1" / "metrics.json"
    record = json.loads(path.read_text())
    record["eval_data"]["humaneval"]["prompt_source"] = "constructed"
    record["global_batch_size"] = 64
    runs.atomic_write_json(path, record)
    write_tables(root, tmp_path / "tables")
    md = (tmp_path / "tables" / "code_llama2_7b.md").read_text()
    assert "| astra | 128 | 1 | 319.82M | 25.00 §¶ | 25.00 | 23.00 | 38.00 ¶ | 38.40 |" in md
    assert "| lora | 128 | 1 | 319.82M | 22.00 | 22.00 | 20.00 | 35.00 | 34.90 |" in md  # its own protocol: no mark
    assert "§ constructed code prompt (record: prompt_source=constructed)" in md and ": humaneval." in md
    assert "¶ global batch differs from the paper's (record: global_batch_size): global batch 64 (paper: 128)." in md
    assert "n/c" not in md  # the per-task tables have no Δ column
    csv = pd.read_csv(tmp_path / "tables" / "code_llama2_7b.csv").set_index("method")
    assert csv.loc["astra", "humaneval.protocol"] == "§¶" and pd.isna(csv.loc["lora", "humaneval.protocol"])
    table2 = (tmp_path / "tables" / "table2_llama2_7b.md").read_text()
    astra = next(line for line in table2.splitlines() if line.startswith("| astra |"))
    assert "| 25.00 [1] §¶ | 25.00 | n/c |" in astra and "| 38.00 [1] ¶ | 38.40 | n/c |" in astra


def test_runs_at_different_learning_rates_are_different_rows_not_seeds():
    import pandas as pd

    from astra_repro.tables import summarize

    frame = pd.DataFrame([
        {"task": "math", "model": "m", "method": "astra (Top)", "method_key": "astra", "rank": 16, "seed": 42,
         "n_trainable_params": 1, "train_data": "synthetic", "batch": 4, "lr": lr, "gsm8k.accuracy": acc,
         "gsm8k.data": "synthetic", "gsm8k.protocol": ""}
        for lr, acc in ((2e-4, 6.0), (1e-3, 20.0))
    ] + [{"task": "math", "model": "m", "method": "lora", "method_key": "lora", "rank": 16, "seed": s,
          "n_trainable_params": 1, "train_data": "synthetic", "batch": 4, "lr": 1e-3, "gsm8k.accuracy": 20.0,
          "gsm8k.data": "synthetic", "gsm8k.protocol": ""} for s in (1, 2)])
    summary, _ = summarize(frame)
    rows = {row["method"]: row for row in summary.to_dict("records")}
    assert set(rows) == {"astra (Top) @0.0002", "astra (Top) @0.001", "lora"}
    assert rows["astra (Top) @0.001"]["seeds"] == 1 and rows["astra (Top) @0.001"]["gsm8k.accuracy"] == "20.00"
    assert rows["lora"]["seeds"] == 2  # one rate: seeds of one row, no @
