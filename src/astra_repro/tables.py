"""`make tables`: the paper's tables and figures from run records, side by side with the paper's numbers.

Reads only `results/runs/**/` (metrics.json, predictions.jsonl, train_log.jsonl) and `results/paper/*.csv`; never
re-runs anything. Writes to results/tables (Markdown, CSV, LaTeX) and results/figures (PNG, PDF):
- one table per (task, model): a row per method (and rank), mean ± std over seeds, trainable parameters, and where
  the training and evaluation data came from (a number from synthetic data must never pass for a paper number);
  a score whose runs depart from the paper's protocol carries the mark of `report/protocol.py` (†, ‡, ...), with a
  legend under the table;
- the paper's Tables 1, 2, 3, 4 and 9 per model, with the paper's value and Δ per cell, significance marks from a
  paired bootstrap, and a table of the differences with their intervals (`report/paper_tables.py`);
- the cost of the runs, one table per sweep (`report/cost.py`);
- every committed study (results/studies/<name>/): best-rate, paper-rate, contrast and grid tables and a
  score/forgetting-vs-learning-rate figure (`report/study.py`);
- the paper's figures (`report/figures.py`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from astra_repro import runs
from astra_repro.paths import PROJECT_ROOT, results_dir
from astra_repro.report import protocol

PAPER_DIR = PROJECT_ROOT / "results" / "paper"
DEFAULT_PRIMARY_METRIC = "accuracy"  # an evaluator that neither its records nor the registry declare


def table_task(record: dict) -> str:
    """The per-task table a record belongs to: a task family's members get tables of their own (glue_sst2, ...)."""
    return record["task"] + (f"_{record['task_variant']}" if record.get("task_variant") else "")


def records_frame(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        row = {
            "task": table_task(r), "model": r["model"], "method": r.get("method_label", r["method"]), "method_key": r["method"],
            "rank": r.get("rank", 0), "seed": r["seed"], "n_trainable_params": r.get("n_trainable_params"),
            "train_data": r.get("data", {}).get("data_source", "?"), "batch": r.get("global_batch_size"),
            "lr": r.get("learning_rate"),
        }
        for evaluator, values in r.get("metrics", {}).items():
            for metric, value in values.items():
                row[f"{evaluator}.{metric}"] = float("nan") if value is None else value
            row[f"{evaluator}.data"] = r.get("eval_data", {}).get(evaluator, {}).get("data_source", "?")
            row[f"{evaluator}.protocol"] = protocol.marks(
                protocol.record_departures(r, evaluator, protocol.task_protocol(r.get("task"))))
        rows.append(row)
    return pd.DataFrame(rows)


def fmt_mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "—"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def fmt_params(n) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "—"
    n = float(n)
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{int(n):,}"


def label_learning_rates(frame: pd.DataFrame) -> pd.DataFrame:
    """Runs of one method and rank at different learning rates are different rows, never seeds of one row: their
    method names get `@<lr>` (the demo runs Astra's theorem selection at two rates)."""
    if "lr" not in frame or frame.empty:
        return frame
    rates = frame.groupby(["method", "rank"])["lr"].transform(lambda values: values.nunique(dropna=True))
    frame = frame.copy()
    several = (rates > 1) & frame["lr"].notna()
    frame.loc[several, "method"] = [f"{m} @{lr:g}" for m, lr in zip(frame.loc[several, "method"], frame.loc[several, "lr"])]
    return frame


def summarize(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """One row per (method, rank): mean ± std of every metric over seeds."""
    # Only this group's evaluators: the frame holds every task's columns, NaN where a record lacks them.
    metric_cols = [c for c in frame.columns if "." in c and not c.endswith((".data", ".protocol")) and frame[c].notna().any()]
    evaluators = sorted({c.split(".")[0] for c in metric_cols})
    frame = label_learning_rates(frame)
    out_rows = []
    for (method, rank), group in frame.groupby(["method", "rank"], sort=False):
        row = {"method": method, "method_key": group["method_key"].iloc[0], "rank": int(rank) if rank else "full",
               "seeds": len(group), "params": fmt_params(group["n_trainable_params"].iloc[0])}
        for col in metric_cols:
            row[col] = fmt_mean_std(group[col])
            row[col + "_mean"] = group[col].mean()
        for e in evaluators:  # the marks of any run of the group that has a score for e
            scored = group[group[[c for c in metric_cols if c.startswith(e + ".")]].notna().any(axis=1)]
            found = set("".join(scored.get(f"{e}.protocol", pd.Series(dtype=str)).dropna()))
            row[f"{e}.protocol"] = "".join(m for m in protocol.ORDER if m in found)
        row["data (train / eval)"] = " / ".join(
            [",".join(sorted(set(group["train_data"])))] + [",".join(sorted(set(group[f"{e}.data"].dropna()))) for e in evaluators]
        )
        out_rows.append(row)
    # The untrained model first, then methods by name: a stable order for diffs between table versions.
    out_rows.sort(key=lambda r: (r["method_key"] != "base", str(r["method"]), str(r["rank"])))
    return pd.DataFrame(out_rows), evaluators


def paper_reference(task: str, primary: dict[str, str]) -> tuple[pd.DataFrame | None, dict]:
    """The paper's table for this task and {evaluator: its column}: the paper-table layout columns
    (report/paper_tables.py) that hold an evaluator's primary metric on this task, so the two never disagree."""
    from astra_repro.report.paper_tables import PAPER_LAYOUTS

    for layout in PAPER_LAYOUTS:
        columns = {evaluator: column for column, (t, evaluator, metric, *match) in layout.columns.items()
                   if t == task and not match and primary.get(evaluator) == metric}
        if columns:
            return pd.read_csv(PAPER_DIR / layout.paper_csv), columns
    return None, {}


def primary_metrics(records: list[dict]) -> dict[str, str]:
    """evaluator -> its primary metric as it declares it (pass@1 for code, accuracy otherwise)."""
    from astra_repro.report.declarations import primary_metric

    found = {}
    for r in records:
        for evaluator in r.get("eval_data", {}):
            if evaluator not in found:
                found[evaluator] = primary_metric(r, evaluator, DEFAULT_PRIMARY_METRIC)
    return found


def render_table(task: str, model: str, frame: pd.DataFrame, primary: dict[str, str] | None = None,
                 records: list[dict] | None = None) -> tuple[str, pd.DataFrame]:
    """The per-task table (Markdown) and its numbers (CSV). `records` (the table's runs) give the protocol legend
    its details; without them it names only what each mark means."""
    if frame["batch"].nunique() > 1:  # e.g. Table 1 and Table 9 runs of one GLUE task: never average across them
        frame = frame.assign(method=frame["method"] + " (batch " + frame["batch"].astype("Int64").astype(str) + ")")
    summary, evaluators = summarize(frame)
    primary = {e: (primary or {}).get(e, DEFAULT_PRIMARY_METRIC) for e in evaluators}
    paper, paper_cols = paper_reference(task, primary)
    same_model = paper is not None and model in set(paper["model"])
    # Per evaluator: the primary metric, the paper's value when the paper has this model, then its other metrics.
    extra_cols = {
        e: [c for c in summary.columns if c.startswith(e + ".") and not c.endswith(("_mean", ".protocol"))
            and c != f"{e}.{primary[e]}"]
        for e in evaluators
    }
    headers = ["method", "rank", "seeds", "params"]
    for e in evaluators:
        headers.append(f"{e} {primary[e]}")
        if same_model and e in paper_cols:
            headers.append(f"{e} (paper)")
        headers += [f"{e} {c.split('.', 1)[1]}" for c in extra_cols[e]]
    headers.append("data (train / eval)")
    lines = [f"## {task} — {model}", "", "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    csv_rows = []
    for _, row in summary.iterrows():
        cells = [str(row["method"]), str(row["rank"]), str(row["seeds"]), row["params"]]
        csv_row = {"task": task, "model": model, "method": row["method"], "rank": row["rank"], "seeds": row["seeds"], "params": row["params"]}
        for e in evaluators:
            marks = row.get(f"{e}.protocol") or ""
            cells.append(row.get(f"{e}.{primary[e]}", "—") + (" " + marks if marks else ""))
            csv_row[f"{e}.{primary[e]}"] = row.get(f"{e}.{primary[e]}_mean")
            csv_row[f"{e}.protocol"] = marks
            if same_model and e in paper_cols:
                match = paper[(paper["model"] == model) & (paper["method"] == row["method_key"])]
                value = f"{match[paper_cols[e]].iloc[0]:.2f}" if len(match) else "—"
                cells.append(value)
                csv_row[f"{e}.paper"] = value
            for c in extra_cols[e]:
                cells.append(row[c])
                csv_row[c] = row.get(c + "_mean")
        cells.append(row["data (train / eval)"])
        csv_row["data"] = row["data (train / eval)"]
        lines.append("| " + " | ".join(cells) + " |")
        csv_rows.append(csv_row)
    lines.append("")
    legend = protocol_legend(summary, evaluators, records)
    if legend:
        lines += legend + [""]
    if paper is not None and not same_model:
        lines.append(f"The paper reports this task for {', '.join(sorted(set(paper['model'])))} only; its numbers, for reference:")
        lines.append("")
        cols = ["model", "method"] + [paper_cols[e] for e in evaluators if e in paper_cols]
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        for _, prow in paper[cols].iterrows():
            lines.append("| " + " | ".join(str(v) for v in prow.values) + " |")
        lines.append("")
    if frame["train_data"].eq("synthetic").any():
        lines.append("Rows trained on `synthetic` data measure the pipeline, not the paper's benchmark.")
        lines.append("")
    return "\n".join(lines), pd.DataFrame(csv_rows)


def protocol_legend(summary: pd.DataFrame, evaluators: list[str], records: list[dict] | None) -> list[str]:
    """One line per protocol mark shown in the table (report/protocol.py), with what differs when `records` are given."""
    shown = {m for e in evaluators if f"{e}.protocol" in summary for marks in summary[f"{e}.protocol"].dropna()
             for m in marks}
    if not shown:
        return []
    found = {m: set() for m in shown}
    for r in records or []:
        for e in evaluators:
            if (r.get("metrics") or {}).get(e):
                for m, details in protocol.record_departures(r, e, protocol.task_protocol(r.get("task"))).items():
                    found.setdefault(m, set()).update(details)
    return protocol.legend({m: d for m, d in found.items() if m in shown}, delta_rule=False)


def write_tables(runs_root: Path | None = None, out_dir: Path | None = None, figures_dir: Path | None = None) -> list[Path]:
    """Tables (markdown + csv) per (task, model) and a training-curve figure for each."""
    from astra_repro.report.cost import cost_tables
    from astra_repro.report.figures import paper_figures, training_curves
    from astra_repro.report.paper_tables import paper_tables

    from astra_repro.report.study import write_study_outputs

    records = runs.load_records(runs_root)
    out_dir = out_dir or results_dir() / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    # the committed studies (results/studies/<name>/) first: they need no run of one's own
    written, tables, _ = write_study_outputs(out_dir, figures_dir or results_dir() / "figures")
    for table in tables:
        print(table.markdown())
    if not records:
        print(f"no finished runs under {runs_root or results_dir() / 'runs'}; run `make demo` or `python -m astra_repro.train` first")
        return written
    frame = records_frame(records)
    primary = primary_metrics(records)
    for (task, model), group in frame.groupby(["task", "model"]):
        table_records = [r for r in records if table_task(r) == task and r["model"] == model]
        markdown, csv = render_table(task, model, group, primary, table_records)
        md_path, csv_path = out_dir / f"{task}_{model}.md", out_dir / f"{task}_{model}.csv"
        runs.atomic_write_text(md_path, markdown + "\n")
        runs.atomic_write_text(csv_path, csv.to_csv(index=False))
        print(markdown)
        written += [md_path, csv_path]
        figure = training_curves(table_records, (figures_dir or results_dir() / "figures") / f"{task}_{model}_training.png", f"{task} / {model}")
        if figure:
            written.append(figure)
    for table in paper_tables(records) + cost_tables(records):
        written += table.write(out_dir)
        print(table.markdown())
    written += paper_figures(records, figures_dir or results_dir() / "figures")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=None, help="folder of run records (default results/runs)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default results/tables)")
    parser.add_argument("--figures", type=Path, default=None, help="figure folder (default results/figures)")
    args = parser.parse_args(argv)
    paths = write_tables(args.runs, args.out, args.figures)
    for p in paths:
        print(f"wrote {p}", file=sys.stderr)


if __name__ == "__main__":
    main()
