"""The paper's figures from fixture run folders (tests/run_fixtures.py): which files a full sweep writes, what they
show, that partial records never raise, Figure 3 from effective_rank.json, one colour per method everywhere."""

import json
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from PIL import Image

from astra_repro import runs
from astra_repro.report import figures
from astra_repro.report.figures import figure_index, method_color, paper_figures
from run_fixtures import paper_like_runs, write_run

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SWEEP_FIGURES = ["fig1_math_llama2_7b", "fig1_code_llama2_7b", "fig1_commonsense_llama3_8b", "fig2_llama2_7b",
                 "fig4_math_llama2_7b", "fig5_t5_base", "fig6_t5_base", "fig7_llama2_7b", "fig8_llama3_8b"]


def assert_image_pair(out_dir: Path, key: str) -> None:
    png, pdf = out_dir / f"{key}.png", out_dir / f"{key}.pdf"
    assert png.read_bytes()[:8] == PNG_MAGIC, key
    with Image.open(png) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        assert image.width > 300 and image.height > 200
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and b"%%EOF" in data[-64:] and len(data) > 2000, key


def keys(out_dir: Path) -> set[str]:
    return {p.stem for p in out_dir.glob("*.png")}


def skipped(out_dir: Path) -> dict[str, str]:
    return {s["figure"]: s["reason"] for s in json.loads((out_dir / "index.json").read_text())["skipped"]}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The paper-like sweep and every figure drawn from it (drawn once: PNG + PDF cost ~1 s per figure here)."""
    root = paper_like_runs(tmp_path_factory.mktemp("sweep") / "runs")
    records = runs.load_records(root)
    out_dir = root.parent / "figures"
    return records, out_dir, paper_figures(records, out_dir)


@pytest.fixture
def drawn():
    """Builds figures without saving them, and closes them afterwards."""
    made = []

    def build(builder, records):
        result = figures.FigureSet()
        with plt.rc_context(figures.STYLE):
            items = builder(records, result)
        made.extend(items)
        return {item.key: item for item in items}, result

    yield build
    for item in made:
        plt.close(item.figure)


def legend_lines(figure) -> dict[str, str]:
    """label -> colour of every labelled line (errorbar lines included) in a figure."""
    out = {}
    for ax in figure.axes:
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):
                out[line.get_label()] = to_hex(line.get_color())
        for container in ax.containers:
            label = container.get_label()
            if label and not label.startswith("_") and hasattr(container, "lines"):
                out[label] = to_hex(container.lines[0].get_color())
    return out


# ------------------------------------------------------------------------------------------------- full sweep
def test_sweep_writes_figures_1_2_4_and_the_appendix_as_png_and_pdf(sweep):
    _, out_dir, paths = sweep
    for key in SWEEP_FIGURES:
        assert_image_pair(out_dir, key)
    assert "fig3_math_llama2_7b" not in keys(out_dir)  # no effective_rank.json in the sweep
    assert "effective_rank.json" in skipped(out_dir)["fig3"]
    # what is returned is what was written: PNG then PDF per figure, nothing else
    assert sorted(p.name for p in paths) == sorted(p.name for p in out_dir.iterdir() if p.suffix in (".png", ".pdf"))
    assert all(p.stat().st_size > 0 for p in paths)


def test_figure_index_gives_paths_and_captions_for_a_report(sweep):
    _, out_dir, paths = sweep
    index = figure_index(out_dir)
    assert [e["key"] for e in index if e["key"] in SWEEP_FIGURES] != []
    assert {Path(e["png"]) for e in index} | {Path(e["pdf"]) for e in index} == set(paths)
    by_key = {e["key"]: e for e in index}
    assert by_key["fig2_llama2_7b"]["number"] == "2"
    assert "WikiText-2" in by_key["fig2_llama2_7b"]["caption"] and "GSM8K" in by_key["fig2_llama2_7b"]["caption"]
    assert "Top" in by_key["fig4_math_llama2_7b"]["caption"] and "Tail" in by_key["fig4_math_llama2_7b"]["caption"]
    assert "batch size 32" in by_key["fig5_t5_base"]["caption"] and "batch size 128" in by_key["fig6_t5_base"]["caption"]
    # synthetic-data runs are flagged, paper-data figures are not
    assert "synthetic" in by_key["fig1_math_smollm2_135m"]["caption"]
    assert "synthetic" not in by_key["fig1_math_llama2_7b"]["caption"]
    assert figure_index(out_dir.parent / "nothing_here") == []


def test_figure1_draws_fft_lora_and_astra_at_every_rank_only(sweep, drawn):
    records, _, _ = sweep
    made, _ = drawn(figures.figure1, records)
    lines = legend_lines(made["fig1_math_llama2_7b"].figure)
    assert set(lines) == {"fft (full)", "lora (r=128)", "lora (r=32)", "lora (r=8)", "astra (r=128)", "astra (r=32)",
                          "astra (r=8)"}  # no pissa, no Table 4 windows, no WikiText-2 calibration
    loss_ax = made["fig1_math_llama2_7b"].figure.axes[0]
    line = next(line for line in loss_ax.get_lines() if line.get_label() == "lora (r=128)")
    first = json.loads((Path(next(r["run_dir"] for r in records if r["method"] == "lora" and r["rank"] == 128
                                  and r["seed"] == 1 and r["task"] == "math" and r["model"] == "llama2_7b"))
                        / "train_log.jsonl").read_text().splitlines()[0])
    assert line.get_ydata()[0] == first["loss"]  # first seed's log
    # Astra's main runs only: the default window, calibrated on the task (not "astra (wikitext2)", not a window)
    default = next(r for r in records if r["method_label"] == "astra" and r["rank"] == 128 and r["seed"] == 1
                   and r["task"] == "math" and r["model"] == "llama2_7b")
    astra = next(line for line in loss_ax.get_lines() if line.get_label() == "astra (r=128)")
    assert list(astra.get_ydata()) == [row["loss"] for row in figures.read_train_log(Path(default["run_dir"]))]
    main_runs = {r["method_label"]: figures.is_main_run(r) for r in records if r["model"] == "llama2_7b"}
    assert main_runs["astra"] and main_runs["lora"] and main_runs["fft"]
    assert not any(main_runs[label] for label in ("astra (wikitext2)", "astra (Top)", "astra (Random)",
                                                  "astra (Upper Quartile (Q3))"))
    assert loss_ax.get_xlabel() == figures.STEP_LABEL and "nats" in loss_ax.get_ylabel()


def test_figure2_panels_mean_over_seeds_and_calibration_bars(sweep, drawn):
    records, _, _ = sweep
    made, _ = drawn(figures.figure2, records)
    fig = made["fig2_llama2_7b"].figure
    gsm = fig.axes[0]
    astra = next(c for c in gsm.containers if c.get_label() == "astra")
    xs, ys = astra.lines[0].get_data()
    assert list(xs) == [8, 32, 128] and ys[-1] == pytest.approx(47.0)  # 46.5, 47, 47.5 over three seeds
    assert astra.has_yerr
    calibration = fig.axes[3]
    heights = {c.get_label(): [round(p.get_height(), 2) for p in c.patches] for c in calibration.containers
               if c.get_label() and not c.get_label().startswith("_")}
    assert heights["calibrated on WikiText-2 (1 seed(s))"] == [46.0, 7.0]
    assert heights["calibrated on the task (3 seed(s))"] == [47.0, 7.5]


def test_figure4_shows_the_eigenvector_windows(sweep, drawn):
    records, _, _ = sweep
    made, _ = drawn(figures.figure4, records)
    assert set(made) == {"fig4_math_llama2_7b"}
    lines = legend_lines(made["fig4_math_llama2_7b"].figure)
    assert set(lines) == {"astra (Top)", "astra (Upper Quartile (Q3))", "astra (Tail)", "astra (Random)"}
    assert lines["astra (Tail)"] == method_color("astra")


def test_figure4_needs_a_window_other_than_the_default(tmp_path, drawn):
    root = tmp_path / "runs"  # the runner labels every default Astra run "astra (Tail)": no ablation in that
    write_run(root, "math", "llama2_7b", "astra", 8, 1, {"gsm8k": 40.0}, method_label="astra (Tail)")
    write_run(root, "math", "llama2_7b", "astra", 8, 2, {"gsm8k": 41.0}, method_label="astra (Tail)")
    made, result = drawn(figures.figure4, runs.load_records(root))
    assert made == {} and "non-default eigenvector window" in result.skipped[0]["reason"]
    write_run(root, "math", "llama2_7b", "astra", 8, 1, {"gsm8k": 39.0}, method_label="astra (Medium)")
    made, _ = drawn(figures.figure4, runs.load_records(root))
    assert set(legend_lines(made["fig4_math_llama2_7b"].figure)) == {"astra (Medium)", "astra (Tail)"}


def test_glue_figures_cut_at_300_steps_and_split_by_batch(tmp_path, drawn):
    root = tmp_path / "runs"
    for batch in (32, 128):
        for task in ("sst2", "mrpc"):
            write_run(root, "glue", "t5_base", "lora", 8, 1, {"glue_dev": 80.0}, glue_task=task,
                      global_batch_size=batch, steps=400)
    made, _ = drawn(figures.figures_glue, runs.load_records(root))
    assert set(made) == {"fig5_t5_base", "fig6_t5_base"}
    ax = made["fig5_t5_base"].figure.axes[0]
    assert ax.get_title() == "SST-2: loss" and ax.get_xlim()[1] == 300
    assert max(max(line.get_xdata()) for line in ax.get_lines()) == 300  # the first 300 steps of 400


# ------------------------------------------------------------------------------------------------- colours
def test_method_colours_are_fixed_distinct_and_shared_by_labels():
    known = ["base", "fft", "lora", "astra", "pissa", "corda", "dora", "rslora", "loraga", "milora", "olora"]
    colours = [method_color(m) for m in known]
    assert len(set(colours)) == len(known)
    assert method_color("astra") == method_color("astra (Tail)") == method_color("astra (wikitext2)") == "#d62728"
    assert method_color("LoRA") == method_color("lora")
    unknown = method_color("my_new_method")
    assert unknown == method_color("my_new_method") and unknown in figures.FALLBACK_COLORS


def test_a_method_has_the_same_colour_in_every_figure(sweep, drawn):
    records, _, _ = sweep
    fig1, _ = drawn(figures.figure1, records)
    fig2, _ = drawn(figures.figure2, records)
    appendix, _ = drawn(figures.figures_models, records)
    in_fig1 = legend_lines(fig1["fig1_math_llama2_7b"].figure)
    in_fig2 = legend_lines(fig2["fig2_llama2_7b"].figure)
    in_fig7 = legend_lines(appendix["fig7_llama2_7b"].figure)
    for method, rank in (("lora", 128), ("astra", 128)):
        colour = method_color(method)
        assert in_fig1[f"{method} (r={rank})"] == colour
        assert in_fig2[method] == colour
        assert in_fig7[f"{method} (r={rank})"] == colour
    assert in_fig1["fft (full)"] == in_fig7["fft (full)"] == method_color("fft")
    assert in_fig2["pissa"] == method_color("pissa")


# ------------------------------------------------------------------------------------------------- partial records
def test_a_single_run_gives_its_figures_and_skips_the_rest(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "math", "llama2_7b", "lora", 16, 1, {"gsm8k": 30.0, "math": 4.0})
    out_dir = tmp_path / "figures"
    paper_figures(runs.load_records(root), out_dir)
    assert keys(out_dir) == {"fig1_math_llama2_7b", "fig2_llama2_7b", "fig7_llama2_7b"}
    for key in keys(out_dir):
        assert_image_pair(out_dir, key)
    reasons = skipped(out_dir)
    assert {"fig3", "fig4", "fig5/fig6"} <= set(reasons)


def test_runs_without_logs_metrics_or_math_raise_nothing(tmp_path):
    root = tmp_path / "runs"
    # commonsense only (no math task: no Figure 2); one run without a train log, one without metrics, seed or rank
    write_run(root, "commonsense", "llama3_8b", "lora", 32, 1, {"boolq": 70.0})
    no_log = write_run(root, "commonsense", "llama3_8b", "astra", 32, 1, {"boolq": 72.0}, steps=0)
    bare = write_run(root, "commonsense", "llama3_8b", "fft", 0, 1, {"boolq": 75.0})
    record = json.loads((bare / "metrics.json").read_text())
    for k in ("metrics", "eval_data", "train", "seed", "rank", "method_label"):
        record.pop(k)
    (bare / "metrics.json").write_text(json.dumps(record))
    (bare / "config.yaml").unlink()
    with open(bare / "train_log.jsonl", "a") as log:
        log.write("{not json\n")
    assert not (no_log / "train_log.jsonl").exists()
    out_dir = tmp_path / "figures"
    paper_figures(runs.load_records(root), out_dir)
    assert keys(out_dir) == {"fig1_commonsense_llama3_8b", "fig8_llama3_8b"}
    assert skipped(out_dir)["fig2"] == "no runs of the math task"
    index = {e["key"]: e for e in figure_index(out_dir)}
    assert "lora (r=32)" in index["fig1_commonsense_llama3_8b"]["caption"]
    assert "fft (full)" in index["fig1_commonsense_llama3_8b"]["caption"]
    assert "astra" not in index["fig1_commonsense_llama3_8b"]["caption"]  # its run has no log


def test_math_runs_without_metrics_or_logs_still_give_what_they_can(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "math", "llama2_7b", "astra", 8, 1, {}, steps=0)  # no scores, no log, no train loss
    write_run(root, "math", "llama2_7b", "lora", 8, 1, {}, steps=20)  # no scores, a log
    out_dir = tmp_path / "figures"
    paper_figures(runs.load_records(root), out_dir)
    assert {"fig1_math_llama2_7b", "fig2_llama2_7b"} <= keys(out_dir)
    caption = {e["key"]: e for e in figure_index(out_dir)}["fig2_llama2_7b"]["caption"]
    assert "final training loss" in caption and "accuracy vs" not in caption
    # nothing at all, and records that are barely records
    assert paper_figures([], tmp_path / "empty") == []
    assert paper_figures([{"task": "math"}, {"run_dir": str(tmp_path / "gone"), "method": "lora"}], tmp_path / "junk") == []


# ------------------------------------------------------------------------------------------------- Figure 3
def test_figure3_from_effective_rank_json(tmp_path, drawn):
    root = tmp_path / "runs"
    values = {"lora": {"q_proj": 900.0, "down_proj": 1500.0}, "astra": {"q_proj": 1100.0, "down_proj": 1700.0}}
    for method, merged in values.items():
        run = write_run(root, "math", "llama2_7b", method, 128, 1, {"gsm8k": 40.0})
        (run / "analysis").mkdir()
        (run / "analysis" / "effective_rank.json").write_text(json.dumps({
            "samples": 8, "base": {"q_proj": 800.0, "down_proj": 1400.0}, "merged": merged,
            "per_layer": {"base": {}, "merged": {}}}))
    # a run whose file is damaged is left out, not fatal
    broken = write_run(root, "math", "llama2_7b", "pissa", 128, 1, {"gsm8k": 40.0})
    (broken / "analysis").mkdir()
    (broken / "analysis" / "effective_rank.json").write_text("{")
    records = runs.load_records(root)
    out_dir = tmp_path / "figures"
    paper_figures(records, out_dir)
    assert_image_pair(out_dir, "fig3_math_llama2_7b")
    made, _ = drawn(figures.figure3, records)
    ax = made["fig3_math_llama2_7b"].figure.axes[0]
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}
    assert bars == {"base (before fine-tuning)": [800.0, 1400.0], "lora (fine-tuned)": [900.0, 1500.0],
                    "astra (fine-tuned)": [1100.0, 1700.0]}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["q", "down"]
    colours = {c.get_label(): to_hex(c.patches[0].get_facecolor()) for c in ax.containers}
    assert colours["lora (fine-tuned)"] == method_color("lora") and colours["astra (fine-tuned)"] == method_color("astra")
    shutil.rmtree(out_dir)


def test_training_curves_for_tables_keeps_its_contract(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "math", "llama2_7b", "lora", 8, 1, {"gsm8k": 40.0})
    out = figures.training_curves(runs.load_records(root), tmp_path / "f" / "math_training.png", "math / llama2_7b")
    assert out == tmp_path / "f" / "math_training.png" and out.read_bytes()[:8] == PNG_MAGIC
    no_log = tmp_path / "nolog"
    write_run(no_log, "math", "llama2_7b", "lora", 8, 1, {"gsm8k": 40.0}, steps=0)
    assert figures.training_curves(runs.load_records(no_log), tmp_path / "g.png", "x") is None
