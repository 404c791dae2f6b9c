"""Studies: methods x learning-rate grid x seeds on real data, chosen and reported on disjoint halves of the test set.

A study is a sweep file (slurm/sweeps/<name>.yaml) whose axes are `lr`, `method` and `seed`, with a `study:` block:

    study:
      metric: glue_dev/accuracy   # evaluator/metric; its per-item outcomes come from predictions.jsonl
      select_on: even             # the items at even positions choose each method's rate; the odd ones are reported
      paper_lr: 1.0e-4            # the paper's rate (one grid point): the paper-rate table
      seeds: [42, 43, 44]         # stage 2: each method at its best rate with these seeds
      reference: lora             # the method every difference is taken against (default: the first)
      contrasts: [[astra subspace=smallest, astra subspace=largest]]   # more differences to report
      labels: {astra subspace=largest: Astra largest (released)}       # display names
      baseline: base              # an untrained row for context (run once, with the grid; no rate)

Stage 1 is the sweep's grid (`sweep.expand`, usually one seed). Stage 2 (`stage2_lines`) re-runs each method at the
rate with the highest mean metric on the SELECTION half of the items (over the grid's seeds; a tie goes to the
smaller rate) with `study.seeds`. Every table reports on the other half only, so no number is reported on the items
that chose it. A method whose grid is incomplete has no best rate yet (stage 2 waits for it).

The records live in the sweep's `output_root` (results/studies/<name>/). Runs are told apart by the method axis's
overrides as their config.yaml holds them (`Variant.matches`), their learning rate and seed; two records of the same
(variant, rate, seed) are an error (a changed fixed override leaves stale records: move them away).

Outputs (`study_tables`, `study_figure`): the grid (every method x rate, first seed), each method at its best rate
(mean +- std over seeds; the difference vs the reference with the bootstrap `hierarchical.compare_runs` chooses: over
seeds and items with >= 2 seeds per side, items only otherwise), each method at the paper's rate, the contrasts, and
a figure of the reported metric and forgetting against the rate.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from astra_repro import runs
from astra_repro.errors import ConfigError
from astra_repro.paths import PROJECT_ROOT, results_dir
from astra_repro.report.display import MISSING, DisplayTable

log = logging.getLogger(__name__)

SELECT_ON = ("even", "odd")
FORGETTING = ("forgetting", "forgetting")  # (evaluator, metric) shown beside the metric when the records have it
SCORE_COLUMN = "score (seeds)"


# ------------------------------------------------------------------------------------------------- the definition
@dataclass(frozen=True)
class Variant:
    """One value of the method axis: `method=<name>` plus `method.<option>=<value>` overrides."""

    overrides: tuple[str, ...]
    label: str = ""

    @property
    def name(self) -> str:
        return next(o.split("=", 1)[1] for o in self.overrides if o.startswith("method="))

    @property
    def options(self) -> dict[str, str]:
        return {o.split("=", 1)[0][len("method."):]: o.split("=", 1)[1] for o in self.overrides if o.startswith("method.")}

    @property
    def key(self) -> str:
        """`astra subspace=smallest`: how the study file's `labels`, `reference` and `contrasts` name it."""
        return " ".join([self.name, *(f"{k}={v}" for k, v in self.options.items())])

    @property
    def display(self) -> str:
        return self.label or self.key

    def matches(self, plan: dict) -> bool:
        method = plan.get("method") or {}
        return method.get("name") == self.name and all(_same(method.get(k), v) for k, v in self.options.items())


def _same(planned: Any, override: str) -> bool:
    """A config.yaml value equals an override's text (both read as YAML: `true`, `0.5`, `d/2`)."""
    return planned == yaml.safe_load(override) or str(planned) == override


@dataclass(frozen=True)
class Study:
    name: str
    fixed: tuple[str, ...]
    variants: tuple[Variant, ...]
    rates: tuple[float, ...]
    grid_seeds: tuple[int, ...]
    seeds: tuple[int, ...]
    evaluator: str
    metric: str
    select_on: str
    paper_lr: float | None
    reference: str
    contrasts: tuple[tuple[str, str], ...] = ()
    output_root: Path = field(default_factory=Path)
    baseline: Variant | None = None

    @classmethod
    def from_sweep(cls, name: str, sweep: dict) -> "Study":
        block = sweep.get("study")
        if not isinstance(block, dict):
            raise ConfigError(f"sweep '{name}' has no `study:` block; add one (see src/astra_repro/report/study.py)")
        axes = sweep.get("axes") or {}
        if set(axes) != {"lr", "method", "seed"}:
            raise ConfigError(f"study '{name}': its axes must be exactly lr, method and seed (has {', '.join(axes) or 'none'})")
        labels = block.get("labels") or {}
        variants = []
        for value in axes["method"]:
            overrides = tuple(str(v) for v in value) if isinstance(value, list) else (f"method={value}",)
            if not any(o.startswith("method=") for o in overrides) or any(
                    not o.startswith(("method=", "method.")) for o in overrides):
                raise ConfigError(f"study '{name}': method axis value {value!r} must be a method name or a list of "
                                  "method=... and method.<option>=... overrides")
            variant = Variant(overrides)
            variants.append(Variant(overrides, str(labels.get(variant.key, ""))))
        keys = [v.key for v in variants]
        if len(set(keys)) != len(keys):
            raise ConfigError(f"study '{name}': the method axis repeats a variant ({', '.join(keys)})")
        metric = str(block.get("metric") or "")
        if metric.count("/") != 1:
            raise ConfigError(f"study '{name}': study.metric={metric!r} must be <evaluator>/<metric>, e.g. glue_dev/accuracy")
        select_on = str(block.get("select_on", "even"))
        if select_on not in SELECT_ON:
            raise ConfigError(f"study '{name}': study.select_on={select_on!r}; use one of {', '.join(SELECT_ON)}")
        reference = str(block.get("reference") or keys[0])
        contrasts = tuple(tuple(str(x) for x in pair) for pair in block.get("contrasts") or ())
        for key in [reference, *(k for pair in contrasts for k in pair)]:
            if key not in keys:
                raise ConfigError(f"study '{name}': '{key}' is not a variant of the method axis ({', '.join(keys)})")
        if any(len(pair) != 2 for pair in contrasts):
            raise ConfigError(f"study '{name}': each study.contrasts entry is a pair [a, b]")
        seeds = tuple(int(s) for s in block.get("seeds") or ())
        if not seeds:
            raise ConfigError(f"study '{name}': set study.seeds, the seeds run at each method's best rate")
        fixed = tuple(str(o) for o in sweep.get("fixed") or ())
        root = next((o.split("=", 1)[1] for o in fixed if o.startswith("output_root=")), None)
        if root is None:
            raise ConfigError(f"study '{name}': set output_root=results/studies/{name} in its fixed overrides")
        paper_lr = block.get("paper_lr")
        baseline = block.get("baseline")
        return cls(
            name=name, fixed=fixed, variants=tuple(variants), rates=tuple(sorted(float(r) for r in axes["lr"])),
            grid_seeds=tuple(int(s) for s in axes["seed"]), seeds=seeds, evaluator=metric.split("/")[0],
            metric=metric.split("/")[1], select_on=select_on, paper_lr=None if paper_lr is None else float(paper_lr),
            reference=reference, contrasts=contrasts, output_root=_resolve(Path(root)),
            baseline=Variant((f"method={baseline}",), f"{baseline} (untrained)") if baseline else None,
        )

    def variant(self, key: str) -> Variant:
        return next(v for v in self.variants if v.key == key)

    def line(self, variant: Variant, lr: float, seed: int) -> list[str]:
        """One run's overrides, in the order `sweep.expand` writes them (fixed, lr, method, seed)."""
        return [*self.fixed, f"lr={lr}", *variant.overrides, f"seed={seed}"]

    def baseline_lines(self) -> list[list[str]]:
        """The untrained row's run (its method's own rate: it trains nothing), at the grid's first seed."""
        if self.baseline is None:
            return []
        return [[*self.fixed, *self.baseline.overrides, f"seed={self.grid_seeds[0]}"]]


def _resolve(path: Path) -> Path:
    """A relative output_root is relative to where runs start (the project root, as the Makefile and SLURM run)."""
    return path if path.is_absolute() else PROJECT_ROOT / path


def load_study(name: str) -> Study:
    from astra_repro.sweep import load_sweep

    return Study.from_sweep(name, load_sweep(name))


# ------------------------------------------------------------------------------------------------------ the runs
@dataclass(frozen=True)
class StudyRun:
    variant: Variant
    lr: float
    seed: int
    record: dict
    outcomes: tuple[float, ...]  # the metric's per-item outcomes, in the evaluator's item order
    forgetting: float | None

    def half(self, which: str) -> dict[str, float]:
        """Item position -> outcome, for the items at even or odd positions."""
        start = 0 if which == "even" else 1
        return {str(i): self.outcomes[i] for i in range(start, len(self.outcomes), 2)}


def per_item_outcomes(run_dir: Path, evaluator: str, field_name: str) -> tuple[float, ...]:
    """The evaluator's per-item field, in file order (the evaluator writes its items in test-set order)."""
    values = []
    with open(Path(run_dir) / runs.PREDICTIONS_FILE) as handle:
        for line in handle:
            row = json.loads(line)
            if row.get("evaluator") == evaluator:
                value = row.get(field_name)
                if value is None:
                    raise ConfigError(f"{run_dir}: a {evaluator} prediction has no '{field_name}'")
                values.append(float(value))
    return tuple(values)


def item_field(record: dict, evaluator: str, metric: str) -> str:
    from astra_repro.report.declarations import declaration

    found = declaration(record, evaluator)
    spec = found.metric(metric) if found is not None else None
    if spec is None or not spec.item_field:
        raise ConfigError(f"{evaluator}/{metric} declares no per-item field: a study cannot split its items")
    return spec.item_field


def load_runs(study: Study, root: Path | None = None) -> list[StudyRun]:
    """Every finished run of the study's variants under its output_root (or `root`)."""
    root = Path(root) if root is not None else study.output_root
    found: dict[tuple, StudyRun] = {}
    for record in runs.load_records(root) if root.exists() else []:
        plan = yaml.safe_load((Path(record["run_dir"]) / "config.yaml").read_text()) or {}
        matching = [v for v in (*study.variants, *([study.baseline] if study.baseline else [])) if v.matches(plan)]
        if not matching:
            log.info("study %s: %s is not one of its method variants; left out", study.name, record["run_dir"])
            continue
        most = max(len(v.options) for v in matching)  # `astra` and `astra subspace=smallest`: the specific one
        chosen = [v for v in matching if len(v.options) == most]
        if len(chosen) > 1:
            raise ConfigError(f"study {study.name}: {record['run_dir']} matches {', '.join(v.key for v in chosen)}")
        variant = chosen[0]
        if study.evaluator not in (record.get("metrics") or {}):
            log.warning("study %s: %s has no %s score; left out", study.name, record["run_dir"], study.evaluator)
            continue
        lr, seed = float(record["learning_rate"]), int(record["seed"])
        key = (variant.key, _rate_key(lr), seed)
        if key in found:
            raise ConfigError(f"study {study.name}: two records of {variant.key} lr={lr} seed={seed}: "
                              f"{found[key].record['run_dir']} and {record['run_dir']}; move the stale one away")
        outcomes = per_item_outcomes(record["run_dir"], study.evaluator, item_field(record, study.evaluator, study.metric))
        forgetting = (record["metrics"].get(FORGETTING[0]) or {}).get(FORGETTING[1])
        found[key] = StudyRun(variant, lr, seed, record, outcomes, forgetting)
    sizes = {len(r.outcomes) for r in found.values()}
    if len(sizes) > 1:
        raise ConfigError(f"study {study.name}: runs scored different numbers of {study.evaluator} items ({sorted(sizes)})")
    order = [study.baseline.key] if study.baseline else []
    order += [v.key for v in study.variants]
    return sorted(found.values(), key=lambda r: (order.index(r.variant.key), r.lr, r.seed))


def _rate_key(lr: float) -> str:
    return f"{lr:.6g}"


def report_half(study: Study) -> str:
    return "odd" if study.select_on == "even" else "even"


def mean_of(outcomes: dict[str, float]) -> float:
    return 100.0 * sum(outcomes.values()) / len(outcomes) if outcomes else math.nan


# ---------------------------------------------------------------------------------------------- choosing the rate
@dataclass(frozen=True)
class BestRate:
    lr: float | None  # None: the grid is not complete yet
    selection_score: float | None
    missing: tuple[float, ...] = ()  # grid rates without a run at the first grid seed


def best_rates(study: Study, study_runs: list[StudyRun]) -> dict[str, BestRate]:
    """Per variant: the grid rate with the highest mean metric on the selection half over the grid seeds."""
    chosen = {}
    for variant in study.variants:
        scores, missing = {}, []
        for lr in study.rates:
            grid = [r for r in study_runs if r.variant.key == variant.key and _rate_key(r.lr) == _rate_key(lr)
                    and r.seed in study.grid_seeds]
            if len(grid) < len(study.grid_seeds):
                missing.append(lr)
                continue
            scores[lr] = statistics.fmean(mean_of(r.half(study.select_on)) for r in grid)
        if missing:
            chosen[variant.key] = BestRate(None, None, tuple(missing))
            continue
        best = max(study.rates, key=lambda lr: (scores[lr], -lr))  # a tie goes to the smaller rate
        chosen[variant.key] = BestRate(best, scores[best])
    return chosen


def stage2_lines(study: Study, study_runs: list[StudyRun]) -> tuple[list[list[str]], list[str]]:
    """The runs of each method at its best rate with every seed of `study.seeds` (finished ones included: the
    sweep skips them), and the variants still waiting for their grid."""
    lines, waiting = [], []
    for key, best in best_rates(study, study_runs).items():
        if best.lr is None:
            waiting.append(f"{key} (grid rates missing: {', '.join(f'{lr:g}' for lr in best.missing)})")
            continue
        lines += [study.line(study.variant(key), best.lr, seed) for seed in study.seeds]
    return lines, waiting


# ---------------------------------------------------------------------------------------------------- the tables
def _at(study_runs: list[StudyRun], variant: str, lr: float | None, seeds=None) -> list[StudyRun]:
    if lr is None:
        return []
    return [r for r in study_runs if r.variant.key == variant and _rate_key(r.lr) == _rate_key(lr)
            and (seeds is None or r.seed in seeds)]


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
    columns = ["Method", *(f"lr {lr:g}" + (" (paper)" if study.paper_lr and _rate_key(lr) == _rate_key(study.paper_lr) else "")
                           for lr in study.rates)]
    rows, data = [], []
    best = best_rates(study, study_runs)
    for variant in study.variants:
        row = [variant.display]
        for lr in study.rates:
            found = _at(study_runs, variant.key, lr, {seed})
            if not found:
                row.append(MISSING)
                continue
            run = found[0]
            score = mean_of(run.half(half))
            chosen = best[variant.key].lr is not None and _rate_key(best[variant.key].lr) == _rate_key(lr)
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
    reference_runs = _at(study_runs, study.reference, reference_best, set(study.seeds))
    columns = ["Method", "best lr", SCORE_COLUMN, f"Δ vs {study.variant(study.reference).display} [95% CI]", "p",
               "bootstrap", "forgetting"]
    rows, data = _baseline_row(study, study_runs, columns)
    for variant in study.variants:
        chosen = best[variant.key]
        found = _at(study_runs, variant.key, chosen.lr, set(study.seeds))
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
    reference_runs = _at(study_runs, study.reference, study.paper_lr, grid_seeds)
    columns = ["Method", SCORE_COLUMN, f"Δ vs {study.variant(study.reference).display} [95% CI]", "p", "bootstrap",
               "forgetting"]
    rows, data = _baseline_row(study, study_runs, columns)
    for variant in study.variants:
        found = _at(study_runs, variant.key, study.paper_lr, grid_seeds)
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
        settings = [("best rates", _at(study_runs, a, best[a].lr, set(study.seeds)), _at(study_runs, b, best[b].lr, set(study.seeds)))]
        if study.paper_lr is not None:
            grid_seeds = set(study.grid_seeds)
            settings.append((f"lr {study.paper_lr:g}", _at(study_runs, a, study.paper_lr, grid_seeds),
                             _at(study_runs, b, study.paper_lr, grid_seeds)))
        for where, runs_a, runs_b in settings:
            comparison = _comparison(runs_a, runs_b, half)
            rows.append([name, where, *_comparison_cells(comparison)])
            data.append({"a": a, "b": b, "at": where, **_comparison_data(comparison)})
    return DisplayTable(f"{study.name}_contrasts", f"Study {study.name}: contrasts", columns, rows,
                        pd.DataFrame(data), [f"On the {half}-position half of the items; points, a − b."])


def study_tables(study: Study, study_runs: list[StudyRun]) -> list[DisplayTable]:
    tables = [best_rate_table(study, study_runs), paper_rate_table(study, study_runs),
              contrast_table(study, study_runs), grid_table(study, study_runs)]
    return [t for t in tables if t is not None]


# ---------------------------------------------------------------------------------------------------- the figure
def study_figure(study: Study, study_runs: list[StudyRun], out_dir: Path) -> list[Path]:
    """Score (reported half) and forgetting against the learning rate, a line per method at the grid's first seed,
    with each method's seeds at its best rate as a mean ± std bar; PNG and PDF."""
    import matplotlib.pyplot as plt

    from astra_repro.report.figures import STYLE, method_color

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
                seeds = [value(r) for r in _at(study_runs, variant.key, best[variant.key].lr, set(study.seeds)) if value(r) is not None]
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
        fig.suptitle(f"Study {study.name}: score and forgetting vs learning rate (◆ ± std: seeds at the best rate)")
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / f"{study.name}_lr.png", out_dir / f"{study.name}_lr.pdf"]
        fig.savefig(paths[0], metadata={"Software": None})
        fig.set_layout_engine("none")
        fig.savefig(paths[1], metadata={"CreationDate": None, "Creator": None, "Producer": None})
        plt.close(fig)
    return paths


# ------------------------------------------------------------------------------------------ every committed study
def studies_root() -> Path:
    return results_dir() / "studies"


def committed_studies(root: Path | None = None) -> list[tuple[Study, list[StudyRun]]]:
    """Every folder under results/studies/ named after a study sweep, with its runs (skipped with a message when
    its sweep file is gone)."""
    from astra_repro.sweep import SWEEP_DIR, load_sweep

    root = root or studies_root()
    found = []
    for folder in sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []:
        if not (SWEEP_DIR / f"{folder.name}.yaml").exists():
            print(f"study folder {folder} has no sweep file slurm/sweeps/{folder.name}.yaml; skipped")
            continue
        study = Study.from_sweep(folder.name, load_sweep(folder.name))
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
