"""The paper's figures from run records (`runs.load_records`: metrics.json + `run_dir`), as PNG and PDF.

    paths = paper_figures(records, out_dir)          # every figure the records support; never raises on gaps
    entries = figure_index(out_dir)                   # [{"key", "number", "title", "caption", "png", "pdf"}, ...]

Figures (file names after the paper's numbering):

    fig1_<task>_<model>    loss + gradient norm of FFT, LoRA and Astra at every rank present (first seed each)
    fig2_<model>           math task: accuracy vs rank per benchmark (GSM8K, MATH), final training loss vs rank,
                           Astra calibrated on the task vs on WikiText-2
    fig3_<task>_<model>    effective rank (Eq. 9) per layer type, summed over layers: base vs each merged model;
                           from `<run_dir>/analysis/effective_rank.json` (`python -m astra_repro.analysis`)
    fig4_<task>_<model>    curves of the Table 4 eigenvector windows (Astra labelled "astra (Top)", ...)
    fig5_<model>, fig6_<model>   GLUE curves per task at batch 32 / 128, first 300 steps (figG2_<model>_bs<b>
                           for other batch sizes)
    fig7_llama2_7b, fig8_llama3_8b   curves per task of every method (figG3_<model> for other models)

One style for all (`STYLE`, applied with `plt.rc_context`), one colour per method everywhere (`method_color`),
legends outside the axes. What the records cannot support is skipped with a logged reason (and listed in the
index as "skipped"). `training_curves` (one PNG per table, called by tables.py) uses the same style.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import matplotlib

matplotlib.use("Agg")  # files only, no display
logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting logs every table it prunes at INFO
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

from astra_repro.report.declarations import evaluator_label, primary_metric  # noqa: E402
from astra_repro.runs import is_synthetic  # noqa: E402
from astra_repro.selection_labels import DEFAULT_WINDOW_START, selection_label  # noqa: E402
from matplotlib.colors import to_hex, to_rgb  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------------- style
STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "figure.titlesize": 11,
    "legend.fontsize": 8,
    "legend.frameon": False,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "lines.linewidth": 1.3,
    "lines.markersize": 4,
    "errorbar.capsize": 3,
    "savefig.dpi": 150,
    "pdf.fonttype": 42,  # TrueType in PDFs: editable text
}

# One colour per method, the same in every figure (tab10-like, FFT black, the untrained model grey).
METHOD_COLORS: dict[str, str] = {
    "base": "#7f7f7f",
    "fft": "#222222",
    "lora": "#1f77b4",
    "astra": "#d62728",
    "pissa": "#2ca02c",
    "corda": "#9467bd",
    "dora": "#ff7f0e",
    "rslora": "#8c564b",
    "loraga": "#e377c2",
    "milora": "#17becf",
    "olora": "#bcbd22",
    "eva": "#5254a3",
    "loraplus": "#ad494a",
}
# Names not listed above get one of these, chosen by a stable hash of the name (the same in every process).
FALLBACK_COLORS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
                   "#756bb1", "#636363")
METHOD_ORDER = list(METHOD_COLORS)
# Table 4 windows (Figure 4): Tail is Astra's default, so it keeps Astra's colour.
SELECTION_COLORS: dict[str, str] = {
    "Tail": METHOD_COLORS["astra"],
    "Top": "#1f3b73",
    "Upper Quartile (Q3)": "#3a923a",
    "Medium": "#8c6bb1",
    "Lower Quartile (Q1)": "#c49c22",
    "Random": "#4ba3c3",
}
SELECTION_ORDER = ["Top", "Upper Quartile (Q3)", "Medium", "Lower Quartile (Q1)", "Tail", "Random"]
CALIBRATION_TAGS = {"task", "wikitext2"}
LINESTYLES = ["-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1))]
GLUE_ORDER = ["mnli", "sst2", "cola", "qnli", "mrpc"]
GLUE_NAMES = {"mnli": "MNLI", "sst2": "SST-2", "cola": "CoLA", "qnli": "QNLI", "mrpc": "MRPC"}
LAYER_TYPE_ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",  # Llama
                    "q", "k", "v", "o", "wi", "wi_0", "wi_1", "wo"]  # T5
PAPER_APPENDIX_MODELS = {"llama2_7b": "7", "llama3_8b": "8"}
GLUE_BATCH_FIGURES = {32: "5", 128: "6"}
GLUE_MAX_STEP = 300
FINAL_LOSS_WINDOW = 10  # "final training loss": mean of the last logged losses (fallback: the record's train_loss)

STEP_LABEL = "optimizer step"
LOSS_LABEL = "training loss (cross-entropy, nats/token)"
GRAD_LABEL = "gradient norm (L2, before clipping)"
SYNTHETIC_NOTE = (" † Some runs trained or were scored on the built-in synthetic data: a pipeline check, not the "
                  "paper's benchmark.")


def method_color(method: str) -> str:
    """The colour of a method in every figure: by registry name ("lora"), also for a table label ("astra (Tail)",
    "astra (wikitext2)" -> astra's colour). Unknown names get a stable colour from a hash of the name."""
    name = str(method).strip()
    key = name.split(" (", 1)[0].lower()
    if key in METHOD_COLORS:
        return METHOD_COLORS[key]
    return FALLBACK_COLORS[zlib.crc32(key.encode()) % len(FALLBACK_COLORS)]


def selection_color(selection: str) -> str:
    """The colour of a Table 4 eigenvector window (Figure 4); Tail (Astra's default) is Astra's colour."""
    if selection in SELECTION_COLORS:
        return SELECTION_COLORS[selection]
    return FALLBACK_COLORS[zlib.crc32(str(selection).encode()) % len(FALLBACK_COLORS)]


def shade(color: str, amount: float) -> str:
    """`color` mixed with white: amount 0 = the colour itself, 1 = white (lower ranks are drawn lighter)."""
    r, g, b = to_rgb(color)
    return to_hex((r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount))


def method_sort_key(name: str) -> tuple:
    key = str(name).split(" (", 1)[0].lower()
    return (METHOD_ORDER.index(key) if key in METHOD_ORDER else len(METHOD_ORDER), str(name))


# ------------------------------------------------------------------------------------------------- records
def read_train_log(run_dir: Path) -> list[dict]:
    """Per-step rows of `train_log.jsonl` (step, loss, grad_norm, ...); the trainer's summary row and unreadable
    lines are left out; [] when the run has no log."""
    path = Path(run_dir) / "train_log.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("loss") is not None and "train_loss" not in row:
            rows.append(row)
    return rows


_CONFIGS: dict[str, dict] = {}


def run_config(record: dict) -> dict:
    """The run's config.yaml (its plan) as a dict; {} when absent or unreadable."""
    run_dir = record.get("run_dir")
    if not run_dir:
        return {}
    key = str(run_dir)
    if key not in _CONFIGS:
        try:
            _CONFIGS[key] = yaml.safe_load((Path(run_dir) / "config.yaml").read_text()) or {}
        except (OSError, yaml.YAMLError):
            _CONFIGS[key] = {}
    return _CONFIGS[key]


def label_parts(record: dict) -> tuple[str, str | None]:
    """("astra", "Upper Quartile (Q3)") from "astra (Upper Quartile (Q3))"; (label, None) without parentheses."""
    label = str(record.get("method_label") or record.get("method") or "?")
    if " (" in label and label.endswith(")"):
        base, rest = label.split(" (", 1)
        return base, rest[:-1]
    return label, None


def calibration_source(record: dict) -> str | None:
    config = run_config(record)
    source = (config.get("calibration") or {}).get("source") if isinstance(config.get("calibration"), dict) else None
    if source:
        return str(source)
    _, tag = label_parts(record)
    return tag if tag in CALIBRATION_TAGS else None


def selection(record: dict) -> str | None:
    """The eigenvector window of an Astra run (Table 4 row name), or None for other methods. A label without a
    selection and no `method.subspace` in its config is Astra's default, "Tail"."""
    if record.get("method") != "astra":
        return None
    _, tag = label_parts(record)
    if tag and tag not in CALIBRATION_TAGS:
        return tag
    options = run_config(record).get("method") or {}
    if options.get("subspace"):  # Table 4's name under the paper's convention, windows included
        try:
            return selection_label(str(options["subspace"]), options.get("window_start", DEFAULT_WINDOW_START), "paper")
        except KeyError:
            return str(options["subspace"])
    return "Tail"


def explicit_selection(record: dict) -> bool:
    """Whether the run names its window (label or config), i.e. it belongs to the Table 4 ablation."""
    _, tag = label_parts(record)
    if tag and tag not in CALIBRATION_TAGS:
        return True
    return bool((run_config(record).get("method") or {}).get("subspace"))


def is_main_run(record: dict) -> bool:
    """A method's main configuration: not calibrated on WikiText-2 (Fig. 2d) and, for Astra, the default window."""
    if calibration_source(record) == "wikitext2":
        return False
    sel = selection(record)
    return sel is None or sel == "Tail"


def series_name(record: dict) -> str:
    """The legend name of a method's main runs: the label without its selection/calibration tag."""
    return label_parts(record)[0]


def seed_of(record: dict) -> int:
    try:
        return int(record.get("seed", 0))
    except (TypeError, ValueError):
        return 0


def rank_of(record: dict) -> int:
    try:
        return int(record.get("rank") or 0)
    except (TypeError, ValueError):
        return 0


def primary_value(record: dict, evaluator: str) -> float | None:
    """The evaluator's primary metric (as it declares it; default accuracy) in %, or None."""
    metrics = (record.get("metrics") or {}).get(evaluator) or {}
    if not metrics:
        return None
    value = metrics.get(primary_metric(record, evaluator))
    if value is None and len(metrics) == 1:
        value = next(iter(metrics.values()))
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def final_loss(record: dict) -> float | None:
    """Mean of the last FINAL_LOSS_WINDOW logged losses; the record's train.train_loss when there is no log."""
    rows = read_train_log(Path(record["run_dir"])) if record.get("run_dir") else []
    losses = [float(r["loss"]) for r in rows if isinstance(r.get("loss"), (int, float))]
    if losses:
        return statistics.fmean(losses[-FINAL_LOSS_WINDOW:])
    value = (record.get("train") or {}).get("train_loss")
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def first_seed(records: Iterable[dict], key: Callable[[dict], Any]) -> dict[Any, dict]:
    """key(record) -> the record with the lowest seed among those with a training log."""
    chosen: dict[Any, dict] = {}
    for record in sorted(records, key=seed_of):
        k = key(record)
        if k in chosen or not record.get("run_dir"):
            continue
        if read_train_log(Path(record["run_dir"])):
            chosen[k] = record
    return chosen


def main_rank(records: list[dict]) -> int:
    """The rank most runs of a method use (ties: the largest): one curve per method in the appendix figures."""
    counts: dict[int, int] = defaultdict(int)
    for r in records:
        counts[rank_of(r)] += 1
    return max(counts, key=lambda k: (counts[k], k))


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


def task_name(record: dict) -> str:
    task = str(record.get("task") or "?")
    return task + (f"_{record['task_variant']}" if record.get("task_variant") else "")


# ------------------------------------------------------------------------------------------------- drawing
@dataclass
class Series:
    """One line of a curve plot."""

    label: str
    color: str
    log: list[dict]
    linestyle: Any = "-"


@dataclass
class Drawn:
    """A figure drawn but not yet saved."""

    key: str  # file stem
    number: str  # the paper's figure number ("1", "2", ..., "G3")
    title: str
    caption: str
    figure: Any  # matplotlib Figure


@dataclass
class PaperFigure:
    """A saved figure, for the HTML report: paths relative to nothing (absolute as written)."""

    key: str
    number: str
    title: str
    caption: str
    png: str
    pdf: str


@dataclass
class FigureSet:
    figures: list[PaperFigure] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def skip(self, figure: str, reason: str) -> None:
        log.info("figure %s skipped: %s", figure, reason)
        self.skipped.append({"figure": figure, "reason": reason})


def plot_curves(ax_loss, ax_grad, series: list[Series], max_step: int | None = None) -> None:
    """Loss on ax_loss, grad norm on ax_grad (log scale when every value is positive), one line per series."""
    all_grads, last_step = [], 0
    for s in series:
        rows = [r for r in s.log if max_step is None or r.get("step", 0) <= max_step]
        steps = [r.get("step", i + 1) for i, r in enumerate(rows)]
        last_step = max([last_step, *steps])
        ax_loss.plot(steps, [r["loss"] for r in rows], color=s.color, linestyle=s.linestyle, label=s.label)
        grad = [(st, r["grad_norm"]) for st, r in zip(steps, rows) if isinstance(r.get("grad_norm"), (int, float))]
        if grad:
            ax_grad.plot([g[0] for g in grad], [g[1] for g in grad], color=s.color, linestyle=s.linestyle, label=s.label)
            all_grads += [g[1] for g in grad]
    ax_loss.set(xlabel=STEP_LABEL, ylabel=LOSS_LABEL)
    ax_grad.set(xlabel=STEP_LABEL, ylabel=GRAD_LABEL)
    if all_grads and min(all_grads) > 0:
        ax_grad.set_yscale("log")
        plain = FuncFormatter(lambda v, _: f"{v:g}")
        ax_grad.yaxis.set_major_formatter(plain)
        ax_grad.yaxis.set_minor_formatter(plain)
    if not all_grads:
        ax_grad.text(0.5, 0.5, "no gradient norms logged", ha="center", va="center", transform=ax_grad.transAxes)
    if max_step is not None and last_step > 0:
        for ax in (ax_loss, ax_grad):
            ax.set_xlim(left=0, right=min(max_step, last_step))


def outside_legend(fig, axes, where: str = "right", ncol: int | None = None) -> None:
    """One legend for the whole figure, outside every axes (never over data); duplicate labels merged."""
    handles, labels, seen = [], [], set()
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in seen and not lab.startswith("_"):
                seen.add(lab)
                handles.append(h)
                labels.append(lab)
    if not handles:
        return
    if where == "right":
        fig.legend(handles, labels, loc="outside right upper")
    else:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol or min(len(labels), 6))


def new_figure(ncols: int, nrows: int = 1, width: float = 4.2, height: float = 3.3):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), layout="constrained", squeeze=False)
    return fig, axes


def save(drawn: Drawn, out_dir: Path) -> PaperFigure:
    out_dir.mkdir(parents=True, exist_ok=True)
    png, pdf = out_dir / f"{drawn.key}.png", out_dir / f"{drawn.key}.pdf"
    drawn.figure.savefig(png, metadata={"Software": None})
    drawn.figure.set_layout_engine("none")  # laid out by the first save: the second keeps those positions
    drawn.figure.savefig(pdf, metadata={"CreationDate": None, "Creator": None, "Producer": None})
    plt.close(drawn.figure)
    return PaperFigure(drawn.key, drawn.number, drawn.title, drawn.caption, str(png), str(pdf))


def synthetic_note(records: Iterable[dict]) -> str:
    return SYNTHETIC_NOTE if any(is_synthetic(r) for r in records) else ""


def by(records: Iterable[dict], key: Callable[[dict], Any]) -> dict[Any, list[dict]]:
    groups: dict[Any, list[dict]] = defaultdict(list)
    for r in records:
        groups[key(r)].append(r)
    return dict(groups)


def is_glue(record: dict) -> bool:
    return record.get("task") == "glue"


# ------------------------------------------------------------------------------------------------- Figure 1
FIG1_METHODS = ("fft", "lora", "astra")


def rank_series(records: list[dict], name: str) -> list[Series]:
    """One line per rank of a method (first seed), lower ranks lighter and dashed; FFT is "full"."""
    chosen = first_seed(records, rank_of)
    ranks = sorted(chosen, reverse=True)
    out = []
    for i, rank in enumerate(ranks):
        record = chosen[rank]
        amount = 0.55 * i / max(len(ranks) - 1, 1) if len(ranks) > 1 else 0.0
        label = f"{name} ({'full' if not rank else f'r={rank}'})"
        out.append(Series(label, shade(method_color(record.get("method", name)), amount),
                          read_train_log(Path(record["run_dir"])), LINESTYLES[i % len(LINESTYLES)]))
    return out


def curves_figure(series: list, title: str):
    """Loss (left) and gradient norm (right) of every series, one shared legend outside the axes."""
    fig, axes = new_figure(2)
    plot_curves(axes[0, 0], axes[0, 1], series)
    axes[0, 0].set_title("training loss")
    axes[0, 1].set_title("gradient norm")
    fig.suptitle(title)
    outside_legend(fig, [axes[0, 0]])
    return fig


def figure1(records: list[dict], out: FigureSet) -> list[Drawn]:
    drawn = []
    candidates = [r for r in records if r.get("method") in FIG1_METHODS and is_main_run(r)]
    glue = {(task_name(r), r.get("model")) for r in candidates if is_glue(r)}
    for task, model in sorted(glue, key=str):
        out.skip(f"fig1_{task}_{model}", "GLUE curves are Figures 5/6 (by batch size)")
    groups = by((r for r in candidates if not is_glue(r)), lambda r: (task_name(r), str(r.get("model"))))
    if not groups:
        out.skip("fig1", "no FFT, LoRA or Astra runs (outside GLUE)")
    for (task, model), group in sorted(groups.items()):
        key = f"fig1_{safe_name(task)}_{safe_name(model)}"
        series = []
        for name, members in sorted(by(group, series_name).items(), key=lambda kv: method_sort_key(kv[0])):
            series += rank_series(members, name)
        if not series:
            out.skip(key, "no run of FFT, LoRA or Astra has a train_log.jsonl")
            continue
        title = f"Figure 1 — {task} / {model}"
        fig = curves_figure(series, title)
        caption = (f"Training loss and gradient norm per optimizer step for FFT, LoRA and Astra at every rank present "
                   f"({', '.join(s.label for s in series)}), {task} on {model}; first seed of each (method, rank)."
                   + synthetic_note(group))
        drawn.append(Drawn(key, "1", title, caption, fig))
    return drawn


# ------------------------------------------------------------------------------------------------- Figure 2
def rank_axis(ax, ranks: Iterable[int]) -> None:
    ranks = sorted(set(ranks))
    if not ranks:
        return
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks)
    ax.set_xticklabels([str(r) for r in ranks])
    ax.minorticks_off()
    ax.set_xlabel("LoRA rank r (log scale)")


def empty_panel(ax, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    ax.set_frame_on(False)


def rank_panel(ax, records: list[dict], value: Callable[[dict], float | None], ylabel: str) -> bool:
    """value vs rank per method (mean over seeds, std error bars with > 1 seed); FFT and the untrained model as
    horizontal reference lines. False when nothing could be drawn."""
    drew, ranks = False, []
    for name, members in sorted(by(records, series_name).items(), key=lambda kv: method_sort_key(kv[0])):
        method = members[0].get("method", name)
        per_rank: dict[int, list[float]] = defaultdict(list)
        for r in members:
            v = value(r)
            if v is not None:
                per_rank[rank_of(r)].append(v)
        if not per_rank:
            continue
        color = method_color(method)
        if method in ("fft", "base") or set(per_rank) == {0}:
            values = [v for vs in per_rank.values() for v in vs]
            mean, _ = mean_std(values)
            style = "--" if method == "fft" else ":"
            label = f"{name} ({'full fine-tuning' if method == 'fft' else 'no fine-tuning'}, {len(values)} seed(s))"
            ax.axhline(mean, color=color, linestyle=style, linewidth=1.1, label=label)
            drew = True
            continue
        xs = sorted(k for k in per_rank if k > 0)
        if not xs:
            continue
        stats = [mean_std(per_rank[x]) for x in xs]
        errors = [s[1] or 0.0 for s in stats]
        ax.errorbar(xs, [s[0] for s in stats], yerr=errors if any(errors) else None, color=color, marker="o",
                    label=name, capsize=3)
        ranks += xs
        drew = True
    if ranks:
        rank_axis(ax, ranks)
    ax.set_ylabel(ylabel)
    return drew


def calibration_panel(ax, records: list[dict]) -> str | None:
    """Astra calibrated on the task vs on WikiText-2, grouped bars per benchmark at the largest rank that has both.
    Returns the rank drawn, or None."""
    astra = [r for r in records if r.get("method") == "astra" and selection(r) in (None, "Tail")]
    wiki = [r for r in astra if calibration_source(r) == "wikitext2"]
    task = [r for r in astra if calibration_source(r) != "wikitext2"]
    common = sorted({rank_of(r) for r in wiki} & {rank_of(r) for r in task}, reverse=True)
    if not common:
        return None
    rank = common[0]
    groups = {"task": [r for r in task if rank_of(r) == rank], "wikitext2": [r for r in wiki if rank_of(r) == rank]}
    evaluators = ordered_evaluators(groups["task"] + groups["wikitext2"])
    if not evaluators:
        return None
    width = 0.38
    color = method_color("astra")
    drew = False
    for j, (source, members) in enumerate(groups.items()):
        xs, means, errs = [], [], []
        for i, evaluator in enumerate(evaluators):
            values = [v for v in (primary_value(r, evaluator) for r in members) if v is not None]
            if not values:
                continue
            mean, std = mean_std(values)
            xs.append(i + (j - 0.5) * width)
            means.append(mean)
            errs.append(std or 0.0)
        if not xs:
            continue
        label = f"calibrated on {'the task' if source == 'task' else 'WikiText-2'} ({len(members)} seed(s))"
        ax.bar(xs, means, width, yerr=errs if any(errs) else None, color=color if source == "task" else shade(color, 0.55),
               hatch=None if source == "task" else "//", edgecolor=color, label=label, capsize=3)
        drew = True
    ax.set_xticks(range(len(evaluators)))
    ax.set_xticklabels([evaluator_label(records, e) for e in evaluators])
    ax.set_xlabel("benchmark")
    ax.set_ylabel("accuracy (%)")
    ax.grid(axis="x", visible=False)
    return f"r={rank}" if drew else None


def ordered_evaluators(records: list[dict]) -> list[str]:
    """The evaluators with a primary score, in the order the records list them (a task's own order)."""
    found = {e: None for r in records for e in (r.get("metrics") or {}) if primary_value(r, e) is not None}
    return list(found)


def figure2(records: list[dict], out: FigureSet) -> list[Drawn]:
    drawn = []
    math_records = [r for r in records if r.get("task") == "math"]
    if not math_records:
        out.skip("fig2", "no runs of the math task")
        return drawn
    for model, group in sorted(by(math_records, lambda r: str(r.get("model"))).items()):
        key = f"fig2_{safe_name(model)}"
        main = [r for r in group if is_main_run(r)]
        evaluators = ordered_evaluators(main)
        n_panels = len(evaluators) + 2
        ncols = 2 if n_panels == 4 else min(n_panels, 3)
        nrows = math.ceil(n_panels / ncols)
        fig, grid = new_figure(ncols, nrows=nrows, width=4.4, height=3.3)
        axes = list(grid.flat)
        for spare in axes[n_panels:]:
            spare.set_visible(False)
        letters = "abcdefghij"
        panels, notes = [], []
        for i, evaluator in enumerate(evaluators):
            ax = axes[i]
            name = evaluator_label(main, evaluator)
            ok = rank_panel(ax, main, lambda r, e=evaluator: primary_value(r, e), f"{name} accuracy (%)")
            ax.set_title(f"({letters[i]}) {name} vs rank")
            if ok:
                panels.append(f"({letters[i]}) {name} accuracy vs LoRA rank per method")
            else:
                empty_panel(ax, f"no {name} scores")
        ax = axes[len(evaluators)]
        letter = letters[len(evaluators)]
        ax.set_title(f"({letter}) final training loss vs rank")
        trained = [r for r in main if r.get("method") != "base"]
        if rank_panel(ax, trained, final_loss, LOSS_LABEL):
            panels.append(f"({letter}) final training loss (mean of the last {FINAL_LOSS_WINDOW} logged steps) vs rank")
        else:
            empty_panel(ax, "no training losses")
            notes.append(f"({letter}): no training loss in any record")
        ax = axes[len(evaluators) + 1]
        letter = letters[len(evaluators) + 1]
        rank_drawn = calibration_panel(ax, group)
        ax.set_title(f"({letter}) calibration data" + (f" (Astra {rank_drawn})" if rank_drawn else ""))
        if rank_drawn:
            panels.append(f"({letter}) Astra calibrated on the task's training data vs on WikiText-2 ({rank_drawn})")
        else:
            empty_panel(ax, "no WikiText-2-calibrated Astra run\nwith a task-calibrated one at its rank")
            notes.append(f"({letter}): no Astra run calibrated on WikiText-2 with a task-calibrated run at the same rank")
        if not panels:
            plt.close(fig)
            out.skip(key, "no accuracy, loss or calibration comparison in the math runs of " + model)
            continue
        if not evaluators:
            notes.append("no accuracy panels: no math run has scores")
        title = f"Figure 2 — math / {model}"
        fig.suptitle(title)
        outside_legend(fig, axes[:n_panels], where="bottom", ncol=4)
        caption = ("; ".join(panels) + ". Mean over seeds, error bars = std where > 1 seed; FFT (dashed) and the "
                   "untrained model (dotted) as reference lines." + (" Empty: " + "; ".join(notes) + "." if notes else "")
                   + synthetic_note(group))
        drawn.append(Drawn(key, "2", title, caption, fig))
    return drawn


# ------------------------------------------------------------------------------------------------- Figure 3
EFFECTIVE_RANK_FILE = Path("analysis") / "effective_rank.json"


def read_effective_rank(record: dict) -> dict | None:
    if not record.get("run_dir"):
        return None
    path = Path(record["run_dir"]) / EFFECTIVE_RANK_FILE
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("base"), dict) or not isinstance(data.get("merged"), dict):
        log.warning("ignoring %s: no base/merged totals", path)
        return None
    return data


def layer_types(tables: Iterable[dict]) -> list[str]:
    found = {t for table in tables for t in table}
    return [t for t in LAYER_TYPE_ORDER if t in found] + sorted(found - set(LAYER_TYPE_ORDER))


def short_type(layer_type: str) -> str:
    return layer_type[: -len("_proj")] if layer_type.endswith("_proj") else layer_type


def figure3(records: list[dict], out: FigureSet) -> list[Drawn]:
    drawn = []
    analysed = [(r, data) for r in records if (data := read_effective_rank(r)) is not None]
    if not analysed:
        out.skip("fig3", "no run has analysis/effective_rank.json (python -m astra_repro.analysis effective-rank RUN_DIR)")
        return drawn
    for (task, model), group in sorted(by(analysed, lambda rd: (task_name(rd[0]), str(rd[0].get("model")))).items()):
        key = f"fig3_{safe_name(task)}_{safe_name(model)}"
        bars: dict[str, list[dict]] = {"base": [data["base"] for _, data in group]}
        for record, data in sorted(group, key=lambda rd: (method_sort_key(rd[0].get("method_label") or ""), seed_of(rd[0]))):
            name = series_name(record) if is_main_run(record) else str(record.get("method_label") or record.get("method"))
            bars.setdefault(name, []).append(data["merged"])
        types = layer_types(t for tables in bars.values() for t in tables)
        if not types:
            out.skip(key, "the effective_rank.json files hold no layer types")
            continue
        fig, axes = new_figure(1, width=max(6.0, 1.1 * len(types) + 2), height=3.6)
        ax = axes[0, 0]
        width = 0.8 / len(bars)
        for j, (name, tables) in enumerate(bars.items()):
            means, errs = [], []
            for t in types:
                values = [float(tab[t]) for tab in tables if isinstance(tab.get(t), (int, float))]
                mean, std = mean_std(values) if values else (float("nan"), None)
                means.append(mean)
                errs.append(std or 0.0)
            xs = [i + (j - (len(bars) - 1) / 2) * width for i in range(len(types))]
            label = "base (before fine-tuning)" if name == "base" else f"{name} (fine-tuned)"
            ax.bar(xs, means, width, yerr=errs if any(errs) else None, color=method_color(name), label=label, capsize=2)
        ax.set_xticks(range(len(types)))
        ax.set_xticklabels([short_type(t) for t in types])
        ax.set_xlabel("layer type")
        ax.set_ylabel("effective rank, summed over layers (Eq. 9)")
        ax.grid(axis="x", visible=False)
        samples = sorted({str(data.get("samples")) for _, data in group})
        title = f"Figure 3 — {task} / {model}"
        ax.set_title("effective rank of output activations before and after fine-tuning")
        fig.suptitle(title)
        outside_legend(fig, [ax])
        caption = (f"Effective rank (Eq. 9: exp of the entropy of the normalised eigenvalues of each layer's "
                   f"output-activation covariance), summed over the layers of each type, for the base model and the "
                   f"merged fine-tuned models ({', '.join(n for n in bars if n != 'base')}); {task} calibration data, "
                   f"{'/'.join(samples)} samples; mean over seeds where several." + synthetic_note(r for r, _ in group))
        drawn.append(Drawn(key, "3", title, caption, fig))
    return drawn


# ------------------------------------------------------------------------------------------------- Figure 4
def figure4(records: list[dict], out: FigureSet) -> list[Drawn]:
    drawn = []
    astra = [r for r in records if r.get("method") == "astra" and calibration_source(r) != "wikitext2"]
    groups = by(astra, lambda r: (task_name(r), str(r.get("model")), series_name(r), rank_of(r)))
    # A window other than the default (Tail) makes an ablation; the default runs of that group are its reference.
    ablations = {k: g for k, g in groups.items() if any(explicit_selection(r) and selection(r) != "Tail" for r in g)}
    if not ablations:
        out.skip("fig4", "no Astra run with a non-default eigenvector window (method_label 'astra (Top)', ... or "
                         "method.subspace)")
        return drawn
    per_task_model = by(ablations.items(), lambda kv: kv[0][:2])
    for (task, model), items in sorted(per_task_model.items()):
        several = len(items) > 1
        for (_, _, name, rank), group in sorted(items):
            key = f"fig4_{safe_name(task)}_{safe_name(model)}" + (f"_{safe_name(name)}_r{rank}" if several else "")
            chosen = first_seed(group, selection)
            if len(chosen) < 1:
                out.skip(key, "no eigenvector-window run has a train_log.jsonl")
                continue
            order = sorted(chosen, key=lambda s: (SELECTION_ORDER.index(s) if s in SELECTION_ORDER else 99, s))
            series = [Series(f"{name} ({sel})", selection_color(sel), read_train_log(Path(chosen[sel]["run_dir"])))
                      for sel in order]
            title = f"Figure 4 — {task} / {model}, {name} r={rank}"
            fig = curves_figure(series, title)
            caption = (f"Training loss and gradient norm of {name} (r={rank}) on {task} with {model}, adapters "
                       f"initialised from different eigenvector windows ({', '.join(order)}; Table 4); first seed "
                       f"of each." + synthetic_note(group))
            drawn.append(Drawn(key, "4", title, caption, fig))
    return drawn


# ------------------------------------------------------------------------------------------------- appendix
def method_series(records: list[dict]) -> list[Series]:
    """One line per method (main configuration, its most common rank, first seed with a log)."""
    out = []
    for name, members in sorted(by(records, series_name).items(), key=lambda kv: method_sort_key(kv[0])):
        rank = main_rank(members)
        chosen = first_seed([r for r in members if rank_of(r) == rank], lambda r: 0)
        if 0 in chosen:
            record = chosen[0]
            label = f"{name} ({'full' if not rank else f'r={rank}'})"
            out.append(Series(label, method_color(record.get("method", name)), read_train_log(Path(record["run_dir"]))))
    return out


def grid_of_curves(columns: list[tuple[str, list[Series]]], max_step: int | None = None):
    fig, axes = new_figure(len(columns), nrows=2, width=3.6, height=2.9)
    for j, (heading, series) in enumerate(columns):
        plot_curves(axes[0, j], axes[1, j], series, max_step)
        axes[0, j].set_title(f"{heading}: loss")
        axes[1, j].set_title(f"{heading}: grad norm")
        if j:  # the row's unit is on its first axes
            axes[0, j].set_ylabel("")
            axes[1, j].set_ylabel("")
    outside_legend(fig, list(axes.flat), where="bottom")
    return fig


def figures_glue(records: list[dict], out: FigureSet) -> list[Drawn]:
    drawn = []
    glue = [r for r in records if is_glue(r) and is_main_run(r)]
    if not glue:
        out.skip("fig5/fig6", "no GLUE runs")
        return drawn
    for (model, batch), group in sorted(by(glue, lambda r: (str(r.get("model")), r.get("global_batch_size"))).items(),
                                        key=lambda kv: (kv[0][0], kv[0][1] if isinstance(kv[0][1], int) else 10**9)):
        number = GLUE_BATCH_FIGURES.get(batch)
        key = f"fig{number}_{safe_name(model)}" if number else f"figG2_{safe_name(model)}_bs{batch}"
        tasks = by(group, lambda r: str(r.get("task_variant") or "?"))
        order = [t for t in GLUE_ORDER if t in tasks] + sorted(set(tasks) - set(GLUE_ORDER))
        columns = [(GLUE_NAMES.get(t, t), s) for t in order if (s := method_series(tasks[t]))]
        if not columns:
            out.skip(key, f"no GLUE run of {model} at batch {batch} has a train_log.jsonl")
            continue
        fig = grid_of_curves(columns, GLUE_MAX_STEP)
        label = f"Figure {number}" if number else "Figures 5/6 layout"
        title = f"{label} — GLUE / {model}, batch size {batch}"
        fig.suptitle(title)
        caption = (f"Training loss and gradient norm of {model} fine-tuned with different adaptation methods on "
                   f"{', '.join(c[0] for c in columns)} with batch size {batch}, first {GLUE_MAX_STEP} steps; one "
                   f"run per method (its most common rank, first seed)." + synthetic_note(group))
        drawn.append(Drawn(key, number or "G2", title, caption, fig))
    return drawn


def figures_models(records: list[dict], out: FigureSet) -> list[Drawn]:
    drawn = []
    trained = [r for r in records if is_main_run(r) and not is_glue(r)]
    if not trained:
        out.skip("fig7/fig8", "no runs outside GLUE")
        return drawn
    for model, group in sorted(by(trained, lambda r: str(r.get("model"))).items()):
        number = PAPER_APPENDIX_MODELS.get(model)
        key = f"fig{number}_{safe_name(model)}" if number else f"figG3_{safe_name(model)}"
        tasks = by(group, task_name)
        columns = [(t, s) for t in sorted(tasks) if (s := method_series(tasks[t]))]
        if not columns:
            out.skip(key, f"no run of {model} has a train_log.jsonl")
            continue
        fig = grid_of_curves(columns)
        label = f"Figure {number}" if number else "Figures 7/8 layout"
        title = f"{label} — {model}"
        fig.suptitle(title)
        caption = (f"Training loss and gradient norm of {model} fine-tuned with different adaptation methods on "
                   f"{', '.join(c[0] for c in columns)}; one run per method (its most common rank, first seed)."
                   + synthetic_note(group))
        drawn.append(Drawn(key, number or "G3", title, caption, fig))
    return drawn


# ------------------------------------------------------------------------------------------------- driver
BUILDERS: list[tuple[str, Callable[[list[dict], FigureSet], list[Drawn]]]] = [
    ("fig1", figure1), ("fig2", figure2), ("fig3", figure3), ("fig4", figure4),
    ("fig5/fig6", figures_glue), ("fig7/fig8", figures_models),
]
INDEX_FILE = "index.json"


def build_figures(records: list[dict], out_dir: Path) -> FigureSet:
    """Draw and save every figure the records support; each builder's failure is logged, never raised."""
    out_dir = Path(out_dir)
    result = FigureSet()
    records = [r for r in records if isinstance(r, dict)]
    _CONFIGS.clear()
    for name, builder in BUILDERS:
        with plt.rc_context(STYLE):
            try:
                drawn = builder(records, result)
            except Exception as err:  # noqa: BLE001 - partial records must not stop the other figures
                log.warning("figure %s failed: %s: %s", name, type(err).__name__, err)
                result.skip(name, f"{type(err).__name__}: {err}")
                plt.close("all")
                continue
            for item in drawn:
                try:
                    result.figures.append(save(item, out_dir))
                except Exception as err:  # noqa: BLE001
                    plt.close(item.figure)
                    result.skip(item.key, f"could not be saved: {type(err).__name__}: {err}")
    out_dir.mkdir(parents=True, exist_ok=True)
    index = {"figures": [asdict(f) for f in result.figures], "skipped": result.skipped}
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return result


def paper_figures(records: list[dict], out_dir: Path) -> list[Path]:
    """Every paper figure the records support, as PNG + PDF under out_dir (and index.json: path + caption per
    figure, and why each missing one was skipped). Returns the written image paths, PNG then PDF per figure."""
    result = build_figures(records, out_dir)
    return [Path(p) for f in result.figures for p in (f.png, f.pdf)]


def figure_index(out_dir: Path) -> list[dict]:
    """The figures `paper_figures` wrote to out_dir: [{"key", "number", "title", "caption", "png", "pdf"}], in
    the paper's order; [] when none were written."""
    try:
        return json.loads((Path(out_dir) / INDEX_FILE).read_text())["figures"]
    except (OSError, ValueError, KeyError):
        return []


# ------------------------------------------------------------------------------------------------- tables.py
def training_curves(records: list[dict], out_path: Path, title: str) -> Path | None:
    """One PNG with loss (left) and grad norm (right) against the optimiser step. The first seed of each
    (method, rank) is drawn, so curves compare inits rather than seeds. None when no run has a log."""
    chosen = first_seed(records, lambda r: (str(r.get("method_label") or r.get("method")), rank_of(r)))
    if not chosen:
        return None
    series = []
    for (label, rank), record in sorted(chosen.items(), key=lambda kv: (method_sort_key(kv[0][0]), -kv[0][1])):
        series.append(Series(f"{label} r={rank or 'full'}", method_color(record.get("method", label)),
                             read_train_log(Path(record["run_dir"]))))
    # Several ranks or labels of one method share its colour: tell them apart by line style.
    counts: dict[str, int] = defaultdict(int)
    for s in series:
        s.linestyle = LINESTYLES[counts[s.color] % len(LINESTYLES)]
        counts[s.color] += 1
    with plt.rc_context(STYLE):
        fig, axes = new_figure(2, width=4.6, height=3.6)
        plot_curves(axes[0, 0], axes[0, 1], series)
        axes[0, 0].set_title(f"{title}: loss")
        axes[0, 1].set_title(f"{title}: grad norm")
        outside_legend(fig, [axes[0, 0]])
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out_path, dpi=120, metadata={"Software": None})
        plt.close(fig)
    return out_path


def main(argv: list[str] | None = None) -> None:
    from astra_repro import runs
    from astra_repro.paths import results_dir

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=None, help="folder of run records (default results/runs)")
    parser.add_argument("--out", type=Path, default=None, help="output folder (default results/figures)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting is chatty at INFO
    out_dir = args.out or results_dir() / "figures"
    for path in paper_figures(runs.load_records(args.runs), out_dir):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
