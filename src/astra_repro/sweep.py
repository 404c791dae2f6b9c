"""Sweeps: a manifest of runs (one line of Hydra overrides each) and a SLURM array that works through it.

    python -m astra_repro.sweep table2_math_llama2            # writes sweeps/<name>/manifest.txt, prints sbatch
    python -m astra_repro.sweep demo_seeds --local            # or run the manifest here, one run after another

Each array task re-enters the idempotent entry point (`python -m astra_repro.train <overrides>`): finished runs
are skipped, interrupted ones resume, so a requeued or resubmitted array simply continues (design lesson 7).
A sweep file (slurm/sweeps/<name>.yaml) has `fixed` overrides and `axes`: the cartesian product of the axes.
An axis value that is a list is a group of overrides applied together (e.g. Table 4's window selections).
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

from astra_repro.errors import ConfigError
from astra_repro.paths import PROJECT_ROOT

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


def write_manifest(name: str, out_root: Path | None = None) -> Path:
    runs = expand(load_sweep(name))
    folder = (out_root or PROJECT_ROOT / "sweeps") / name
    folder.mkdir(parents=True, exist_ok=True)
    manifest = folder / "manifest.txt"
    manifest.write_text("".join(" ".join(shlex.quote(o) for o in run) + "\n" for run in runs))
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", help="a sweep in slurm/sweeps/ (without .yaml)")
    parser.add_argument("--local", action="store_true", help="run every line here, sequentially")
    parser.add_argument("--parallel", type=int, default=8, help="SLURM array concurrency (%%K)")
    args = parser.parse_args(argv)
    try:
        manifest = write_manifest(args.name)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    lines = manifest.read_text().splitlines()
    print(f"{len(lines)} runs -> {manifest}")
    if args.local:
        for i, line in enumerate(lines):
            print(f"[{i + 1}/{len(lines)}] {line}", flush=True)
            # the run records which sweep it belongs to (the cost table per sweep); not part of the run's hash
            env = dict(os.environ, ASTRA_SWEEP=args.name)
            subprocess.run([sys.executable, "-m", "astra_repro.train", *shlex.split(line)], check=True, env=env)
        return
    print(f"sbatch --array=0-{len(lines) - 1}%{args.parallel} slurm/array.sbatch {manifest}")


if __name__ == "__main__":
    main()
