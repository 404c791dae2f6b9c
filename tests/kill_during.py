"""`python tests/kill_during.py STAGE <train overrides>`: run `python -m astra_repro.train`, but kill -9 this process
in the middle of STAGE, the way a pre-empted node or an out-of-memory kill would: after part of the stage's files
are on disk and before the stage has marked itself done.

    calibration  the statistics cache half written (a temp file cut short), the cache lock held
    init         the residual base model saved and then cut short, no init/COMPLETE
    training     the second checkpoint's weights saved, its optimizer and trainer state not
    export       the merged model saved and then cut short, no export/COMPLETE
    evaluation   the first evaluator finished, the second one started
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def cut_short(path: Path) -> None:
    """Keep the first half of a file, as a write stopped halfway would."""
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


def on_call(owner, name: str, nth: int, action) -> None:
    """Replace owner.name so that its nth call runs `action(original, *args, **kwargs)` instead."""
    original = getattr(owner, name)
    calls = {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == nth:
            return action(original, *args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def kill_in_calibration() -> None:
    from astra_repro.calibration import cache

    def half_written(original, obj, path, *args, **kwargs):
        original(obj, path, *args, **kwargs)
        cut_short(Path(path))
        die()

    on_call(cache.torch, "save", 1, half_written)


def kill_in_init() -> None:
    from astra_repro import export

    def half_saved(original, peft_model, init_dir, *args, **kwargs):
        original(peft_model, init_dir, *args, **kwargs)
        cut_short(Path(init_dir) / export.INIT_BASE_SUBDIR / "model.safetensors")
        die()

    on_call(export, "save_initial_adapter", 1, half_saved)


def kill_in_training() -> None:
    from transformers import Trainer

    on_call(Trainer, "_save_optimizer_and_scheduler", 2, lambda original, *a, **k: die())


def kill_in_export() -> None:
    from astra_repro import export

    def half_saved(original, model, out_dir, *args, **kwargs):
        original(model, out_dir, *args, **kwargs)
        cut_short(Path(out_dir) / "model.safetensors")
        die()

    on_call(export, "export_merged", 1, half_saved)


def kill_in_evaluation() -> None:
    from astra_repro.evaluators import stage

    on_call(stage, "get_evaluator", 2, lambda original, *a, **k: die())


KILLERS = {"calibration": kill_in_calibration, "init": kill_in_init, "training": kill_in_training,
           "export": kill_in_export, "evaluation": kill_in_evaluation}

if __name__ == "__main__":
    stage, overrides = sys.argv[1], sys.argv[2:]
    KILLERS[stage]()
    from astra_repro import train

    sys.argv = ["astra_repro.train", *overrides]
    train.main()
