"""Analyses of finished runs. So far: the effective rank of each adapted layer's output activations (paper Eq. 9,
Figure 3), before and after fine-tuning.

    python -m astra_repro.analysis effective-rank RUN_DIR [RUN_DIR ...] [--samples N] [--seq-len L]

For every target layer (the run's target_modules: q, k, v, o, gate, up, down) the output-activation covariance C
is gathered on calibration data from the run's task, for the base model and for the run's merged model
(`<run>/export/merged`; full fine-tuning: `<run>/trained`), and

    R = exp(-Σ_j p_j ln p_j),  p_j = λ_j / Σ_k λ_k,  λ = eigenvalues of C          (Eq. 9)

is summed over the layers of each type. Writes `<run>/analysis/effective_rank.json`:

    {"samples": N, "base": {layer_type: total}, "merged": {layer_type: total},
     "per_layer": {"base": {module: R}, "merged": {module: R}},
     "dims": {layer_type: {"layers", "d_out", "max_total" (Σ d_out: the bound of a total)}}, ...}

Calibration: the calibration stage itself (same sampling, prompt, padding, per-sample absmax scaling as Astra's
init; configs/calibration/task.yaml for the run's scale), always on the task's own training records, with fp32
accumulation whatever the model's dtype (the spectrum's small eigenvalues matter here). Layers with more outputs
than inputs keep input-side statistics M on the fast path; their output covariance is W M Wᵀ, whose eigenvalues
come from `calibration.statistics.spectrum` without forming the d_out x d_out matrix. The base model's statistics
are computed once per (model, task data, settings) for all RUN_DIRs of one call.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections import defaultdict
from pathlib import Path

from astra_repro.errors import ConfigError

log = logging.getLogger(__name__)

RESULT_FILE = Path("analysis") / "effective_rank.json"
DEFAULT_ACCUMULATE = "float32"


# ------------------------------------------------------------------------------------------------- Eq. 9
def effective_rank_of_eigenvalues(eigvals) -> float:
    """Eq. 9 on eigenvalues (negative rounding noise clamped to 0), via calibration.statistics.effective_rank."""
    import torch

    from astra_repro.calibration.statistics import effective_rank

    values = torch.as_tensor(eigvals, dtype=torch.float64).clamp_min(0)
    if float(values.sum()) <= 0:
        return 0.0
    return effective_rank(values)


def effective_rank_of_covariance(covariance) -> float:
    """Eq. 9 on a symmetric covariance matrix."""
    import torch

    C = torch.as_tensor(covariance, dtype=torch.float64)
    return effective_rank_of_eigenvalues(torch.linalg.eigvalsh((C + C.T) / 2))


def layer_effective_rank(stats, weight, has_bias: bool = False) -> float:
    """Eq. 9 for one layer's calibration statistics: kind "output" (C itself) or "output_via_input" (C = W M Wᵀ,
    eigenvalues from the d_in-sized problem)."""
    from astra_repro.calibration.statistics import spectrum

    return effective_rank_of_eigenvalues(spectrum(stats, weight, has_bias=has_bias).eigvals.double().cpu())


def layer_type(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1]


def totals(per_layer: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for name, value in per_layer.items():
        out[layer_type(name)] += value
    return dict(out)


# ------------------------------------------------------------------------------------------------- run folders
def check_run(run_dir: Path) -> dict:
    """The run's record, plan and merged-model folder; ConfigError (one line) for anything else."""
    import yaml

    from astra_repro import runs

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} does not exist or is not a folder; give a run folder (results/runs/<task>/<run>)")
    if not (run_dir / runs.METRICS_FILE).exists():
        failed = run_dir / runs.FAILED_FILE
        why = f" (it failed: {failed.read_text().strip().splitlines()[0]})" if failed.exists() and failed.read_text().strip() else ""
        raise ConfigError(f"{run_dir} is not a finished run: no {runs.METRICS_FILE}{why}; finish it with python -m astra_repro.train")
    try:
        record = json.loads((run_dir / runs.METRICS_FILE).read_text())
        plan = yaml.safe_load((run_dir / "config.yaml").read_text())
    except FileNotFoundError:
        raise ConfigError(f"{run_dir} has no config.yaml; it was not written by python -m astra_repro.train") from None
    except (ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"{run_dir}: unreadable run record ({type(err).__name__}); rerun it (force=true)") from None
    if not isinstance(plan, dict) or not {"model", "task", "hp"} <= set(plan):
        raise ConfigError(f"{run_dir}/config.yaml is not a run plan (model, task, hp); rerun it (force=true)")
    method = plan.get("method", {}).get("name") or record.get("method")
    if method == "base":
        raise ConfigError(f"{run_dir} is a base-model run: it has no fine-tuned model to compare; give a trained run")
    from astra_repro.artifacts import artifacts_of
    from astra_repro.methods import get_method

    merged = artifacts_of(get_method(method)).model_folder(run_dir)  # export/merged, or trained/ of full fine-tuning
    if not (merged / "config.json").exists():
        raise ConfigError(f"{run_dir} has no merged export ({merged.relative_to(run_dir)}/config.json missing); "
                          "rerun the run to export it (python -m astra_repro.train ... with the same settings)")
    problem = runs.weights_problem(merged)
    if problem:
        raise ConfigError(f"{merged}: {problem}; delete {merged.parent if merged.name == 'merged' else merged} and rerun the run")
    return {"run_dir": run_dir, "record": record, "plan": plan, "method": method, "merged": merged}


def task_config(plan: dict, record: dict):
    """The task's YAML block as the run used it: configs/task/<name>.yaml with the run's resolved data and
    evaluators (the plan keeps those) and, for a task family, the run's member (GLUE's task)."""
    from omegaconf import OmegaConf

    from astra_repro.paths import CONFIG_DIR

    name = plan["task"]["name"]
    path = CONFIG_DIR / "task" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"the run's task '{name}' has no configs/task/{name}.yaml in this checkout")
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    cfg["data"] = plan["task"].get("data", cfg.get("data"))
    if "evaluators" in plan["task"]:
        cfg["evaluators"] = plan["task"]["evaluators"]
    if record.get("task_variant") and "glue_task" in cfg:
        cfg["glue_task"] = record["task_variant"]
    return OmegaConf.create(cfg)


def calibration_spec(plan: dict, samples: int | None, seq_len: int | None, n_pool: int):
    """The calibration stage's settings at the run's scale, as the composed config gives them (task source, output
    side, fp32 accumulation)."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from astra_repro import runs
    from astra_repro.calibration import CalibrationSpec
    from astra_repro.paths import CONFIG_DIR

    scale = runs.scale_of(plan.get("recipe")) or "paper"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("config", overrides=[f"task={plan['task']['name']}", f"scale={scale}", "calibration=task"])
    stage = OmegaConf.to_container(cfg.calibration, resolve=True)
    if samples is None:
        samples = int(stage["n_samples"])
    if samples > n_pool:
        log.warning("effective rank: %d samples asked, the task has %d records; using %d", samples, n_pool, n_pool)
        samples = n_pool
    stage.update(source="task", n_samples=int(samples), accumulate_dtype=DEFAULT_ACCUMULATE)
    if seq_len is not None:
        stage["seq_len"] = int(seq_len)
    return CalibrationSpec.from_config(stage, None, where="output")


def load_base(plan: dict):
    from omegaconf import OmegaConf

    from astra_repro.models import load_model

    return load_model(OmegaConf.create(plan["model"]))


def load_merged(plan: dict, folder: Path):
    from omegaconf import OmegaConf

    from astra_repro.models import load_pretrained, model_kind, torch_dtype

    model_cfg = OmegaConf.create(plan["model"])
    return load_pretrained(str(folder), model_kind(model_cfg), torch_dtype(model_cfg.dtype), local_only=True)


def device_for(choice: str):
    import torch

    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible; use --device cpu")
    return torch.device(choice)


# ------------------------------------------------------------------------------------------------- computation
def model_effective_ranks(model, tokenizer, records, spec, target_modules, device, desc: str) -> tuple[dict, dict]:
    """(module -> Eq. 9 value, layer type -> {"layers", "d_out", "max_total"}) for one model: one calibration pass (the stage's
    hooks and accumulators, no cache: merged models are seen once), then one spectrum per layer."""
    import torch
    from tqdm.auto import tqdm

    from astra_repro.calibration import run_calibration_pass
    from astra_repro.calibration.data import build_samples
    from astra_repro.calibration.statistics import ActivationRecorder, find_target_linears
    from astra_repro.models import activation_stream, is_seq2seq

    model.to(device)
    layers = find_target_linears(model, target_modules)
    if not layers:
        raise ConfigError(f"no nn.Linear in the model matches target_modules {list(target_modules)}")
    start_id = getattr(model.config, "decoder_start_token_id", None) if is_seq2seq(model) else None
    samples = build_samples(tokenizer, records, spec, decoder_start_token_id=start_id)
    streams = {name: activation_stream(model, name) for name in layers}
    recorder = ActivationRecorder(layers, spec, torch.float32, streams)
    try:
        run_calibration_pass(model, recorder, samples, spec, tokenizer, start_id)
        statistics = recorder.statistics()
    except FloatingPointError as err:
        raise ConfigError(f"{desc}: {err}; the model gives inf/NaN on the calibration data") from None
    per_layer, dims = {}, {}
    for name in tqdm(list(statistics), desc=f"{desc}: eigenvalues", unit="layer", leave=False, dynamic_ncols=True):
        layer = layers[name]
        per_layer[name] = layer_effective_rank(statistics.pop(name), layer.weight, has_bias=layer.bias is not None)
        entry = dims.setdefault(layer_type(name), {"layers": 0, "d_out": int(layer.out_features), "max_total": 0})
        entry["layers"] += 1
        entry["d_out"] = max(entry["d_out"], int(layer.out_features))
        entry["max_total"] += int(layer.out_features)  # the largest possible total: every layer at full rank
    return per_layer, dims


def analyse_runs(run_dirs: list[Path], samples: int | None = None, seq_len: int | None = None,
                 device: str = "auto", force: bool = False) -> list[Path]:
    """effective_rank.json for every run folder (all checked before any work starts); the base model is computed
    once per (model, task data, settings). Returns the files written."""
    import gc

    import torch
    from omegaconf import OmegaConf
    from tqdm.auto import tqdm

    from astra_repro import runs
    from astra_repro.models import model_kind
    from astra_repro.tasks import get_task

    checked = [check_run(Path(d)) for d in run_dirs]
    torch_device = device_for(device)
    todo = [c for c in checked if force or not (c["run_dir"] / RESULT_FILE).exists()]
    for c in checked:
        if c not in todo:
            print(f"[astra_repro] already analysed: {c['run_dir'] / RESULT_FILE}  (--force redoes it)")
    base_cache: dict[str, tuple[dict, dict]] = {}
    written = []
    progress = tqdm(total=2 * len(todo), desc="effective rank", unit="model", dynamic_ncols=True)
    try:
        for c in todo:
            plan, record = c["plan"], c["record"]
            task = get_task(task_config(plan, record), plan.get("recipe", "paper"), model_kind(OmegaConf.create(plan["model"])))
            pool, data_info = task.load_training_records()
            records = task.calibration_records(pool)
            spec = calibration_spec(plan, samples, seq_len, len(records))
            targets = list(plan["hp"]["target_modules"])
            key = runs.canonical_json({"model": plan["model"], "task": plan["task"]["name"], "variant": record.get("task_variant"),
                                       "data": plan["task"].get("data"), "spec": spec.as_dict(), "targets": targets})
            if key not in base_cache:
                model, tokenizer = load_base(plan)
                base_cache[key] = model_effective_ranks(model, tokenizer, records, spec, targets, torch_device, "base model")
                del model
                gc.collect()
            progress.update(1)
            base_layers, dims = base_cache[key]
            model, tokenizer = load_merged(plan, c["merged"])
            merged_layers, merged_dims = model_effective_ranks(model, tokenizer, records, spec, targets, torch_device,
                                                               f"{c['run_dir'].name}")
            del model
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            progress.update(1)
            if set(merged_layers) != set(base_layers):
                raise ConfigError(f"{c['merged']} has other target layers than the base model; is it this run's model?")
            result = {
                "samples": spec.n_samples,
                "seq_len": spec.seq_len,
                "base": totals(base_layers),
                "merged": totals(merged_layers),
                "per_layer": {"base": base_layers, "merged": merged_layers},
                "dims": dims,
                "model": plan["model"].get("name"),
                "task": plan["task"]["name"],
                "task_variant": record.get("task_variant"),
                "method": c["method"],
                "method_label": record.get("method_label"),
                "rank": record.get("rank"),
                "merged_weights": str(c["merged"]),
                "calibration": {**spec.as_dict(), "data_source": data_info.get("data_source")},
                "definition": "Eq. 9: exp(-sum p ln p), p = eigenvalues / their sum, of each layer's output-activation "
                              "covariance; totals are sums over the layers of a type",
            }
            out = c["run_dir"] / RESULT_FILE
            runs.atomic_write_json(out, result)
            written.append(out)
            print(f"[astra_repro] {c['run_dir'].name}: " + ", ".join(
                f"{t} {result['base'][t]:.1f}->{result['merged'][t]:.1f}" for t in result["base"]))
            print(f"[astra_repro] wrote {out}")
    finally:
        progress.close()
    return written


# ------------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m astra_repro.analysis", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    er = sub.add_parser(
        "effective-rank", help="effective rank (Eq. 9) per layer type, base vs merged model (Figure 3)",
        description="Effective rank (paper Eq. 9) of every target layer's output-activation covariance, summed per "
                    "layer type, for the base model and each run's merged model; writes <run>/analysis/effective_rank.json. "
                    "Figure 3 (python -m astra_repro.report.figures) reads it.")
    er.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="finished run folder(s) with a merged export")
    er.add_argument("--samples", type=int, default=None,
                    help="calibration samples (default: calibration.n_samples at the run's scale)")
    er.add_argument("--seq-len", type=int, default=None, help="tokens per sample (default: calibration.seq_len of the run's scale)")
    er.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the models run (default auto)")
    er.add_argument("--force", action="store_true", help="recompute runs that already have effective_rank.json")
    return parser


def main(argv: list[str] | None = None) -> None:
    from astra_repro.cli import exit_with

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    try:
        if args.samples is not None and args.samples < 1:
            raise ConfigError(f"--samples must be a positive integer, got {args.samples}")
        if args.seq_len is not None and args.seq_len < 2:
            raise ConfigError(f"--seq-len must be >= 2, got {args.seq_len}")
        analyse_runs(args.run_dirs, args.samples, args.seq_len, args.device, args.force)
    except ConfigError as err:
        exit_with(err)


if __name__ == "__main__":
    main()
