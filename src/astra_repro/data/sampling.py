"""Deterministic sampling of distinct synthetic items for one split (shared by the synthetic data generators)."""

from __future__ import annotations

import hashlib
import random
from typing import Callable, TypeVar

Item = TypeVar("Item")


def stream_seed(namespace: str, split: str, seed: int) -> int:
    """A seed of its own per (generator, split, seed): Python's hash() is salted per process, sha256 is not."""
    digest = hashlib.sha256(f"{namespace}|{split}|{seed}".encode()).hexdigest()
    return int(digest[:16], 16)


def sample_distinct(
    namespace: str,
    split: str,
    n: int,
    seed: int,
    draw: Callable[[random.Random], Item],
    key: Callable[[Item], str],
    belongs: Callable[[Item], bool],
    render: Callable[[Item, int, random.Random], dict],
) -> list[dict]:
    """`n` records of items drawn until `n` distinct ones (by `key`) that `belong` to this split were found."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(stream_seed(namespace, split, seed))
    records: list[dict] = []
    seen: set[str] = set()
    # Most candidates may be rejected (e.g. ~80% for a test split); the bound only guards against a bug.
    for _ in range(1000 + 100 * n):
        if len(records) == n:
            return records
        item = draw(rng)
        if key(item) in seen or not belongs(item):
            continue
        seen.add(key(item))
        records.append(render(item, len(records), rng))
    if len(records) < n:
        raise ValueError(f"could only generate {len(records)} distinct {split} items, asked for {n}")
    return records
