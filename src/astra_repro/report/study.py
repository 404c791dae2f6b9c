"""A study's tables and figure (the study itself, its runs and the choice of each method's rate: astra_repro/study.py).

Outputs (`study_tables`, `study_figure`), all on the REPORTED half of the items (the half that chose no rate):
- each method at its best rate: mean +- std over the stage-2 seeds, the difference vs the reference method at its
  own best rate with the bootstrap `hierarchical.compare_runs` chooses (seeds and items with >= 2 seeds per side,
  items only otherwise), and forgetting;
- each method at the paper's rate (the grid's seed for every method), the same columns;
- the study's contrasts (e.g. the theorem's subspace minus the released one) at both;
- the grid: every method at every rate (score / forgetting), the chosen rate marked;
- a figure of the score and forgetting against the learning rate.
`make tables` and `make report` build them for every folder under results/studies/ named after a study sweep.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from pathlib import Path

import pandas as pd

from astra_repro.paths import results_dir
from astra_repro.report.display import MISSING, DisplayTable
from astra_repro.study import Study, StudyRun, best_rates, load_runs, mean_of, progress, rate_key, report_half, runs_at

SCORE_COLUMN = "score (seeds)"


# ---------------------------------------------------------------------------------------------------- the tables
def _mean_std(values: list[float], digits: int) -> str:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return MISSING
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _comparison(runs_a: list[StudyRun], runs_b: list[StudyRun], half: str):
    from astra_repro.report.hierarchical import compare_runs

    if not runs_a or not runs_b:
        return None
    return compare_runs([r.half(half) for r in runs_a], [r.half(half) for r in runs_b])


def _comparison_cells(comparison) -> list[str]:
    if comparison is None:
        return [MISSING, MISSING, MISSING]
    mark = " *" if comparison.significant else ""
    return [f"{comparison.difference:+.2f} [{comparison.low:+.2f}, {comparison.high:+.2f}]{mark}",
            f"{comparison.p_value:.3g}", comparison.bootstrap]


def _comparison_data(comparison) -> dict:
    if comparison is None:
        return {}
    return {"diff": comparison.difference, "diff_low": comparison.low, "diff_high": comparison.high,
            "p_value": comparison.p_value, "bootstrap": comparison.bootstrap, "significant": comparison.significant}


def _header_note(study: Study, n_items: int) -> str:
    half = report_half(study)
    return (f"{study.evaluator}/{study.metric} on the {half}-position half of the items ({n_items // 2 if half == 'odd' else (n_items + 1) // 2} "
            f"of {n_items}); each method's rate was chosen on the {study.select_on}-position half. "
            f"Forgetting: mean per-token CE on general text, trained minus untouched base (lower is better).")


def grid_table(study: Study, study_runs: list[StudyRun]) -> DisplayTable:
    half = report_half(study)
    seed = study.grid_seeds[0]
    columns = ["Method", *(f"lr {lr:g}" + (" (paper)" if study.paper_lr and rate_key(lr) == rate_key(study.paper_lr) else "")
                           for lr in study.rates)]
    rows, data = [], []
    best = best_rates(study, study_runs)
    for variant in study.variants:
        row = [variant.display]
        for lr in study.rates:
            found = runs_at(study_runs, variant.key, lr, {seed})
            if not found:
                row.append(MISSING)
                continue
            run = found[0]
            score = mean_of(run.half(half))
            chosen = best[variant.key].lr is not None and rate_key(best[variant.key].lr) == rate_key(lr)
            forgetting = f" / {run.forgetting:+.3f}" if run.forgetting is not None else ""
            row.append(f"{score:.2f}{forgetting}" + (" ◆" if chosen else ""))
            data.append({"method": variant.key, "lr": lr, "seed": seed, "score_report_half": score,
                         "score_selection_half": mean_of(run.half(study.select_on)), "forgetting": run.forgetting,
                         "chosen": chosen, "run": run.record.get("run_name")})
        rows.append(row)
    n_items = len(study_runs[0].outcomes) if study_runs else 0
    notes = [_header_note(study, n_items), f"Cells: score / forgetting at seed {seed}; ◆ = the rate chosen on the "
             f"selection half (the score shown is the other half's)."]
    return DisplayTable(f"{study.name}_grid", f"Study {study.name}: every method at every learning rate",
                        columns, rows, pd.DataFrame(data), notes)


def _baseline_row(study: Study, study_runs: list[StudyRun], columns: list[str]) -> tuple[list[list[str]], list[dict]]:
    """The untrained model's row (score on the reported half; its forgetting is 0 by construction)."""
    if study.baseline is None:
        return [], []
    found = [r for r in study_runs if r.variant.key == study.baseline.key]
    if not found:
        return [], []
    score = mean_of(found[0].half(report_half(study)))
    row = [study.baseline.display, *[""] * (len(columns) - 1)]
    row[columns.index(SCORE_COLUMN)] = f"{score:.2f} (1)"
    return [row], [{"method": study.baseline.key, "score_mean": score, "n_seeds": 1}]


def best_rate_table(study: Study, study_runs: list[StudyRun]) -> DisplayTable:
    half = report_half(study)
    best = best_rates(study, study_runs)
    reference_best = best[study.reference].lr
    reference_runs = runs_at(study_runs, study.reference, reference_best, set(study.seeds))
    columns = ["Method", "best lr", SCORE_COLUMN, f"Δ vs {study.variant(study.reference).display} [95% CI]", "p",
               "bootstrap", "forgetting"]
    rows, data = _baseline_row(study, study_runs, columns)
    for variant in study.variants:
        chosen = best[variant.key]
        found = runs_at(study_runs, variant.key, chosen.lr, set(study.seeds))
        scores = [mean_of(r.half(half)) for r in found]
        comparison = None if variant.key == study.reference else _comparison(found, reference_runs, half)
        rows.append([variant.display, MISSING if chosen.lr is None else f"{chosen.lr:g}",
                     f"{_mean_std(scores, 2)} ({len(found)})" if found else MISSING,
                     *(_comparison_cells(comparison) if variant.key != study.reference else ["(reference)", "", ""]),
                     _mean_std([r.forgetting for r in found], 3)])
        data.append({"method": variant.key, "best_lr": chosen.lr, "selection_score": chosen.selection_score,
                     "n_seeds": len(found), "seeds": [r.seed for r in found],
                     "score_mean": statistics.fmean(scores) if scores else None,
                     "score_std": statistics.stdev(scores) if len(scores) > 1 else None,
                     "forgetting_mean": statistics.fmean([r.forgetting for r in found if r.forgetting is not None])
                     if any(r.forgetting is not None for r in found) else None, **_comparison_data(comparison)})
    n_items = len(study_runs[0].outcomes) if study_runs else 0
    notes = [_header_note(study, n_items),
             f"Seeds {', '.join(map(str, study.seeds))} at each method's own best rate; score and forgetting are mean ± std "
             "over them. Δ in points, percentile interval; * = the interval excludes 0. Hierarchical = seeds and items "
             "resampled (>= 2 seeds per side), items = items only (one seed: the interval ignores seed variance)."]
    return DisplayTable(f"{study.name}_best_rate", f"Study {study.name}: each method at its best learning rate",
                        columns, rows, pd.DataFrame(data), notes)


def paper_rate_table(study: Study, study_runs: list[StudyRun]) -> DisplayTable | None:
    if study.paper_lr is None:
        return None
    half = report_half(study)
    grid_seeds = set(study.grid_seeds)  # the same seeds for every method (a best rate's extra seeds left out)
    reference_runs = runs_at(study_runs, study.reference, study.paper_lr, grid_seeds)
    columns = ["Method", SCORE_COLUMN, f"Δ vs {study.variant(study.reference).display} [95% CI]", "p", "bootstrap",
               "forgetting"]
    rows, data = _baseline_row(study, study_runs, columns)
    for variant in study.variants:
        found = runs_at(study_runs, variant.key, study.paper_lr, grid_seeds)
        scores = [mean_of(r.half(half)) for r in found]
        comparison = None if variant.key == study.reference else _comparison(found, reference_runs, half)
        rows.append([variant.display, f"{_mean_std(scores, 2)} ({len(found)})" if found else MISSING,
                     *(_comparison_cells(comparison) if variant.key != study.reference else ["(reference)", "", ""]),
                     _mean_std([r.forgetting for r in found], 3)])
        data.append({"method": variant.key, "lr": study.paper_lr, "n_seeds": len(found),
                     "score_mean": statistics.fmean(scores) if scores else None, **_comparison_data(comparison)})
    n_items = len(study_runs[0].outcomes) if study_runs else 0
    return DisplayTable(f"{study.name}_paper_rate",
                        f"Study {study.name}: every method at the paper's learning rate ({study.paper_lr:g})",
                        columns, rows, pd.DataFrame(data),
                        [_header_note(study, n_items), f"The grid's seed(s) {', '.join(map(str, study.grid_seeds))} for every method."])


def contrast_table(study: Study, study_runs: list[StudyRun]) -> DisplayTable | None:
    if not study.contrasts:
        return None
    half = report_half(study)
    best = best_rates(study, study_runs)
    columns = ["Contrast", "at", "Δ [95% CI]", "p", "bootstrap"]
    rows, data = [], []
    for a, b in study.contrasts:
        name = f"{study.variant(a).display} − {study.variant(b).display}"
        settings = [("best rates", runs_at(study_runs, a, best[a].lr, set(study.seeds)), runs_at(study_runs, b, best[b].lr, set(study.seeds)))]
        if study.paper_lr is not None:
            grid_seeds = set(study.grid_seeds)
            settings.append((f"lr {study.paper_lr:g}", runs_at(study_runs, a, study.paper_lr, grid_seeds),
                             runs_at(study_runs, b, study.paper_lr, grid_seeds)))
        for where, runs_a, runs_b in settings:
            comparison = _comparison(runs_a, runs_b, half)
            rows.append([name, where, *_comparison_cells(comparison)])
            data.append({"a": a, "b": b, "at": where, **_comparison_data(comparison)})
    return DisplayTable(f"{study.name}_contrasts", f"Study {study.name}: contrasts", columns, rows,
                        pd.DataFrame(data), [f"On the {half}-position half of the items; points, a − b."])


def study_tables(study: Study, study_runs: list[StudyRun]) -> list[DisplayTable]:
    tables = [best_rate_table(study, study_runs), paper_rate_table(study, study_runs),
              contrast_table(study, study_runs), grid_table(study, study_runs)]
    tables = [t for t in tables if t is not None]
    unfinished = progress(study, study_runs)
    if unfinished:  # first, so that no reader takes a partial table for the result
        for table in tables:
            table.notes.insert(0, unfinished)
    return tables


# ---------------------------------------------------------------------------------------------------- the figure
def study_figure(study: Study, study_runs: list[StudyRun], out_dir: Path) -> list[Path]:
    """Score (reported half) and forgetting against the learning rate, a line per method at the grid's first seed,
    with each method's seeds at its best rate as a mean ± std bar; PNG and PDF."""
    import matplotlib.pyplot as plt

    from astra_repro.report.figures import STYLE, Drawn, method_color, save

    if not study_runs:
        return []
    half = report_half(study)
    best = best_rates(study, study_runs)
    has_forgetting = any(r.forgetting is not None for r in study_runs)
    styles = defaultdict(int)
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, 2 if has_forgetting else 1, figsize=(10 if has_forgetting else 5.5, 3.6),
                                 layout="constrained", squeeze=False)
        panels = [(axes[0][0], lambda r: mean_of(r.half(half)), f"{study.evaluator} {study.metric} ({half} half)")]
        if has_forgetting:
            panels.append((axes[0][1], lambda r: r.forgetting, "forgetting (CE after − before)"))
        for variant in study.variants:
            dash = ["-", "--", ":", "-."][styles[variant.name] % 4]
            styles[variant.name] += 1
            color = method_color(variant.name)
            for ax, value, ylabel in panels:
                grid = [(r.lr, value(r)) for r in study_runs if r.variant.key == variant.key and r.seed == study.grid_seeds[0]
                        and value(r) is not None]
                if grid:
                    xs, ys = zip(*sorted(grid))
                    ax.plot(xs, ys, dash, color=color, marker="o", label=variant.display)
                seeds = [value(r) for r in runs_at(study_runs, variant.key, best[variant.key].lr, set(study.seeds)) if value(r) is not None]
                if len(seeds) >= 2:
                    ax.errorbar([best[variant.key].lr], [statistics.fmean(seeds)], yerr=[statistics.stdev(seeds)],
                                color=color, marker="D", markersize=6, capsize=4)
                ax.set_xscale("log")
                ax.set_xlabel("learning rate")
                ax.set_ylabel(ylabel)
        for ax, _, _ in panels:
            if study.paper_lr is not None:
                ax.axvline(study.paper_lr, color="#999999", linestyle=":", linewidth=1)
        baseline = [r for r in study_runs if study.baseline is not None and r.variant.key == study.baseline.key]
        if baseline:
            axes[0][0].axhline(mean_of(baseline[0].half(half)), color=method_color("base"), linestyle="--",
                               linewidth=1, label=study.baseline.display)
        axes[0][0].legend(loc="best", fontsize=7)
        title = f"Study {study.name}: score and forgetting vs learning rate (◆ ± std: seeds at the best rate)"
        fig.suptitle(title)
        saved = save(Drawn(f"{study.name}_lr", "", title, "", fig), out_dir)  # PNG + PDF, as the paper's figures
    return [Path(saved.png), Path(saved.pdf)]


# ------------------------------------------------------------------------------------------ every committed study
def studies_root() -> Path:
    return results_dir() / "studies"


def committed_studies(root: Path | None = None) -> list[tuple[Study, list[StudyRun]]]:
    """Every folder under results/studies/ named after a study sweep, with its runs (skipped with a message when
    its sweep file is gone)."""
    from astra_repro.sweep import SWEEP_DIR, load_study  # here: the sweep module imports astra_repro.study

    root = root or studies_root()
    found = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []:
        if not (SWEEP_DIR / f"{folder.name}.yaml").exists():
            print(f"study folder {folder} has no sweep file slurm/sweeps/{folder.name}.yaml; skipped")
            continue
        study = load_study(folder.name)
        found.append((study, load_runs(study, folder)))
    return found


def write_study_outputs(out_dir: Path, figures_dir: Path, root: Path | None = None) -> tuple[list[Path], list[DisplayTable], list[Path]]:
    """Tables (md, csv, tex) and the figure of every committed study: (written paths, tables, figure PNGs)."""
    written, tables, figures = [], [], []
    for study, study_runs in committed_studies(root):
        for table in study_tables(study, study_runs):
            written += table.write(out_dir)
            tables.append(table)
        paths = study_figure(study, study_runs, figures_dir)
        written += paths
        figures += [p for p in paths if p.suffix == ".png"]
    return written, tables, figures
