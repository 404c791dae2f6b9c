"""`make report`: one self-contained HTML page (results/report.html) with the paper's tables, the cost tables, the
figures (embedded, so the page opens offline and can be mailed as one file) and the fidelity options every run
used (which eigenvectors, which calibration data, normalisation, centring, ... : docs/astra_fidelity.md).

    python -m astra_repro.report                     # results/runs -> results/report.html
    python -m astra_repro.report --runs DIR --out page.html
"""

from __future__ import annotations

import argparse
import base64
import datetime
import html
import sys
from pathlib import Path

from astra_repro import runs
from astra_repro.paths import results_dir
from astra_repro.report import protocol
from astra_repro.report.display import DisplayTable

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1400px;
       color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.5em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border-top: 1px solid #ddd; border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { font-size: 0.85em; color: #555; margin: 0.2em 0; }
figure { display: inline-block; margin: 1em; max-width: 46%; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; } figcaption { font-size: 0.85em; color: #444; }
nav a { margin-right: 1em; }
"""
FIDELITY_SKIP = {"name", "label", "description", "hp"}
PROTOCOL_NOTE = (f"A mark after our value ({', '.join(protocol.ORDER)}) says that the cell's runs depart from the "
                 "paper's protocol in: " + ", ".join(f"{m} {protocol.SHORT[m]}" for m in protocol.ORDER)
                 + f". The legend under each table says what differs; a marked cell's Δ (and that of an Avg over it) "
                 f"is {protocol.NOT_COMPARABLE}, not comparable.")


def fidelity_rows(records: list[dict]) -> DisplayTable:
    """Per run: the method's options and calibration settings from its config.yaml, as `key=value` lists."""
    import pandas as pd

    from astra_repro.report.figures import run_config

    rows, data = [], []
    for r in sorted(records, key=lambda r: (r.get("task", ""), r.get("model", ""), str(r.get("method_label")), r.get("seed", 0))):
        plan = run_config(r)
        method = {k: v for k, v in (plan.get("method") or {}).items() if k not in FIDELITY_SKIP}
        calibration = plan.get("calibration") or {}
        options = ", ".join(f"{k}={v}" for k, v in sorted(method.items())) or "—"
        calib = ", ".join(f"{k}={v}" for k, v in sorted(calibration.items()) if not isinstance(v, dict)) or "—"
        rows.append([r.get("run_name", Path(r.get("run_dir", "?")).name), r.get("task", "?"), r.get("model", "?"),
                     str(r.get("method_label", r.get("method"))), options, calib])
        data.append({"run": rows[-1][0], "method_options": options, "calibration": calib})
    return DisplayTable("fidelity", "Fidelity options of every run", ["run", "task", "model", "method", "method options",
                        "calibration"], rows, pd.DataFrame(data),
                        ["Reference behaviour and the paper-vs-code choices behind each option: docs/astra_fidelity.md."])


def embedded_image(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def build_page(records: list[dict], tables: list[DisplayTable], cost: list[DisplayTable], figures: list[dict],
               studies: tuple[list[DisplayTable], list[Path]] = ([], [])) -> str:
    """`figures`: entries of `report.figures.figure_index` (png path, title, caption); `studies`: the committed
    studies' tables and figure PNGs (report/study.py)."""
    synthetic = sum(1 for r in records if "synthetic" in {r.get("data", {}).get("data_source")})
    sections = [
        ("tables", "The paper's tables", "".join(t.html() for t in tables) or "<p>No run fills a paper table yet.</p>"),
        ("studies", "Studies (real data, learning-rate grid, seeds)", "".join(t.html() for t in studies[0]) + "".join(
            f"<figure><img src='{embedded_image(Path(png))}' alt='{html.escape(Path(png).stem)}'><figcaption>"
            f"{html.escape(Path(png).stem)}</figcaption></figure>" for png in studies[1]
        ) or "<p>No committed study (results/studies/).</p>"),
        ("cost", "Cost", "".join(t.html() for t in cost) or "<p>No runs.</p>"),
        ("figures", "Figures", "".join(
            f"<figure><img src='{embedded_image(Path(f['png']))}' alt='{html.escape(f['title'])}'><figcaption><b>"
            f"{html.escape(f['title'])}</b> {html.escape(f['caption'])}</figcaption></figure>" for f in figures
        ) or "<p>No figures: the records support none (see results/figures/index.json for why).</p>"),
        ("fidelity", "Fidelity options", fidelity_rows(records).html()),
    ]
    nav = "".join(f"<a href='#{key}'>{html.escape(title)}</a>" for key, title, _ in sections)
    body = "".join(f"<h2 id='{key}'>{html.escape(title)}</h2>{content}" for key, title, content in sections)
    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>astra_repro report</title>"
        f"<style>{STYLE}</style></head><body><h1>astra_repro: reproduction report</h1>"
        f"<p>{len(records)} finished runs ({synthetic} on synthetic training data), generated {when}. Cells are our "
        "mean ± std over seeds [seeds], the paper's value and Δ = ours − paper.</p>"
        f"<p>{html.escape(PROTOCOL_NOTE)}</p>"
        f"<nav>{nav}</nav>{body}</body></html>\n"
    )


def write_report(runs_root: Path | None = None, out: Path | None = None, figures_dir: Path | None = None) -> Path:
    from astra_repro.report.cost import cost_tables
    from astra_repro.report.figures import figure_index, paper_figures
    from astra_repro.report.paper_tables import paper_tables
    from astra_repro.report.study import write_study_outputs

    records = runs.load_records(runs_root)
    out = out or results_dir() / "report.html"
    figures_dir = figures_dir or out.parent / "figures"
    if records:
        paper_figures(records, figures_dir)
    _, study_tables, study_figures = write_study_outputs(out.parent / "tables", figures_dir)
    page = build_page(records, paper_tables(records), cost_tables(records), figure_index(figures_dir) if records else [],
                      (study_tables, study_figures))
    runs.atomic_write_text(out, page)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=None, help="folder of run records (default results/runs)")
    parser.add_argument("--out", type=Path, default=None, help="the page to write (default results/report.html)")
    parser.add_argument("--figures", type=Path, default=None, help="figure folder (default next to the page)")
    args = parser.parse_args(argv)
    out = write_report(args.runs, args.out, args.figures)
    print(f"wrote {out} (open it in a browser; it needs no network)", file=sys.stderr)


if __name__ == "__main__":
    main()
