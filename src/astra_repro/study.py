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

This module plans (what a study is, its runs, each method's rate, stage 2's lines: `sweep.py` runs them);
report/study.py builds its tables and figure.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from astra_repro import runs
from astra_repro.errors import ConfigError
from astra_repro.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

SELECT_ON = ("even", "odd")
FORGETTING = ("forgetting", "forgetting")  # (evaluator, metric) shown beside the metric when the records have it


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
            raise ConfigError(f"sweep '{name}' has no `study:` block; add one (see src/astra_repro/study.py)")
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
        key = (variant.key, rate_key(lr), seed)
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


def rate_key(lr: float) -> str:
    return f"{lr:.6g}"


def runs_at(study_runs: list[StudyRun], variant: str, lr: float | None, seeds=None) -> list[StudyRun]:
    """The runs of one variant at one rate (none for an unknown rate), of the given seeds only when given."""
    if lr is None:
        return []
    return [r for r in study_runs if r.variant.key == variant and rate_key(r.lr) == rate_key(lr)
            and (seeds is None or r.seed in seeds)]


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
            grid = runs_at(study_runs, variant.key, lr, study.grid_seeds)
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


def progress(study: Study, study_runs: list[StudyRun]) -> str | None:
    """One line on what an unfinished study still lacks (None once every grid, best-rate and baseline run has a
    record), so that a table built mid-study says so instead of looking like a result."""
    grid_total = len(study.variants) * len(study.rates) * len(study.grid_seeds)
    grid_done = sum(len(runs_at(study_runs, v.key, lr, study.grid_seeds)) for v in study.variants for lr in study.rates)
    best = best_rates(study, study_runs)
    stage2_total = len(study.variants) * len(study.seeds)
    stage2_done = sum(len(runs_at(study_runs, key, chosen.lr, set(study.seeds))) for key, chosen in best.items())
    baseline_missing = study.baseline is not None and not any(r.variant.key == study.baseline.key for r in study_runs)
    if grid_done == grid_total and stage2_done == stage2_total and not baseline_missing:
        return None
    return (f"In progress: {grid_done} of {grid_total} grid runs and {stage2_done} of {stage2_total} best-rate runs have "
            f"records{'; the untrained baseline has none' if baseline_missing else ''}. A method's best rate is chosen "
            f"only once its whole grid is done. Continue with: python -m astra_repro.sweep {study.name} --local")


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
