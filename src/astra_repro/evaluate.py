"""Score a model without training it, with the same evaluators, protocol and record format as a run.

    python -m astra_repro.evaluate base task=code                      # the configured model= as it is
    python -m astra_repro.evaluate results/runs/math/astra_smollm2_135m_r16_s42_1a2b3c4d task=code
    python -m astra_repro.evaluate /models/my-merged-llama task=math model=llama2_7b evaluators=[math]
    python -m astra_repro.evaluate base model=llama2_7b eval.backend=vllm  # the authors' engine, on a GPU

TARGET is `base` (the model that `model=` names), a run folder (its merged export is scored: the paper scores
merged models) or a saved HF model folder. Everything after it is a Hydra override as for `astra_repro.train`
(task=, evaluators=[..], eval.backend=, task.evaluators.<name>.<key>=, force=true). The record goes to
results/runs/<task>/eval_<name>_<hash>/ (metrics.json last, predictions.jsonl), so `make tables` shows it: a
rescored run is labelled "<method> (rescored)", or "<method> [<task> run]" when scored on another task.
Bad input is one `error:` line naming the fix (exit status 2); a scoring that stops on an error leaves a FAILED
file with the message instead of metrics.json, and the next run of the command starts that folder afresh.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from astra_repro import runs, threads
from astra_repro.errors import ConfigError
from astra_repro.evaluators import EvalTarget
from astra_repro.paths import CONFIG_DIR, results_dir

log = logging.getLogger("astra_repro")


RUN_PLAN_KEYS = ("model.name", "model.dtype", "task.name", "method.name", "recipe", "hp.rank", "seed")
HELP = "python -m astra_repro.evaluate --help"


def parse_argv(argv: list[str]) -> tuple[str, list[str]]:
    flags = [a for a in argv if a.startswith("-") and "=" not in a]
    if flags:
        raise ConfigError(f"unknown option '{flags[0]}'; give TARGET and key=value overrides ({HELP})")
    positional = [a for a in argv if "=" not in a]
    if len(positional) != 1:
        raise ConfigError(f"give exactly one TARGET: base, a run folder or a model folder ({HELP})")
    return positional[0], [a for a in argv if a != positional[0]]


def one_line(err: BaseException, lines: int = 1) -> str:
    """The first `lines` lines of an error message from a library, as one line (caret-only lines dropped)."""
    text = [line.strip().rstrip(".") for line in str(err).splitlines() if line.strip().strip("^")]
    return "; ".join(text[:lines]) or type(err).__name__


def compose_config(overrides: list[str]) -> DictConfig:
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose("config", overrides=overrides)
    except (HydraException, OmegaConfBaseException) as err:  # Hydra's own message is several lines
        raise ConfigError(f"bad override: {one_line(err, lines=2)} ({HELP})") from None


def read_run(folder: Path) -> tuple[dict, dict]:
    """(plan, record) of a run folder: its config.yaml and, once finished, its metrics.json."""
    import yaml

    try:
        plan = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"), resolve=True)
        record = json.loads((folder / runs.METRICS_FILE).read_text()) if runs.is_complete(folder) else {}
    except (OSError, ValueError, yaml.YAMLError, OmegaConfBaseException) as err:
        raise ConfigError(f"run folder {folder} has an unreadable config.yaml or {runs.METRICS_FILE} "
                          f"({type(err).__name__}: {one_line(err)}); give a run folder written by astra_repro.train") from None
    conf = OmegaConf.create(plan) if isinstance(plan, dict) else None
    missing = [key for key in RUN_PLAN_KEYS if conf is None or OmegaConf.select(conf, key) is None]
    if missing or not isinstance(record, dict):
        what = f"its config.yaml lacks {', '.join(missing)}" if missing else f"its {runs.METRICS_FILE} is not a record"
        raise ConfigError(f"{folder} is not a run folder written by astra_repro.train ({what}); give another TARGET")
    return plan, record


def describe_target(target: str, overrides: list[str]) -> tuple[dict, list[str]]:
    """What is scored (kind, path, names for the record) and the overrides that default to the source run's
    model and task (the user's own overrides win)."""
    if target == "base":
        return {"kind": "base"}, overrides
    folder = Path(target).expanduser()
    if not folder.exists():
        raise ConfigError(f"TARGET '{target}' is neither `base` nor an existing folder; give a run folder or a model folder")
    is_run = (folder / "config.yaml").exists() and ((folder / runs.INIT_DIR).exists() or (folder / runs.METRICS_FILE).exists())
    if is_run:
        plan, record = read_run(folder)
        defaults = []
        if not any(o.startswith("model=") for o in overrides) and (CONFIG_DIR / "model" / f"{plan['model']['name']}.yaml").exists():
            defaults.append(f"model={plan['model']['name']}")
        if not any(o.startswith("task=") for o in overrides):
            defaults.append(f"task={plan['task']['name']}")
        if not any(o.startswith("scale=") for o in overrides):  # the run's scale: its evaluator sizes
            defaults.append(f"scale={runs.scale_of(plan['recipe'])}")
        return {"kind": "run", "path": str(folder.resolve()), "plan": plan, "record": record}, defaults + overrides
    if (folder / "config.json").exists():
        return {"kind": "model_folder", "path": str(folder.resolve())}, overrides
    raise ConfigError(f"'{folder}' is not a run folder (config.yaml + metrics.json/init) nor a model folder (config.json)")


def run_model_folder(source: dict) -> Path | None:
    """The folder holding a run's final weights: the merged export, FFT's trained model, or None (untrained `base`)."""
    from astra_repro.artifacts import finished_model_folder

    run_dir = Path(source["path"])
    folder = finished_model_folder(run_dir)
    if folder is not None:
        return folder
    if source["plan"]["method"]["name"] == "base":
        return None
    raise ConfigError(f"run {run_dir.name} has no exported model yet; finish it first (re-run its train command)")


def load_folder(folder: Path, dtype_name: str):
    from transformers import AutoConfig

    from astra_repro.models import load_pretrained, torch_dtype

    try:
        seq2seq = getattr(AutoConfig.from_pretrained(folder), "is_encoder_decoder", False)
        return load_pretrained(str(folder), "seq2seq" if seq2seq else "causal_lm", torch_dtype(dtype_name))
    except (OSError, ValueError) as err:  # a broken config.json, missing weights or tokenizer files
        raise ConfigError(f"model folder {folder} cannot be loaded ({one_line(err)}); give a folder saved with "
                          "save_pretrained (config.json, weights and tokenizer files)") from None


def load_target(source: dict, cfg: DictConfig) -> tuple[EvalTarget, dict]:
    """The model to score and the record fields that say what it is."""
    from astra_repro.models import load_model, saved_model_folder

    settings = {"backend": cfg.eval.backend, "generation": cfg.eval.generation}
    if source["kind"] == "model_folder":
        folder = Path(source["path"])
        model, tokenizer = load_folder(folder, cfg.model.dtype)
        return EvalTarget(model, tokenizer, str(folder), **settings), {
            "model": cfg.model.name, "method": "external", "method_label": folder.name, "rank": 0, "seed": 0,
        }
    if source["kind"] == "run":
        plan, record = source["plan"], source["record"]
        label = record.get("method_label", plan["method"]["name"])
        folder = run_model_folder(source)
        same_task = plan["task"]["name"] == cfg.task.name
        fields = {
            "model": plan["model"]["name"], "method": plan["method"]["name"],
            "method_label": f"{label} (rescored)" if same_task else f"{label} [{plan['task']['name']} run]",
            "rank": plan["hp"]["rank"], "seed": plan["seed"], "n_trainable_params": record.get("n_trainable_params"),
        }
        if folder is not None:
            model, tokenizer = load_folder(folder, plan["model"]["dtype"])
            return EvalTarget(model, tokenizer, str(folder), **settings), fields
        model_cfg = OmegaConf.create(plan["model"])
    else:
        model_cfg = cfg.model
        fields = {"model": cfg.model.name, "method": "base", "method_label": "base", "rank": 0, "seed": 0}
    model, tokenizer = load_model(model_cfg)
    return EvalTarget(model, tokenizer, saved_model_folder(model_cfg), **settings), fields


def evaluation_plan(cfg: DictConfig, source: dict) -> dict:
    from astra_repro.spec import select_evaluators

    task = OmegaConf.to_container(cfg.task, resolve=True)
    source_id = {k: v for k, v in source.items() if k in ("kind", "path")}
    if source["kind"] == "base":
        source_id["model"] = OmegaConf.to_container(cfg.model, resolve=True)
    return {
        "source": source_id,
        # the scale the evaluators' sizes come from: a rescored run's own (describe_target composes with
        # scale=<its scale> unless the command line names another), else the configured model's
        "recipe": cfg.scale,
        "task": {"name": task["name"], "evaluators": select_evaluators(task["evaluators"], cfg.get("evaluators"))},
    }


def output_folder(plan: dict, fields: dict, cfg: DictConfig) -> Path:
    source = plan["source"]
    name = Path(source["path"]).name if "path" in source else f"base_{fields['model']}"
    root = Path(cfg.output_root) if cfg.output_root else results_dir() / "runs"
    return root / plan["task"]["name"] / f"eval_{name}_{runs.config_hash(plan)}"


def evaluate(argv: list[str]) -> Path:
    from astra_repro.cli import check_config_choices, check_override_keys
    from astra_repro.config_check import check_eval_config
    from astra_repro.evaluators.stage import print_metrics

    wall_start = time.time()
    target_arg, overrides = parse_argv(argv)
    check_config_choices(overrides)
    source, overrides = describe_target(target_arg, overrides)
    check_override_keys(overrides)  # with the source run's model / task / scale
    cfg = compose_config(overrides)
    check_eval_config(cfg)  # before a model is loaded or a folder written
    threads.apply_runtime(cfg.get("runtime"))
    plan = evaluation_plan(cfg, source)
    target, fields = load_target(source, cfg)
    out = output_folder(plan, fields, cfg)
    if runs.is_complete(out) and not cfg.force:
        print(f"[astra_repro] already scored: {out}  (force=true redoes it)")
        print_metrics(json.loads((out / runs.METRICS_FILE).read_text()))
        return out
    if out.exists():
        shutil.rmtree(out)  # an unfinished or FAILED folder starts clean
    runs.check_disk(out, 0, "this evaluation")  # creates it; an unwritable output_root is a one-line error
    try:
        return score_into(out, plan, source, cfg, target, fields, wall_start)
    except BaseException as err:  # the folder must not look finished or in progress: it says why it stopped
        runs.mark_failed(out, err)
        raise


def score_into(out: Path, plan: dict, source: dict, cfg: DictConfig, target: EvalTarget, fields: dict,
               wall_start: float) -> Path:
    """Run the evaluators into the empty folder `out`; metrics.json, its last write, marks it finished."""
    from astra_repro.tasks import get_task
    from astra_repro.evaluators.stage import evaluate_stage, print_metrics

    runs.atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plan)))
    print(f"[astra_repro] scoring {source['kind']} {source.get('path', fields['model'])} on task={plan['task']['name']} -> {out}")
    t0 = time.time()
    metrics, eval_info, versions = evaluate_stage(plan, target, out)
    record = {
        "run_name": out.name,
        "config_hash": runs.config_hash(plan),
        "task": plan["task"]["name"],
        "task_variant": get_task(cfg.task, plan["recipe"]).variant,
        "recipe": plan["recipe"],
        **fields,
        "evaluated_by": "astra_repro.evaluate",
        "source": plan["source"] if source["kind"] != "run" else {"kind": "run", "path": source["path"]},
        "eval_data": eval_info,
        "evaluator_versions": versions,
        "metrics": metrics,
        "timings": {"eval_s": round(time.time() - t0, 2), "wall_s": round(time.time() - wall_start, 2)},
        "runtime": threads.runtime_record(),
        "software": runs.software_versions(),
    }
    runs.atomic_write_json(out / runs.METRICS_FILE, record)
    print_metrics(record)
    print(f"[astra_repro] record: {out / runs.METRICS_FILE}")
    return out


def main(argv: list[str] | None = None) -> None:
    from astra_repro.cli import exit_with

    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(levelname)s %(name)s] %(message)s")
    logging.getLogger("transformers").setLevel(logging.WARNING)
    torch.set_grad_enabled(False)
    try:
        evaluate(argv)
    except ConfigError as err:
        exit_with(err)


if __name__ == "__main__":
    main()
