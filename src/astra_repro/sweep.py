"""Sweeps: a manifest of runs (one line of Hydra overrides each) and a SLURM array that works through it.

    python -m astra_repro.sweep table2_math_llama2            # writes sweeps/<name>/manifest.txt, prints sbatch
    python -m astra_repro.sweep demo_seeds --local            # or run the manifest here, one run after another

Each array task re-enters the idempotent entry point (`python -m astra_repro.train <overrides>`): finished runs
are skipped, interrupted ones resume, so a requeued or resubmitted array simply continues (design lesson 7).
A sweep file (slurm/sweeps/<name>.yaml) has `fixed` overrides and `axes`: the cartesian product of the axes.
An axis value that is a list is a group of overrides applied together (e.g. Table 4's window selections).

A study (a sweep with a `study:` block, study.py) has two stages: the grid, then each method at its best rate
with more seeds, planned from the grid's records. `--local` runs both; on SLURM, submit the grid's array, then run
the same command again when it is done for the second stage's. Finished runs are found by planning each line
(its config hash), so re-running a finished sweep starts no process at all.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from astra_repro import runs
from astra_repro.errors import ConfigError
from astra_repro.paths import PROJECT_ROOT
from astra_repro.study import Study, load_runs, stage2_lines

SWEEP_DIR = PROJECT_ROOT / "slurm" / "sweeps"


def load_sweep(name: str):
    path = SWEEP_DIR / f"{name}.yaml"
    if not path.exists():
        valid = ", ".join(sorted(p.stem for p in SWEEP_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown sweep '{name}'; valid: {valid}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def expand(sweep: dict) -> list[list[str]]:
    """The cartesian product of the axes, each run as a list of overrides (fixed ones first)."""
    fixed = list(sweep.get("fixed") or [])
    axes = sweep.get("axes") or {}
    choices = []
    for key, values in axes.items():
        options = []
        for value in values:
            if isinstance(value, list):  # a group of overrides named by the axis
                options.append([str(v) for v in value])
            else:
                options.append([f"{key}={value}"])
        choices.append(options)
    runs = []
    for combo in itertools.product(*choices) if choices else [()]:
        overrides = fixed + [o for group in combo for o in group]
        runs.append([resolve_references(o, overrides) for o in overrides])
    return runs


def resolve_references(override: str, overrides: list[str]) -> str:
    """`alpha=${rank}` -> `alpha=16` using this run's own `rank=16` (so alpha = r sweeps stay one line)."""
    key, _, value = override.partition("=")
    if value.startswith("${") and value.endswith("}"):
        ref = value[2:-1]
        for other in overrides:
            other_key, _, other_value = other.partition("=")
            if other_key == ref:
                return f"{key}={other_value}"
        raise ConfigError(f"sweep override '{override}' refers to '{ref}', which this run does not set")
    return override


def write_manifest(name: str, out_root: Path | None = None, definition: dict | None = None) -> Path:
    """The sweep's lines; a study's first stage also holds its untrained baseline's run."""
    definition = definition if definition is not None else load_sweep(name)
    lines = expand(definition)
    if definition.get("study"):
        lines += Study.from_sweep(name, definition).baseline_lines()
    return write_lines((out_root or PROJECT_ROOT / "sweeps") / name, "manifest.txt", lines)


def finished_runs(runs_overrides: list[list[str]]) -> list[bool]:
    """Whether each run's record exists: every line planned as the entry point plans it (same config hash, same
    folder), without starting a process per line."""
    from hydra import compose, initialize_config_dir

    from astra_repro.paths import CONFIG_DIR
    from astra_repro.spec import plan_run

    done = []
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for overrides in runs_overrides:
            cfg = compose("config", overrides=list(overrides))
            done.append(runs.is_complete(runs.run_dir(plan_run(cfg), cfg.get("output_root"))))
    return done


def write_lines(folder: Path, file_name: str, runs_overrides: list[list[str]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / file_name
    manifest.write_text("".join(" ".join(shlex.quote(o) for o in run) + "\n" for run in runs_overrides))
    return manifest


def progress_line(done: int, total: int, elapsed_s: float) -> str:
    """`[3/43] 7.2 min so far, ~2.4 h left` (the mean run so far times the runs left; none before the first)."""
    line = f"[{done + 1}/{total}]"
    if done:
        left = elapsed_s / done * (total - done)
        line += f" {_duration(elapsed_s)} so far, ~{_duration(left)} left"
    return line


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def run_locally(name: str, runs_overrides: list[list[str]]) -> int:
    """Run the unfinished lines here, one after another; returns how many were started. A run that fails stops
    the sweep with one line naming it (the finished runs stay; the same command continues from there)."""
    pending = [run for run, done in zip(runs_overrides, finished_runs(runs_overrides)) if not done]
    print(f"{len(runs_overrides) - len(pending)} of {len(runs_overrides)} runs already finished; {len(pending)} to run", flush=True)
    started = time.monotonic()
    for i, overrides in enumerate(pending):
        line = " ".join(shlex.quote(o) for o in overrides)
        print(f"{progress_line(i, len(pending), time.monotonic() - started)} {line}", flush=True)
        # the run records which sweep it belongs to (the cost table per sweep); not part of the run's hash
        env = dict(os.environ, **{runs.SWEEP_ENV: name})
        try:
            subprocess.run([sys.executable, "-m", "astra_repro.train", *overrides], check=True, env=env)
        except subprocess.CalledProcessError as err:
            print(f"error: run {i + 1} of {len(pending)} exited with status {err.returncode} (its output is above): "
                  f"python -m astra_repro.train {line}. Fix it, then run `python -m astra_repro.sweep {name} --local` "
                  "again: finished runs are kept and skipped.", file=sys.stderr)
            sys.exit(1)
    return len(pending)


def load_study(name: str) -> Study:
    return Study.from_sweep(name, load_sweep(name))


def study_stage2(name: str) -> tuple[list[list[str]], list[str]]:
    """The second stage's lines (each method at its best rate x the study's seeds) from the records so far."""
    study = load_study(name)
    return stage2_lines(study, load_runs(study))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a sweep in slurm/sweeps/ (without .yaml)")
    parser.add_argument("--local", action="store_true", help="run every unfinished line here, sequentially")
    parser.add_argument("--parallel", type=int, default=8, help="SLURM array concurrency (%%K)")
    args = parser.parse_args(argv)
    try:
        sweep = load_sweep(args.name)
        manifest = write_manifest(args.name, definition=sweep)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    lines = [shlex.split(line) for line in manifest.read_text().splitlines()]
    print(f"{len(lines)} runs -> {manifest}")
    submit = f"sbatch --array=0-{{}}%{args.parallel} slurm/array.sbatch {{}}"
    if args.local:
        run_locally(args.name, lines)
    if not sweep.get("study"):
        if not args.local:
            print(submit.format(len(lines) - 1, manifest))
        return
    try:
        stage2, waiting = study_stage2(args.name)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    if waiting:
        if not args.local:
            print(submit.format(len(lines) - 1, manifest))
        print(f"stage 2 (best rate x seeds) waits for the grid of: {'; '.join(waiting)}. Run this command again "
              "once the grid is done.")
        return
    manifest2 = write_lines(manifest.parent, "manifest_stage2.txt", stage2)
    print(f"stage 2: {len(stage2)} runs (each method at its best rate) -> {manifest2}")
    if args.local:
        run_locally(args.name, stage2)
        print(f"study {args.name} is complete: make tables")
    else:
        print(submit.format(len(stage2) - 1, manifest2))


if __name__ == "__main__":
    main()
