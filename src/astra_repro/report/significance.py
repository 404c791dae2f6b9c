"""Which differences between methods are real: a paired bootstrap over per-item correctness.

The paper's margins between LoRA initialisations are often under one point, so a table cell needs to say
whether its difference to LoRA (or to Astra) survives resampling of the test items. This module reads the
per-item outcomes every evaluator writes to `predictions.jsonl` and compares two groups of runs item by item.

Per-item outcomes (`item_outcomes`, `load_item_outcomes`)
    A metric is comparable only when its evaluator declares a per-item boolean whose mean is the metric (its
    `MetricSpec.item_field`, read from the record by `report.declarations`): e.g. gsm8k `accuracy` <- `correct`,
    math `accuracy_fixed` <- `correct_fixed`, code `pass@1` <- `correct` (the BASE tests passed; `pass@1_plus` <-
    `correct_plus`, base and plus tests), commonsense `acc` <- `correct`, glue_dev `accuracy` <- `correct` (soft
    label-word accuracy). Items are keyed by the declared `item_id_field` (`question`, `task_id`, `doc_id`,
    `prompt`); a key seen again in the same run gets "#2", "#3", ... in file
    order, so duplicate questions or prompts stay distinct items. Before any comparison, 100 x the mean of the
    per-item outcomes must equal the record's metric (to 1e-6): otherwise (or when the field is missing or
    None on some item, e.g. `correct_plus` without plus tests, or the metric is not a mean, e.g. CoLA `mcc`)
    there is no significance for that run and the reason is kept (`ItemOutcomes.reason`; logged, as a warning
    when predictions and metrics disagree or cannot be read).

Pooling over seeds and pairing (`pool_seeds`, `compare_records`)
    A method's seeds are pooled item by item: its outcome on an item is the mean of that item's 0/1 outcomes
    over its runs (3 seeds -> 0, 1/3, 2/3 or 1), so the compared statistic is exactly the difference of the
    seed-averaged accuracies a table shows. Only items present in EVERY run of BOTH methods are compared; the
    others are counted in `Comparison.n_dropped` (0 when all runs scored the same test set). The bootstrap then
    resamples items, not seeds: the interval is the test-set sampling uncertainty of the seed-averaged
    methods. With 1-3 seeds a resampling of seeds would be meaningless; seed-to-seed spread is what the
    table's ± std shows, and more seeds narrow the interval only through the averaged per-item outcomes.
    To put seed-to-seed variance into the interval itself (tables with >= 2 seeds per method),
    `report.hierarchical` resamples seeds too; coarse with 2-3 seeds, hence wide and conservative.
    `hierarchical.compare_records_auto` picks hierarchical or item-only by seed count (see its docstring).

Bootstrap (`paired_bootstrap`)
    Items are resampled with replacement (an index matrix, drawn in chunks of about 2M entries to bound
    memory); the statistic is mean(a) - mean(b) in percentage points and the interval is the percentile
    interval (numpy's linear quantile). The difference and the interval ends are rounded to 1e-9 pp, so an end
    that is 0 in exact arithmetic is 0 and not float noise of either sign. `significant` means the closed
    interval excludes 0 (an end exactly at 0 is not significant). Deterministic given `seed`; swapping a and b
    negates the difference and the interval.

Which groups are compared (`significance_table`)
    Records are grouped by (method_label, rank) within a context: same model, task, task variant (the GLUE
    task: `task_variant`, else the evaluator's `eval_data.glue_task`), global batch size and evaluation data
    source (real and synthetic are never compared). Each group is compared with each reference label (by
    default "lora" and "astra") in its context: the reference group with the same rank if one exists,
    otherwise the reference's only rank; when the reference has several ranks and none matches (e.g. FFT,
    rank 0, against LoRA at ranks 8, 32 and 128), or there is no reference run, the result is `Unavailable`
    with the reason. A reference is not compared with itself.

Table markers (`MARK_VS_LORA`, `MARK_VS_ASTRA`, `MARK_ABOVE`, `MARK_BELOW`, `MARKER_LEGEND`)
    Plain ASCII, so they survive Markdown and CSV, and distinct from "†" (synthetic data): a cell gets "L+"
    when its 95% interval against LoRA lies above 0, "L-" when it lies below 0, and "A+" / "A-" likewise
    against Astra; no marker means not significant (or no per-item data). `format_markers` joins them ("L+ A-").
"""

from __future__ import annotations

import json
import logging
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from astra_repro.report.declarations import declaration
from astra_repro.runs import METRICS_FILE

log = logging.getLogger("astra_repro")

PREDICTIONS_FILE = "predictions.jsonl"
METRIC_TOLERANCE = 1e-6  # |100 x mean(per-item) - record metric| allowed, in percentage points

# ------------------------------------------------------------------------------------------------------- markers
MARK_VS_LORA = "L"
MARK_VS_ASTRA = "A"
MARK_ABOVE = "+"
MARK_BELOW = "-"
REFERENCE_MARKS = {"lora": MARK_VS_LORA, "astra": MARK_VS_ASTRA}
MARKER_LEGEND = (
    f"{MARK_VS_LORA}{MARK_ABOVE} / {MARK_VS_LORA}{MARK_BELOW}: the 95% paired-bootstrap interval (test items "
    "resampled, seeds pooled per item) of the difference to LoRA at the same rank lies above / below 0; "
    f"{MARK_VS_ASTRA}{MARK_ABOVE} / {MARK_VS_ASTRA}{MARK_BELOW}: the same against Astra. No marker: not significant "
    "or no per-item data."
)


# ------------------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class Comparison:
    """a - b in percentage points over `n_items` paired items, with its bootstrap percentile interval."""

    difference: float
    low: float
    high: float
    n_items: int
    n_seeds_a: int = 1
    n_seeds_b: int = 1
    n_dropped: int = 0  # items not present in every run of both sides, left out
    confidence: float = 0.95
    n_resamples: int = 10_000
    significant: bool = field(init=False)  # the interval excludes 0 (a field, so asdict / CSV rows carry it)

    def __post_init__(self) -> None:
        object.__setattr__(self, "significant", self.low > 0 or self.high < 0)

    def marker(self, reference: str = MARK_VS_LORA) -> str:
        """`reference` + "+" (significantly above) or "-" (below), "" when not significant."""
        if not self.significant:
            return ""
        return reference + (MARK_ABOVE if self.difference > 0 else MARK_BELOW)

    def describe(self) -> str:
        return (f"{self.difference:+.2f} pp [{self.low:+.2f}, {self.high:+.2f}] ({self.confidence:.0%}, {self.n_items} items, "
                f"{self.n_seeds_a} vs {self.n_seeds_b} seeds" + (f", {self.n_dropped} dropped" if self.n_dropped else "") + ")")

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True)
class Unavailable:
    """No comparison, and why. Falsy, not significant and without a marker, so it can stand where a
    Comparison would."""

    reason: str
    significant: bool = field(default=False, init=False)

    def marker(self, reference: str = MARK_VS_LORA) -> str:
        return ""

    def describe(self) -> str:
        return f"n/a ({self.reason})"

    def __bool__(self) -> bool:
        return False


@dataclass(frozen=True)
class ItemOutcomes:
    """One run's per-item outcomes for one metric (item id -> 1.0 / 0.0), or None with the reason."""

    outcomes: dict[str, float] | None
    reason: str | None = None


# ------------------------------------------------------------------------------------------------ per-item data
def _read_outcomes(run_dir: Path, record: dict, evaluator: str, metric: str) -> ItemOutcomes:
    def unavailable(reason: str, level: int = logging.WARNING) -> ItemOutcomes:
        reason = f"{run_dir}: {evaluator} {metric}: {reason}"
        log.log(level, "no significance: %s", reason)
        return ItemOutcomes(None, reason)

    # the evaluator's declaration says which per-item field the metric is the mean of (none: mcc, counts, stderr)
    declared = declaration(record, evaluator)
    spec = declared.metric(metric) if declared is not None else None
    item_field = spec.item_field if spec is not None else None
    id_field = declared.item_id_field if declared is not None else None
    expected = record.get("metrics", {}).get(evaluator, {}).get(metric)
    if item_field is None or id_field is None:
        return unavailable("no per-item field for this metric", logging.INFO)
    if expected is None:
        return unavailable("the record has no value for this metric", logging.INFO)
    path = Path(run_dir) / PREDICTIONS_FILE
    outcomes: dict[str, float] = {}
    seen: dict[str, int] = defaultdict(int)
    try:
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                if row.get("evaluator") != evaluator:
                    continue
                if row.get(id_field) is None:
                    return unavailable(f"line {line_no} of {PREDICTIONS_FILE} has no {id_field!r}")
                if item_field not in row:  # e.g. pass@1_plus in run folders written without plus tests
                    return unavailable(f"no per-item field {item_field!r} in {PREDICTIONS_FILE}", logging.INFO)
                value = row[item_field]
                if not isinstance(value, bool):
                    return unavailable(f"line {line_no} of {PREDICTIONS_FILE}: {item_field!r} is {value!r}, not true/false")
                key = str(row[id_field])
                seen[key] += 1
                if seen[key] > 1:
                    key = f"{key}#{seen[key]}"
                outcomes[key] = 1.0 if value else 0.0
    except FileNotFoundError:
        return unavailable(f"no {PREDICTIONS_FILE}")
    except (OSError, ValueError) as err:
        return unavailable(f"{PREDICTIONS_FILE} unreadable ({err})")
    if not outcomes:
        return unavailable(f"no {evaluator} items in {PREDICTIONS_FILE}")
    recomputed = 100.0 * sum(outcomes.values()) / len(outcomes)
    if not math.isfinite(float(expected)) or abs(recomputed - float(expected)) > METRIC_TOLERANCE:
        return unavailable(f"per-item {item_field!r} gives {recomputed:.6f} over {len(outcomes)} items, "
                           f"the record says {expected}: predictions and metrics disagree")
    return ItemOutcomes(outcomes)


def load_item_outcomes(run_dir: str | Path, evaluator: str, metric: str) -> ItemOutcomes:
    """`item_outcomes` with the reason when there are none."""
    run_dir = Path(run_dir)
    try:
        record = json.loads((run_dir / METRICS_FILE).read_text())
    except (OSError, ValueError) as err:
        reason = f"{run_dir}: {METRICS_FILE} unreadable ({err})"
        log.warning("no significance: %s", reason)
        return ItemOutcomes(None, reason)
    return _read_outcomes(run_dir, record, evaluator, metric)


def item_outcomes(run_dir: str | Path, evaluator: str, metric: str) -> dict[str, float] | None:
    """Item id -> 1.0 (correct) / 0.0 for one run and metric; None when the metric has no per-item field or the
    per-item outcomes do not reproduce the record's value (the reason is logged; `load_item_outcomes` returns it)."""
    return load_item_outcomes(run_dir, evaluator, metric).outcomes


def pool_seeds(runs_a: Sequence[dict[str, float]], runs_b: Sequence[dict[str, float]]) -> tuple[dict[str, float], dict[str, float], int]:
    """Per side, each item's mean outcome over its runs, on the items present in every run of both sides; and the
    number of items left out (seen in some run but not in all)."""
    all_runs = [*runs_a, *runs_b]
    if not runs_a or not runs_b:
        raise ValueError("each side needs at least one run")
    common = set(all_runs[0]).intersection(*all_runs[1:])
    seen = set().union(*all_runs)
    items = sorted(common)

    def pooled(runs):
        return {item: sum(run[item] for run in runs) / len(runs) for item in items}

    return pooled(runs_a), pooled(runs_b), len(seen) - len(common)


# ------------------------------------------------------------------------------------------------------ bootstrap
CHUNK_ENTRIES = 2_000_000  # index-matrix entries drawn at once (16 MB of int64)
ROUND_DECIMALS = 9  # pp: sums of k/3-style pooled outcomes carry ~1e-16 float noise that must not decide "excludes 0"


def _clean(value: float) -> float:
    """Rounded to 1e-9 pp, -0.0 made 0.0: an interval end that is 0 in exact arithmetic is 0, not +-1e-16."""
    return float(np.round(float(value), ROUND_DECIMALS)) + 0.0


def paired_bootstrap(a: dict[str, float], b: dict[str, float], n_resamples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0, *, n_seeds_a: int = 1, n_seeds_b: int = 1) -> Comparison:
    """mean(a) - mean(b) in percentage points over the items both have, and its percentile interval from
    `n_resamples` resamplings of the items with replacement. Items only one side has are left out and counted
    in `n_dropped`."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    items = sorted(set(a) & set(b))
    if not items:
        raise ValueError("no item in common: nothing to compare")
    n = len(items)
    diffs = np.fromiter((a[i] - b[i] for i in items), dtype=np.float64, count=n)
    scale = 100.0 / n
    difference = float(diffs.sum() * scale)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, CHUNK_ENTRIES // n)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        index = rng.integers(0, n, size=(stop - start, n))
        stats[start:stop] = diffs[index].sum(axis=1) * scale
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Comparison(difference=_clean(difference), low=_clean(low), high=_clean(high), n_items=n, n_seeds_a=n_seeds_a,
                      n_seeds_b=n_seeds_b, n_dropped=len(set(a) ^ set(b)), confidence=confidence,
                      n_resamples=n_resamples)


def mcnemar_exact(a: dict[str, float], b: dict[str, float]) -> tuple[int, int, float]:
    """Exact two-sided McNemar test on paired 0/1 outcomes (one run each side): (items only a got right, items only
    b got right, p-value). Under "no difference" each discordant item is a fair coin, so p is the two-sided binomial
    tail of the smaller count; with few items it is exact where a bootstrap interval is coarse."""
    items = set(a) & set(b)
    only_a = sum(1 for i in items if a[i] >= 0.5 > b[i])
    only_b = sum(1 for i in items if b[i] >= 0.5 > a[i])
    n = only_a + only_b
    if n == 0:
        return 0, 0, 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_a, only_b) + 1)) / 2**n
    return only_a, only_b, min(1.0, 2 * tail)


# ------------------------------------------------------------------------------------------------ run records
def _record_outcomes(record: dict, evaluator: str, metric: str, cache: dict | None) -> ItemOutcomes:
    key = (record.get("run_dir"), evaluator, metric)
    if cache is not None and key in cache:
        return cache[key]
    if not record.get("run_dir"):
        result = ItemOutcomes(None, f"record {record.get('run_name', '?')} has no run_dir")
    else:
        result = _read_outcomes(Path(record["run_dir"]), record, evaluator, metric)
    if cache is not None:
        cache[key] = result
    return result


def records_outcomes(records_a: Sequence[dict], records_b: Sequence[dict], evaluator: str, metric: str,
                     cache: dict | None = None) -> list[list] | Unavailable:
    """Each side's per-run item outcomes ([runs of a, runs of b]), or `Unavailable` naming why a comparison cannot
    be made (no runs on a side, a run without usable per-item outcomes)."""
    if not records_a or not records_b:
        return Unavailable("no runs on one side")
    sides = []
    for records in (records_a, records_b):
        runs = []
        for record in records:
            loaded = _record_outcomes(record, evaluator, metric, cache)
            if loaded.outcomes is None:
                return Unavailable(loaded.reason or "no per-item outcomes")
            runs.append(loaded.outcomes)
        sides.append(runs)
    return sides


def compare_records(records_a: Sequence[dict], records_b: Sequence[dict], evaluator: str, metric: str, *,
                    n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                    cache: dict | None = None) -> Comparison | Unavailable:
    """Group a (its seeds pooled per item) against group b on one metric; `Unavailable` (falsy, with the reason)
    when a run lacks usable per-item outcomes or the groups share no item. `cache` (a dict kept by the caller)
    avoids reading a run's predictions again for every comparison it takes part in."""
    sides = records_outcomes(records_a, records_b, evaluator, metric, cache)
    if isinstance(sides, Unavailable):
        return sides
    pooled_a, pooled_b, dropped = pool_seeds(*sides)
    if not pooled_a:
        return Unavailable(f"no item is scored in every run of both sides ({dropped} items seen)")
    result = paired_bootstrap(pooled_a, pooled_b, n_resamples, confidence, seed,
                              n_seeds_a=len(records_a), n_seeds_b=len(records_b))
    if dropped:
        log.info("significance %s %s: %d items not in every run left out", evaluator, metric, dropped)
    return replace(result, n_dropped=dropped)


class GroupKey(NamedTuple):
    """A row of a table: the context every compared group shares, then the group (method label, rank)."""

    model: str
    task: str
    task_variant: str | None
    global_batch_size: int | None
    data_source: str | None  # the evaluator's evaluation data (real / synthetic / ...)
    method_label: str
    rank: int


def group_key(record: dict, evaluator: str) -> GroupKey:
    info = record.get("eval_data", {}).get(evaluator, {})
    return GroupKey(record["model"], record["task"], record.get("task_variant") or info.get("glue_task"),
                    record.get("global_batch_size"), info.get("data_source"),
                    str(record.get("method_label") or record["method"]), int(record.get("rank") or 0))


def significance_table(records: Sequence[dict], evaluator: str, metric: str, references: Sequence[str] = ("lora", "astra"),
                       *, n_resamples: int = 10_000, confidence: float = 0.95,
                       seed: int = 0) -> dict[GroupKey, dict[str, Comparison | Unavailable]]:
    """For every (method label, rank) group that has `metric`: reference label -> its comparison with that
    reference (group minus reference) in the same context (see the module docstring for the rule). A reference
    group gets no entry for itself."""
    groups: dict[GroupKey, list[dict]] = defaultdict(list)
    for record in records:
        if record.get("metrics", {}).get(evaluator, {}).get(metric) is None:
            continue
        groups[group_key(record, evaluator)].append(record)
    cache: dict = {}
    table: dict[GroupKey, dict[str, Comparison | Unavailable]] = {}
    for key in sorted(groups, key=lambda k: tuple(map(str, k))):
        context = key[:5]
        row: dict[str, Comparison | Unavailable] = {}
        for reference in references:
            if key.method_label == reference:
                continue
            ranks = sorted(k.rank for k in groups if k[:5] == context and k.method_label == reference)
            if not ranks:
                row[reference] = Unavailable(f"no {reference!r} runs with this model, task, batch size and data")
                continue
            if key.rank in ranks:
                rank = key.rank
            elif len(ranks) == 1:
                rank = ranks[0]
            else:
                row[reference] = Unavailable(f"{reference!r} has ranks {ranks}, none is {key.rank}")
                continue
            ref_key = GroupKey(*context, reference, rank)
            row[reference] = compare_records(groups[key], groups[ref_key], evaluator, metric, n_resamples=n_resamples,
                                             confidence=confidence, seed=seed, cache=cache)
        table[key] = row
    return table


def format_markers(row: dict[str, Comparison | Unavailable], marks: dict[str, str] | None = None) -> str:
    """A table cell's markers for one `significance_table` row, e.g. "L+ A-" ("" when none is significant)."""
    marks = marks or REFERENCE_MARKS
    return " ".join(m for ref, result in row.items() if (m := result.marker(marks.get(ref, ref[:1].upper()))))
