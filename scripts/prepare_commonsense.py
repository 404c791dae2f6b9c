"""Put lm-eval's own commonsense datasets into the HF datasets cache, so that the commonsense evaluators can use
`source=official` (and `auto` finds it) on machines without network access.

Run it once where the hub is reachable, with the same HF_HOME / HF_DATASETS_CACHE as the evaluation jobs:

    python scripts/prepare_commonsense.py                         # all eight benchmarks
    python scripts/prepare_commonsense.py --benchmarks piqa,boolq
    python scripts/prepare_commonsense.py --check                 # offline: report what is cached, download nothing

Each dataset is loaded through lm-eval's task (the same dataset path, config and splits the evaluator will read),
then reloaded with the hub forced offline to prove the cache is enough. Exit status 1 if any benchmark is not cached.
"""

from __future__ import annotations

import argparse
import sys

from astra_repro.evaluators.commonsense import load_official_task, official_task
from astra_repro.evaluators.lm_eval_tasks.specs import BENCHMARKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmarks", default=",".join(BENCHMARKS), help="comma-separated evaluator names")
    parser.add_argument("--check", action="store_true", help="only report which datasets are cached")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.benchmarks.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; valid: {', '.join(BENCHMARKS)}")

    if not args.check:
        import datasets.config

        if datasets.config.HF_HUB_OFFLINE:
            print("HF_HUB_OFFLINE / HF_DATASETS_OFFLINE is set: unset it to download (or use --check)", file=sys.stderr)
            return 1
        for name in names:
            task = load_official_task(BENCHMARKS[name])
            print(f"{name}: downloaded lm-eval task {BENCHMARKS[name].official_task} ({len(task.eval_docs)} documents)")

    missing = []
    for name in names:
        task, why_not = official_task(BENCHMARKS[name])
        if task is None:
            missing.append(name)
        status = f"cached ({len(task.eval_docs)} documents)" if task is not None else f"NOT cached ({why_not})"
        print(f"{name}: {BENCHMARKS[name].official_task} {status}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
