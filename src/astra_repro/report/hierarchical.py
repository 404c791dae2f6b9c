"""Which differences survive run-to-run variance: a hierarchical paired bootstrap over seeds and items.

Why a second bootstrap
    `significance.paired_bootstrap` resamples test items of outcomes already averaged over seeds: its interval is
    the test-set sampling uncertainty of those particular runs. When seeds differ a lot (GLUE: the paper's own LoRA
    CoLA is +-1.33), two methods can differ only because one drew lucky seeds, and the item bootstrap calls that
    significant however few seeds there are. Resampling the seeds as well asks the question a reader has: would
    the difference hold with other seeds, on other test items?

The hierarchical bootstrap (`hierarchical_bootstrap`)
    Each method has a (seeds x items) matrix of per-item outcomes on the items every run of both methods scored.
    One replicate: draw each method's seeds with replacement (as many as it has, independently per method), then
    draw items with replacement, the SAME item draw for both methods (paired on items, as the item bootstrap is);
    the statistic is mean(a) - mean(b) over the drawn seeds x drawn items, x `scale` (100: percentage points for
    0/1 outcomes, as the tables show). Reported: the point difference (all seeds, all items), the percentile
    interval (numpy's linear quantile, 95 % by default), and a two-sided p: the share of replicates on the other
    side of 0 from the point difference (0 included), doubled, at most 1 (0 means below 1/n_resamples; a point
    difference of exactly 0 gives 1). Deterministic given `seed`. A drawn item set is a multinomial count vector, so a
    replicate costs two matrix products, not a gathered array.

When each is used (`choose_bootstrap`, `compare_records_auto`)
    - both methods with >= 2 seeds: hierarchical. The interval then also covers seed-to-seed variance;
    - either method with a single run: item-only (`significance.paired_bootstrap` on seed-pooled outcomes), since
      one seed cannot be resampled: its interval covers test-item sampling only, and the table's +- std (or its
      absence) is the only account of seed variance.
    With 2-3 seeds the seed draw is coarse (3 seeds: 10 distinct multisets), so the hierarchical interval is wide
    and conservative; that is the honest statement of what 2-3 seeds can show, not a defect.

`compare_records_auto` has `significance.compare_records`'s signature and returns a `Comparison` (this module's
subclass carries `p_value` and `bootstrap`), so table code can swap one call for the other; markers and
`significant` keep their meaning (the interval excludes 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from astra_repro.report import significance
from astra_repro.report.significance import Comparison, Unavailable, _clean, pool_seeds

HIERARCHICAL, ITEMS = "hierarchical", "items"
MIN_SEEDS_FOR_HIERARCHICAL = 2
CHUNK_ENTRIES = 2_000_000  # replicate x item entries drawn at once (16 MB of float64)
HIERARCHICAL_MARK = "ʰ"  # after a significance marker: the hierarchical bootstrap judged this cell
HIERARCHICAL_LEGEND = (
    "With >= 2 seeds per method the interval is a hierarchical paired bootstrap (seeds resampled per method, then "
    f"test items resampled, paired across methods), marked {HIERARCHICAL_MARK} (L+{HIERARCHICAL_MARK}); with a single "
    "run on either side, items only (seeds pooled), unmarked."
)


@dataclass(frozen=True)
class HierarchicalComparison(Comparison):
    """A `Comparison` (a - b, interval, markers) with the two-sided bootstrap p and which bootstrap made it."""

    p_value: float = 1.0
    bootstrap: str = HIERARCHICAL

    def describe(self) -> str:
        return f"{super().describe()} p={self.p_value:.3g} ({self.bootstrap})"

    def marker(self, reference: str = significance.MARK_VS_LORA) -> str:
        """The significance marker, with `HIERARCHICAL_MARK` when seeds were resampled too."""
        shown = super().marker(reference)
        return shown + HIERARCHICAL_MARK if shown and self.bootstrap == HIERARCHICAL else shown


def choose_bootstrap(n_seeds_a: int, n_seeds_b: int) -> str:
    """"hierarchical" when both sides have >= 2 seeds, else "items" (see the module docstring)."""
    return HIERARCHICAL if min(n_seeds_a, n_seeds_b) >= MIN_SEEDS_FOR_HIERARCHICAL else ITEMS


def _matrix(runs: Sequence[dict[str, float]], items: list[str]) -> np.ndarray:
    return np.array([[run[item] for item in items] for run in runs], dtype=np.float64)


def two_sided_p(stats: np.ndarray, difference: float) -> float:
    """Share of replicates on the other side of 0 from `difference` (0 counted as the other side), doubled, <= 1."""
    if difference == 0:
        return 1.0
    other = np.count_nonzero(stats <= 0) if difference > 0 else np.count_nonzero(stats >= 0)
    return min(1.0, 2.0 * other / len(stats))


def _check(n_resamples: int, confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")


def _summary(stats: np.ndarray, difference: float, confidence: float, bootstrap: str, **counts) -> HierarchicalComparison:
    """The percentile interval and p of the replicates `stats` around the point `difference`."""
    alpha = 1.0 - confidence
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    difference = _clean(difference)
    return HierarchicalComparison(difference=difference, low=_clean(low), high=_clean(high), confidence=confidence,
                                  n_resamples=len(stats), p_value=two_sided_p(stats, difference), bootstrap=bootstrap,
                                  **counts)


def hierarchical_bootstrap(runs_a: Sequence[dict[str, float]], runs_b: Sequence[dict[str, float]],
                           n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0, *,
                           scale: float = 100.0) -> HierarchicalComparison:
    """Method a minus method b (x `scale`), seeds resampled per method and items resampled paired, on the items
    every run of both sides scored (the others counted in `n_dropped`). Each side needs >= 2 runs (seeds)."""
    _check(n_resamples, confidence)
    if min(len(runs_a), len(runs_b)) < MIN_SEEDS_FOR_HIERARCHICAL:
        raise ValueError(f"the hierarchical bootstrap needs >= {MIN_SEEDS_FOR_HIERARCHICAL} seeds per side, got "
                         f"{len(runs_a)} and {len(runs_b)} (use significance.paired_bootstrap)")
    pooled, _, dropped = pool_seeds(runs_a, runs_b)
    items = sorted(pooled)
    if not items:
        raise ValueError("no item is scored in every run of both sides: nothing to compare")
    a, b = _matrix(runs_a, items), _matrix(runs_b, items)
    n, seeds_a, seeds_b = len(items), len(runs_a), len(runs_b)
    difference = float((a.mean() - b.mean()) * scale)

    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, CHUNK_ENTRIES // n)
    uniform = np.full(n, 1.0 / n)
    for start in range(0, n_resamples, rows):
        size = min(start + rows, n_resamples) - start
        # each replicate's seed draw as weights (how often each seed was drawn / seeds), per method independently
        weights_a = np.eye(seeds_a)[rng.integers(0, seeds_a, (size, seeds_a))].mean(axis=1)
        weights_b = np.eye(seeds_b)[rng.integers(0, seeds_b, (size, seeds_b))].mean(axis=1)
        # one item draw per replicate, shared by both methods (paired): counts of each item / n
        item_weights = rng.multinomial(n, uniform, size=size) / n
        per_item = weights_a @ a - weights_b @ b  # (size, n): each replicate's seed-averaged per-item difference
        stats[start : start + size] = np.einsum("ri,ri->r", per_item, item_weights) * scale
    return _summary(stats, difference, confidence, HIERARCHICAL, n_items=n, n_seeds_a=seeds_a, n_seeds_b=seeds_b,
                    n_dropped=dropped)


def item_bootstrap(runs_a: Sequence[dict[str, float]], runs_b: Sequence[dict[str, float]], n_resamples: int = 10_000,
                   confidence: float = 0.95, seed: int = 0, *, scale: float = 100.0) -> HierarchicalComparison:
    """Today's test, seeds pooled per item and items resampled, with the p of `hierarchical_bootstrap`. It replays
    `significance.paired_bootstrap`'s draws (same generator, same chunks), so its interval is that one's (tested);
    it is redone here only because paired_bootstrap does not return its replicates."""
    _check(n_resamples, confidence)
    pooled_a, pooled_b, dropped = pool_seeds(runs_a, runs_b)
    if not pooled_a:
        raise ValueError("no item is scored in every run of both sides: nothing to compare")
    items = sorted(pooled_a)
    n = len(items)
    diffs = np.array([pooled_a[i] - pooled_b[i] for i in items], dtype=np.float64)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_resamples, dtype=np.float64)
    rows = max(1, significance.CHUNK_ENTRIES // n)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        stats[start:stop] = diffs[rng.integers(0, n, size=(stop - start, n))].sum(axis=1) * (scale / n)
    return _summary(stats, float(diffs.sum() * (scale / n)), confidence, ITEMS, n_items=n, n_seeds_a=len(runs_a),
                    n_seeds_b=len(runs_b), n_dropped=dropped)


def compare_runs(runs_a: Sequence[dict[str, float]], runs_b: Sequence[dict[str, float]], n_resamples: int = 10_000,
                 confidence: float = 0.95, seed: int = 0) -> HierarchicalComparison:
    """The bootstrap `choose_bootstrap` picks for these seed counts, on per-run item outcomes."""
    if choose_bootstrap(len(runs_a), len(runs_b)) == HIERARCHICAL:
        return hierarchical_bootstrap(runs_a, runs_b, n_resamples, confidence, seed)
    return item_bootstrap(runs_a, runs_b, n_resamples, confidence, seed)


def compare_records_auto(records_a: Sequence[dict], records_b: Sequence[dict], evaluator: str, metric: str, *,
                         n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                         cache: dict | None = None) -> HierarchicalComparison | Unavailable:
    """`significance.compare_records` with the bootstrap chosen by seed count: hierarchical when both groups have
    >= 2 runs, item-only otherwise. The per-item outcomes are read and checked exactly as there."""
    sides = significance.records_outcomes(records_a, records_b, evaluator, metric, cache)
    if isinstance(sides, Unavailable):
        return sides
    try:
        return compare_runs(*sides, n_resamples=n_resamples, confidence=confidence, seed=seed)
    except ValueError as err:  # no item in common
        return Unavailable(str(err))
