"""The paper's tables from run records: Tables 1 and 9 (T5 on GLUE, batch 128 and 32), 2 (math + code), 3
(commonsense) and 4 (Astra's eigenvector windows), per model.

Rows: every method the paper reports for the model (in the paper's order, at the paper's rank and in the
method's reference configuration), then every other (method label, rank) we ran: other ranks, Astra's variants.
A paper row without runs stays, its cells "—": nothing is dropped silently.
Cells: our mean ± std over seeds [number of seeds], the paper's value, and Δ = ours − paper. The significance
marks (see `report.significance`) say where a method's difference to LoRA / to Astra has a 95 % paired-bootstrap
interval that excludes 0. Runs trained or scored on synthetic data never enter these tables: they get tables of
their own (`<table>_<model>_synthetic`), which measure the pipeline, not the paper's benchmark.
A cell whose runs depart from the paper's protocol (a different prompt, a constructed code prompt, synthetic data,
another global batch, part of the test set, another recipe or fewer training examples; `report.protocol`) carries
a mark, the legend under the table says what differs, and its Δ (and that of an Avg over it) is "n/c".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from astra_repro.paths import PROJECT_ROOT
from astra_repro.runs import is_synthetic
from astra_repro.report import hierarchical, protocol, significance
from astra_repro.report.declarations import metric_label
from astra_repro.report.display import MISSING, DisplayTable, mean_std, number
from astra_repro.selection_labels import selection_label

PAPER_DIR = PROJECT_ROOT / "results" / "paper"


@dataclass(frozen=True)
class PaperLayout:
    """A paper table that joins benchmarks across evaluators (and tasks): column -> (task, evaluator, metric) or
    (task, evaluator, metric, {eval_data field: value}) when one evaluator serves several columns (GLUE's task)."""

    name: str  # file stem: results/tables/<name>_<model>.md
    title: str
    paper_csv: str  # the paper's numbers, one column per entry of `columns`
    columns: dict[str, tuple]
    paper_rank: int  # the rank of the paper's PEFT rows (Table 8)
    # a column's header: the evaluator's declared label of its metric (HumanEval+), unless named here (GLUE's tasks)
    headers: dict[str, str] = field(default_factory=dict)
    extra_columns: dict[str, tuple] = field(default_factory=dict)  # shown, outside Avg
    records: dict = field(default_factory=dict)  # only records with these field values (e.g. the batch size)
    paper_protocol: protocol.PaperProtocol = protocol.NLG  # what the paper ran: a cell departing from it is marked


TABLE2 = PaperLayout(
    name="table2", title="Table 2 (math and code)", paper_csv="table2_math_code.csv", paper_rank=128,
    columns={
        "gsm8k": ("math", "gsm8k", "accuracy"),
        "math": ("math", "math", "accuracy"),
        "humaneval": ("code", "humaneval", "pass@1"),
        "humaneval_plus": ("code", "humaneval", "pass@1_plus"),
        "mbpp": ("code", "mbpp", "pass@1"),
        "mbpp_plus": ("code", "mbpp", "pass@1_plus"),
    },
)
# lm-eval `acc` (protocol §3.4). SIQA is trained on (Commonsense170K) but not reported by the paper.
TABLE3 = PaperLayout(
    name="table3", title="Table 3 (commonsense)", paper_csv="table3_commonsense.csv", paper_rank=128,
    columns={
        "boolq": ("commonsense", "boolq", "acc"),
        "piqa": ("commonsense", "piqa", "acc"),
        "hellaswag": ("commonsense", "hellaswag", "acc"),
        "winogrande": ("commonsense", "winogrande", "acc"),
        "arc_e": ("commonsense", "arc_easy", "acc"),
        "arc_c": ("commonsense", "arc_challenge", "acc"),
        "obqa": ("commonsense", "openbookqa", "acc"),
    },
    extra_columns={"siqa": ("commonsense", "siqa", "acc")},
)
GLUE_COLUMNS = {t: ("glue", "glue_dev", "accuracy", {"glue_task": t}) for t in ("mnli", "sst2", "qnli", "cola", "mrpc")}
GLUE_HEADERS = {"mnli": "MNLI", "sst2": "SST-2", "qnli": "QNLI", "cola": "CoLA", "mrpc": "MRPC"}
# LoRA-GA's soft accuracy for all five (the paper: "accuracy for all tasks"); Table 9 = Table 1's setup at batch 32.
TABLE1 = PaperLayout(name="table1", title="Table 1 (T5-base on GLUE, batch 128)", paper_csv="table1_glue_t5.csv",
                     columns=GLUE_COLUMNS, headers=GLUE_HEADERS, paper_rank=8, records={"global_batch_size": 128},
                     paper_protocol=protocol.PaperProtocol((128,), "paper", None, whole_split=True))
TABLE9 = PaperLayout(name="table9", title="Table 9 (T5-base on GLUE, batch 32)", paper_csv="table9_glue_t5_bs32.csv",
                     columns=GLUE_COLUMNS, headers=GLUE_HEADERS, paper_rank=8, records={"global_batch_size": 32},
                     paper_protocol=protocol.PaperProtocol((32,), "paper", None, whole_split=True))
PAPER_LAYOUTS = (TABLE1, TABLE2, TABLE3, TABLE9)
TABLE4_COLUMNS = {"gsm8k": ("math", "gsm8k", "accuracy"), "math": ("math", "math", "accuracy")}
TABLE4_RANK = 128
TABLE4_PROTOCOL = protocol.NLG


# ------------------------------------------------------------------------------------------------- records
def column_header(layout: PaperLayout, column: str, records: list[dict]) -> str:
    if column in layout.headers:
        return layout.headers[column]
    _, evaluator, metric, *_ = {**layout.columns, **layout.extra_columns}[column]
    return metric_label(records, evaluator, metric)


def column_value(record: dict, spec: tuple) -> float | None:
    """A record's value for a table column, or None when the record does not hold it."""
    task, evaluator, metric, *match = spec
    if record.get("task") != task:
        return None
    info = record.get("eval_data", {}).get(evaluator, {})
    if any(info.get(k, record.get("task_variant") if k == "glue_task" else None) != v for k, v in (match[0] if match else {}).items()):
        return None
    value = record.get("metrics", {}).get(evaluator, {}).get(metric)
    return None if value is None else float(value)


def astra_options(record: dict) -> dict:
    return record.get("init", {}).get("astra") or {}


def reference_configuration(record: dict) -> bool:
    """Whether a run is its method's configuration as the paper ran it (Astra: the released code's selection,
    calibrated on the task's own data), i.e. comparable with the paper's row for that method."""
    options = astra_options(record)
    if not options:
        return True
    calibration = options.get("calibration") or {}
    return options.get("subspace", "largest") == "largest" and calibration.get("source", "task") == "task"


@dataclass
class Group:
    """The runs of one table row: a method label at a rank (all its seeds)."""

    label: str
    method: str
    rank: int
    records: list[dict]

    def values(self, spec: tuple) -> list[float]:
        return [v for v in (column_value(r, spec) for r in self.records) if v is not None]

    def records_for(self, spec: tuple) -> list[dict]:
        return [r for r in self.records if column_value(r, spec) is not None]

    def departures(self, spec: tuple, paper: protocol.PaperProtocol) -> dict[str, set[str]]:
        """How the runs behind this column's cell depart from the paper's protocol (mark -> what differs)."""
        return protocol.cell_departures(self.records_for(spec), spec[1], paper)


def cell_text(values: list[float], departures: dict, significance_marks: str = "") -> str:
    """`mean ± std [n]`, then the protocol marks (e.g. " ‡¶"), then the significance marks (" L+ A-")."""
    shown = protocol.marks(departures)
    return mean_std(values) + (" " + shown if shown else "") + significance_marks


def delta_text(delta: float | None, departures: dict) -> str:
    """Δ = ours − paper, or "n/c" when the cell is marked (its protocol is not the paper's)."""
    if departures and delta is not None:
        return protocol.NOT_COMPARABLE
    return number(delta, signed=True)


def group_records(records: list[dict]) -> list[Group]:
    """One group per method label and rank (its seeds); runs of one label and rank at different learning rates are
    groups of their own, labelled `@<lr>`, never pooled as seeds."""
    def base_key(r: dict) -> tuple:
        return r.get("method_label", r["method"]), r["method"], int(r.get("rank") or 0)

    rates: dict[tuple, set] = {}
    for r in records:
        rates.setdefault(base_key(r), set()).add(r.get("learning_rate"))
    groups: dict[tuple, Group] = {}
    for r in records:
        label, method, rank = base_key(r)
        if len(rates[(label, method, rank)]) > 1 and r.get("learning_rate") is not None:
            label = f"{label} @{r['learning_rate']:g}"
        key = (label, method, rank)
        groups.setdefault(key, Group(*key, records=[])).records.append(r)
    return list(groups.values())


def layout_records(records: list[dict], layout: PaperLayout, model: str) -> list[dict]:
    tasks = {spec[0] for spec in {**layout.columns, **layout.extra_columns}.values()}
    return [r for r in records if r["model"] == model and r.get("task") in tasks
            and all(r.get(k) == v for k, v in layout.records.items())]


# ------------------------------------------------------------------------------------------------- significance
def reference_group(groups: list[Group], method: str, rank: int, paper_rank: int) -> Group | None:
    """What a row is compared with: `method` at the row's rank in its reference configuration, else at the paper's
    rank, else None."""
    for wanted in (rank, paper_rank):
        for g in groups:
            if g.method == method and g.rank == wanted and all(reference_configuration(r) for r in g.records):
                return g
    return None


PREDICTIONS_CACHE: dict = {}  # run folder x metric -> per-item outcomes, shared by every comparison of one process
COMPARISONS: dict = {}  # (runs a, runs b, evaluator, metric) -> result: a cell and the significance table share it


def compare(records_a: list[dict], records_b: list[dict], evaluator: str, metric: str):
    key = (tuple(r.get("run_dir") for r in records_a), tuple(r.get("run_dir") for r in records_b), evaluator, metric)
    if key not in COMPARISONS:
        # hierarchical (seeds x items) when both sides have >= 2 seeds, items only otherwise (report/hierarchical.py)
        COMPARISONS[key] = hierarchical.compare_records_auto(records_a, records_b, evaluator, metric, cache=PREDICTIONS_CACHE)
    return COMPARISONS[key]


def marks(group: Group, groups: list[Group], spec: tuple, paper_rank: int) -> tuple[str, dict]:
    """The cell's significance marks (e.g. " L+ A-") and the comparisons behind them, for the CSV and the
    significance table. A comparison that cannot be made (no per-item data) is left out, without a mark."""
    shown, found = [], {}
    _, evaluator, metric, *_ = spec
    for reference, mark in significance.REFERENCE_MARKS.items():
        other = reference_group(groups, reference, group.rank, paper_rank)
        if other is None or other is group:
            continue
        comparison = compare(group.records_for(spec), other.records_for(spec), evaluator, metric)
        if comparison:
            found[reference] = comparison
            shown.append(comparison.marker(mark))
    shown = " ".join(m for m in shown if m)
    return (" " + shown if shown else ""), found


# ------------------------------------------------------------------------------------------------- Tables 1, 2, 3, 9
def paper_numbers(layout: PaperLayout) -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / layout.paper_csv)


def ordered_rows(groups: list[Group], paper: pd.DataFrame, model: str, paper_rank: int) -> list[tuple[Group | None, pd.Series | None]]:
    """(group, paper row) pairs: the untrained base model, the paper's methods in its order, each with the group
    that reproduces it (or None: no runs), then every group left by name and rank."""
    base = [g for g in groups if g.method == "base"]
    rows, used = [(g, None) for g in base], {id(g) for g in base}
    for _, paper_row in paper[paper["model"] == model].iterrows():
        method = paper_row["method"]
        rank = 0 if method == "fft" else paper_rank
        matches = [g for g in groups if g.method == method and g.rank == rank
                   and all(reference_configuration(r) for r in g.records)]
        for g in matches or [None]:
            rows.append((g, paper_row))
            used.add(id(g))
    rest = sorted((g for g in groups if id(g) not in used), key=lambda g: (g.label, g.rank))
    return rows + [(g, None) for g in rest]


def layout_table(records: list[dict], layout: PaperLayout, model: str, synthetic: bool = False) -> DisplayTable | None:
    chosen = [r for r in layout_records(records, layout, model) if is_synthetic(r) == synthetic]
    if not chosen:
        return None
    groups = group_records(chosen)
    paper = paper_numbers(layout)
    all_columns = {**layout.columns, **layout.extra_columns}
    header = ["method", "rank"]
    column_groups = [("", 2)]
    for column in layout.columns:
        header += [column_header(layout, column, chosen), "paper", "Δ"]
        column_groups.append((column_header(layout, column, chosen), 3))
    header += ["Avg", "paper", "Δ"]
    column_groups.append(("Avg", 3))
    for column in layout.extra_columns:
        header.append(column_header(layout, column, chosen))
        column_groups.append(("", 1))
    shown_rows, data_rows, used = [], [], []
    for group, paper_row in ordered_rows(groups, paper if not synthetic else paper.iloc[0:0], model, layout.paper_rank):
        label = group.label if group else paper_row["method"]
        rank = group.rank if group else (0 if paper_row["method"] == "fft" else layout.paper_rank)
        cells, data = [label + ("" if group else " (no runs)"), str(rank or "full")], {"method": label, "rank": rank}
        means, avg_departures = [], []
        for column, spec in all_columns.items():
            values = group.values(spec) if group else []
            mark, comparisons = marks(group, groups, spec, layout.paper_rank) if group and values else ("", {})
            departures = group.departures(spec, layout.paper_protocol) if group and values else {}
            used.append(departures)
            ours = sum(values) / len(values) if values else None
            data.update({column: ours, f"{column}.std": pd.Series(values).std(ddof=1) if len(values) > 1 else None,
                         f"{column}.seeds": len(values), f"{column}.protocol": protocol.marks(departures)})
            for reference, comparison in comparisons.items():
                data[f"{column}.vs_{reference}"] = comparison.difference
                data[f"{column}.vs_{reference}.ci"] = f"[{comparison.low:.2f}, {comparison.high:.2f}]"
            if column in layout.extra_columns:
                cells.append(cell_text(values, departures, mark))
                continue
            reported = float(paper_row[column]) if paper_row is not None and column in paper_row else None
            delta = ours - reported if ours is not None and reported is not None else None
            cells += [cell_text(values, departures, mark), number(reported), delta_text(delta, departures)]
            data.update({f"{column}.paper": reported, f"{column}.delta": None if departures else delta})
            if ours is not None:
                means.append(ours)
                avg_departures.append(departures)
        average = sum(means) / len(means) if len(means) == len(layout.columns) else None
        avg_departures = protocol.merge(avg_departures) if average is not None else {}
        reported_avg = float(paper_row["average"]) if paper_row is not None else None
        avg_delta = average - reported_avg if average is not None and reported_avg is not None else None
        avg_marks = protocol.marks(avg_departures)
        avg_cells = [number(average) + (" " + avg_marks if avg_marks else ""), number(reported_avg),
                     delta_text(avg_delta, avg_departures)]
        insert_at = 2 + 3 * len(layout.columns)
        cells[insert_at:insert_at] = avg_cells
        data.update({"average": average, "average.paper": reported_avg,
                     "average.delta": None if avg_departures else avg_delta, "average.protocol": avg_marks})
        shown_rows.append(cells)
        data_rows.append(data)
    notes = [
        "Cells: our mean ± std over seeds [seeds]; paper: the paper's value; Δ = ours − paper. "
        f"Paper rows are at rank {layout.paper_rank} (FFT: full) in the method's reference configuration; "
        f"Avg only when all {len(layout.columns)} benchmarks have runs.",
        significance.MARKER_LEGEND,
        hierarchical.HIERARCHICAL_LEGEND,
    ] + protocol.legend(protocol.merge(used), delta_rule=not synthetic)
    notes += protocol.table_notes(chosen, (spec[1] for spec in all_columns.values()))
    notes += unplaced_batches(records, layout, model, synthetic)
    if layout.extra_columns:
        notes.append(f"{', '.join(column_header(layout, c, chosen) for c in layout.extra_columns)}: not in the paper's table, outside Avg.")
    title = f"{layout.title} — {model}"
    name = f"{layout.name}_{model}"
    if synthetic:
        title += ": SYNTHETIC data (a pipeline check, not the paper's benchmark)"
        name += "_synthetic"
        notes.append("Every row here was trained or scored on the built-in synthetic data; paper values are not shown.")
    return DisplayTable(name, title, header, shown_rows, pd.DataFrame(data_rows), notes, column_groups)


def unplaced_batches(records: list[dict], layout: PaperLayout, model: str, synthetic: bool) -> list[str]:
    """A note for the tables that select runs by global batch (1 and 9): runs of theirs at a batch neither selects."""
    if "global_batch_size" not in layout.records:
        return []
    selected = {other.records["global_batch_size"] for other in PAPER_LAYOUTS if "global_batch_size" in other.records}
    unplaced = [r for r in layout_records(records, replace(layout, records={}), model)
                if is_synthetic(r) == synthetic and r.get("global_batch_size") not in selected]
    if not unplaced:
        return []
    batches = ", ".join(sorted({str(r.get("global_batch_size")) for r in unplaced}))
    tables = " / ".join(f"{other.name} ({other.records['global_batch_size']})" for other in PAPER_LAYOUTS
                        if "global_batch_size" in other.records)
    return [f"{len(unplaced)} run(s) at global batch {batches} are in neither {tables}: the per-task tables show them."]


# ------------------------------------------------------------------------------------------------- Table 4
def selection_labels(record: dict) -> tuple[str, str]:
    """(the paper's label, the label by true position) of an Astra run's eigenvector selection."""
    options = astra_options(record)
    if "subspace" not in options:  # an older record: the selection is only in its label, under the paper's convention
        label = record.get("method_label", "")
        paper_label = label[label.find("(") + 1:label.rfind(")")] if "(" in label else "Tail"
        return paper_label, MISSING
    subspace, start = options["subspace"], options.get("window_start")
    return selection_label(subspace, start, "paper"), selection_label(subspace, start, "math")


def table4(records: list[dict], model: str, synthetic: bool = False) -> DisplayTable | None:
    chosen = [r for r in records if r["model"] == model and r.get("task") == "math" and r["method"] == "astra"
              and int(r.get("rank") or 0) == TABLE4_RANK and is_synthetic(r) == synthetic
              and (astra_options(r).get("calibration") or {}).get("source", "task") == "task"]
    if not chosen:
        return None
    by_selection: dict[tuple, list[dict]] = {}
    for r in chosen:
        by_selection.setdefault(selection_labels(r), []).append(r)
    paper = pd.read_csv(PAPER_DIR / "table4_eigen_ablation.csv")
    paper = paper[paper["model"] == model] if not synthetic else paper.iloc[0:0]
    order = list(paper["selection"]) + sorted({k[0] for k in by_selection} - set(paper["selection"]))
    labels = [metric_label(chosen, evaluator, metric) for _, evaluator, metric in TABLE4_COLUMNS.values()]
    header = ["selection (paper's label)", "selection (true position)"] + [h for label in labels for h in (label, "paper", "Δ")]
    shown_rows, data_rows, used = [], [], []
    for paper_label in order:
        keys = [k for k in by_selection if k[0] == paper_label] or [(paper_label, MISSING)]
        for key in keys:
            group = Group(paper_label, "astra", TABLE4_RANK, by_selection.get(key, []))
            paper_row = paper[paper["selection"] == paper_label]
            cells, data = [paper_label, key[1]], {"selection_paper": paper_label, "selection_true": key[1]}
            for column, spec in TABLE4_COLUMNS.items():
                values = group.values(spec)
                departures = group.departures(spec, TABLE4_PROTOCOL) if values else {}
                used.append(departures)
                ours = sum(values) / len(values) if values else None
                reported = float(paper_row[column].iloc[0]) if len(paper_row) else None
                delta = ours - reported if ours is not None and reported is not None else None
                cells += [cell_text(values, departures), number(reported), delta_text(delta, departures)]
                data.update({column: ours, f"{column}.seeds": len(values), f"{column}.paper": reported,
                             f"{column}.delta": None if departures else delta,
                             f"{column}.protocol": protocol.marks(departures)})
            shown_rows.append(cells)
            data_rows.append(data)
    notes = [
        f"Astra at rank {TABLE4_RANK} on MetaMathQA, calibrated on the task. The paper's labels follow the released "
        "code, which calls the largest-eigenvalue directions the 'tail'; the second column names each window by its "
        "true position in the spectrum (docs/astra_fidelity.md, D1). The paper's Random and Q3 rows are identical "
        "(likely a copy error, protocol §5).",
    ] + protocol.legend(protocol.merge(used), delta_rule=not synthetic)
    name, title = f"table4_{model}", f"Table 4 (eigenvector windows) — {model}"
    if synthetic:
        name, title = name + "_synthetic", title + ": SYNTHETIC data (a pipeline check)"
    return DisplayTable(name, title, header, shown_rows, pd.DataFrame(data_rows), notes,
                        [("", 2)] + [(label, 3) for label in labels])


# ------------------------------------------------------------------------------------------------- significance table
def significance_table(records: list[dict], layout: PaperLayout, model: str) -> DisplayTable | None:
    """Per row and benchmark: the difference to LoRA and to Astra with its 95 % interval (percentage points)."""
    chosen = [r for r in layout_records(records, layout, model) if not is_synthetic(r)]
    groups = group_records(chosen)
    if len(groups) < 2:
        return None
    header = ["method", "rank", "vs"] + [column_header(layout, c, chosen) for c in layout.columns]
    shown_rows, data_rows = [], []
    for group in sorted(groups, key=lambda g: (g.method != "base", g.label, g.rank)):
        for reference in ("lora", "astra"):
            cells = [group.label, str(group.rank or "full"), reference]
            data = {"method": group.label, "rank": group.rank, "vs": reference}
            any_value = False
            for column, spec in layout.columns.items():
                _, comparisons = marks(group, groups, spec, layout.paper_rank) if group.values(spec) else ("", {})
                comparison = comparisons.get(reference)
                cells.append(comparison.describe() if comparison else MISSING)
                data[column] = comparison.difference if comparison else None
                data[f"{column}.low"] = comparison.low if comparison else None
                data[f"{column}.high"] = comparison.high if comparison else None
                any_value |= comparison is not None
            if any_value:
                shown_rows.append(cells)
                data_rows.append(data)
    if not shown_rows:
        return None
    notes = ["Each cell: the row's score minus the reference's, in percentage points, with the 95 % paired-bootstrap "
             "interval, the items compared, the seeds on each side, the two-sided bootstrap p and which bootstrap: "
             "hierarchical (seeds and test items resampled; both sides with >= 2 seeds) or items (test items "
             "resampled, seeds pooled per item; report/hierarchical.py). — : no comparison (no runs, or no "
             "per-item predictions)."]
    return DisplayTable(f"{layout.name}_{model}_significance", f"{layout.title} — {model}: differences with 95 % intervals",
                        header, shown_rows, pd.DataFrame(data_rows), notes)


def paper_tables(records: list[dict]) -> list[DisplayTable]:
    """Every paper table the records support, per model; synthetic rows in tables of their own."""
    tables = []
    models = sorted({r["model"] for r in records})
    for layout in PAPER_LAYOUTS:
        for model in models:
            for synthetic in (False, True):
                table = layout_table(records, layout, model, synthetic)
                if table:
                    tables.append(table)
            table = significance_table(records, layout, model)
            if table:
                tables.append(table)
    for model in models:
        for synthetic in (False, True):
            table = table4(records, model, synthetic)
            if table:
                tables.append(table)
    return tables
