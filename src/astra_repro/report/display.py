"""One table, four renderings: Markdown (results/tables/*.md), CSV (numbers, for analysis), LaTeX (booktabs, for a
paper) and HTML (the report page). Table builders fill a `DisplayTable` once; nothing here knows what a table means."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from astra_repro import runs

MISSING = "—"


@dataclass
class DisplayTable:
    name: str  # file stem: results/tables/<name>.md|.csv|.tex
    title: str
    columns: list[str]  # header of the shown table
    rows: list[list[str]]  # shown cells, already formatted
    data: pd.DataFrame  # the numbers behind them, one row per shown row (CSV)
    notes: list[str] = field(default_factory=list)
    column_groups: list[tuple[str, int]] = field(default_factory=list)  # LaTeX: (label, span) above the header

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{self.name}.{ext}" for ext in ("md", "csv", "tex")]
        for path, text in zip(paths, (self.markdown(), self.data.to_csv(index=False), self.latex())):
            runs.atomic_write_text(path, text)
        return paths

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines += [""] + self.notes
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        spec = "l" * min(2, len(self.columns)) + "r" * max(0, len(self.columns) - 2)
        lines = [f"% {self.title}", f"\\begin{{tabular}}{{{spec}}}", "\\toprule"]
        if self.column_groups:
            groups, rules, start = [], [], 1
            for label, span in self.column_groups:
                groups.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(label)}}}" if span > 1 else latex_escape(label))
                if label and span > 1:
                    rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
                start += span
            lines += [" & ".join(groups) + " \\\\", " ".join(rules)]
        lines += [" & ".join(latex_escape(c) for c in self.columns) + " \\\\", "\\midrule"]
        lines += [" & ".join(latex_escape(cell) for cell in row) + " \\\\" for row in self.rows]
        lines += ["\\bottomrule", "\\end{tabular}"]
        lines += [f"% {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in self.rows)
        notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in self.notes)
        return (f"<h3 id='{html.escape(self.name)}'>{html.escape(self.title)}</h3>"
                f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}")


LATEX_SPECIALS = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}",
                  "±": r"$\pm$", "—": "--", "Δ": r"$\Delta$", "−": "$-$",
                  # protocol marks (report/protocol.py)
                  "†": r"$^\dagger$", "‡": r"$^\ddagger$", "§": r"$^\S$", "¶": r"$^\P$", "‖": r"$^\|$",
                  "°": r"$^\circ$"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def mean_std(values: list[float]) -> str:
    """`mean ± std [n]` over seeds (sample std), the plain value for one seed, — for none."""
    if not values:
        return MISSING
    series = pd.Series(values, dtype=float)
    if len(series) == 1:
        return f"{series.iloc[0]:.2f} [1]"
    return f"{series.mean():.2f} ± {series.std(ddof=1):.2f} [{len(series)}]"


def number(value: float | None, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return MISSING
    return f"{value:+.2f}".replace("-", "−") if signed else f"{value:.2f}"
