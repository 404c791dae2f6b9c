"""`make tables` from fixture run records: mean ± std over seeds, parameters, data sources, paper numbers."""

import json

import pandas as pd

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
    assert [p.name for p in paths] == ["math_llama2_7b.md", "math_llama2_7b.csv"]  # no logs -> no figure


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
