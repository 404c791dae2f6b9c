"""The checks of the composed config: every user-settable value that has a type or a range. The run spec is built
through them (spec.RunSpec.from_config: the checked value is the used value); `python -m astra_repro.evaluate` runs
the shared and evaluator checks (check_eval_config).

A mistake gives one line naming the key, the bad value and the fix (a `ConfigError`, printed by the entry point
without a traceback), never a Python traceback from deep inside a stage and never a silently wrong run: `alpha=0`
would train an adapter whose scaling is 0, `force=maybe` would delete a finished run.

Every key is flat (the scale's values are composed in: configs/scale, task_scale, method_scale); a value the
composition left unset (`???`) is one error naming the keys and the file that sets them for the run's scale.
"""

from __future__ import annotations

from omegaconf import DictConfig, ListConfig, OmegaConf

from astra_repro.errors import ConfigError
# The checked accessors (each returns the value it checked) live in options.py; the run spec reads them from here.
from astra_repro.options import _get, boolean, choice, get, integer, number  # noqa: F401
from astra_repro.threads import WAIT_POLICIES

BACKENDS = ("auto", "hf", "vllm")
GENERATION_PATHS = ("regroup", "padded")  # evaluators/decoding.PATHS (not imported: no torch here)
BF16 = ("auto", True, False)


def check_complete(cfg: DictConfig, under: str = "") -> None:
    """Every value set: a `???` left by the composition means no scale file states it for this run."""
    missing = sorted(k for k in OmegaConf.missing_keys(cfg) if not k.startswith("hydra") and k.startswith(under))
    if not missing:
        return
    scale, task = _get(cfg, "scale"), _get(cfg, "task.name")
    where = f"configs/task_scale/{task}_{scale}.yaml" if missing[0].startswith(("task.", "calibration.")) else \
        f"configs/scale/{scale}.yaml"
    shown = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if len(missing) > 4 else "")
    raise ConfigError(f"{shown} {'is' if len(missing) == 1 else 'are'} not set at scale '{scale}' (no {where}?); "
                      f"add that file or set {missing[0]}=<value>")


def check_eval_config(cfg: DictConfig) -> None:
    """What `python -m astra_repro.evaluate` reads of the config: the shared keys and the evaluator blocks (composed at
    a rescored run's own scale; each block against its evaluator's declared settings)."""
    from astra_repro.evaluators import check_settings

    check_complete(cfg, under="task.evaluators")
    check_shared_keys(cfg)
    check_settings(_get(cfg, "task.evaluators"))


def check_shared_keys(cfg: DictConfig) -> None:
    """The top-level keys both entry points take (`seed` is part of the composed config either way: a typo in it is
    still a mistake, not something to ignore)."""
    integer(cfg, "seed", minimum=0)
    boolean(cfg, "force")
    choice(cfg, "eval.backend", BACKENDS)
    check_runtime(cfg)
    choice(cfg, "eval.generation", GENERATION_PATHS)
    evaluators = _get(cfg, "evaluators")
    if evaluators is not None and not isinstance(evaluators, str) and not (
        isinstance(evaluators, (list, ListConfig)) and all(isinstance(e, str) for e in evaluators)
    ):
        raise ConfigError(f"evaluators={evaluators!r} is not a name or a list of names; e.g. evaluators=[gsm8k]")


def check_runtime(cfg: DictConfig) -> None:
    """`runtime.threads` (auto or a count) and `runtime.omp_wait_policy` (astra_repro/threads.py)."""
    if _get(cfg, "runtime") is None:  # a config without the block: the defaults apply
        return
    if _get(cfg, "runtime.threads") != "auto":
        integer(cfg, "runtime.threads", minimum=1, example="runtime.threads=2 or runtime.threads=auto")
    choice(cfg, "runtime.omp_wait_policy", WAIT_POLICIES)


# ------------------------------------------------------------------------------------------------- checks


def bf16(cfg):
    value = _get(cfg, "trainer.bf16")
    if value not in BF16:
        raise ConfigError(f"trainer.bf16={value!r} is not valid; use auto, true or false")
    return value


def max_steps(cfg) -> int:
    steps = integer(cfg, "task.train.max_steps", minimum=-1)
    if steps == 0:
        raise ConfigError("task.train.max_steps=0 trains nothing; use a positive number or -1 (= the epochs)")
    return steps
