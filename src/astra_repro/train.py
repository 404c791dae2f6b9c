"""One run: calibrate -> init -> train -> export -> evaluate -> record.

    python -m astra_repro.train method=astra task=math              # embedded SmolLM2, offline, minutes on a CPU
    python -m astra_repro.train method=astra task=code              # CodeFeedback -> HumanEval(+)/MBPP(+)
    python -m astra_repro.train model=llama2_7b method=pissa         # the paper's setup (Table 8)
    python -m astra_repro.methods                                    # list the methods
    python -m astra_repro.tasks                                      # list the tasks

Every stage leaves files in the run folder, so running the same command again skips what is done: a finished
run only prints where its record is (force=true redoes it) and an interrupted one resumes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from astra_repro import runs, threads
from astra_repro.spec import RunSpec
from astra_repro.errors import ConfigError, FolderInUse
from astra_repro.evaluators import EvalTarget, get_evaluator
from astra_repro.methods import METHODS, HyperParams, InitContext, get_method
from astra_repro.models import is_seq2seq, load_model, model_kind, saved_model_folder
from astra_repro.paths import CONFIG_DIR
from astra_repro.profiling import run_cost
from astra_repro.tasks import TASKS, get_task
from astra_repro.training.launch import batch_layout, check_one_process_per_device, export_submitit_env, world_size

log = logging.getLogger("astra_repro")

INIT_DIR, TRAINED_DIR, EXPORT_DIR = "init", "trained", "export"
PREDICTIONS_FILE = "predictions.jsonl"
SWEEP_ENV = "ASTRA_SWEEP"  # the sweep a run belongs to, for the cost table per sweep (not part of the run's hash)
EVAL_PARTS_DIR = "eval_parts"  # one finished evaluator's result each, so an interrupted evaluation resumes
# Trainer settings that change logging or disk use but never the numbers; kept out of the run hash.
NON_SEMANTIC_TRAINER_KEYS = {"name", "logging_steps", "save_total_limit", "dataloader_num_workers"}


# ------------------------------------------------------------------------------------------------- planning
def plan_run(cfg: DictConfig) -> dict:
    """The composed config (flat keys: the scale's values are already in place) as the plain dict that names, hashes
    and records the run."""
    scale = cfg.scale
    method_cls = METHODS.get(cfg.method.name)
    task_cls = TASKS.get(cfg.task.name)
    kind = model_kind(cfg.model)
    if kind not in task_cls.model_kinds:
        raise ConfigError(f"task '{task_cls.name}' needs a {' or '.join(task_cls.model_kinds)} model but model={cfg.model.name} is {kind}; pick another model=")
    rank = int(cfg.rank)
    if method_cls.uses_peft and rank <= 0:
        raise ConfigError(f"rank must be a positive integer for method '{cfg.method.name}' (got {rank}); set rank=<r>")
    hp = {
        "rank": rank if method_cls.uses_peft else 0,
        "alpha": float(cfg.alpha) if method_cls.uses_peft else 0.0,
        "learning_rate": float(cfg.lr),
        "dropout": float(cfg.method.dropout),
        "use_rslora": bool(cfg.method.use_rslora),
        "use_dora": bool(cfg.method.use_dora),
        "target_modules": list(cfg.model.target_modules),
    }
    method = {k: v for k, v in OmegaConf.to_container(cfg.method, resolve=True).items() if k != "description"}
    task = OmegaConf.to_container(cfg.task, resolve=True)
    plan = {
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "recipe": scale,  # the record's name for the scale (records before the flat configs call it so too)
        "task": {
            "name": task["name"],
            "data": task["data"],
            "evaluators": select_evaluators(task["evaluators"], cfg.get("evaluators")),
        },
        "schedule": task["train"],
        "method": method,
        "hp": hp,
        "trainer": {k: v for k, v in OmegaConf.to_container(cfg.trainer, resolve=True).items() if k not in NON_SEMANTIC_TRAINER_KEYS},
        "seed": int(cfg.seed),
    }
    if getattr(method_cls, "needs_calibration", False):
        plan["calibration"] = OmegaConf.to_container(cfg.calibration, resolve=True)
    # The scale's global batch over this launch's processes (WORLD_SIZE): micro-batch x accumulation x processes.
    # Recorded, but not part of the run's identity (runs.LAUNCH_KEYS): the same run at another process count.
    plan["batch"] = batch_layout(plan["schedule"], world_size(), "task.train")
    return plan


def select_evaluators(task_evaluators: dict, requested) -> dict:
    """The task's evaluator blocks, or the subset named by `evaluators=[a,b]` (order kept as requested)."""
    if requested is None:
        return task_evaluators
    names = [requested] if isinstance(requested, str) else list(requested)
    unknown = [n for n in names if n not in task_evaluators]
    if unknown:
        raise ConfigError(f"evaluators={unknown} are not evaluators of this task; valid: {', '.join(task_evaluators)}")
    return {n: task_evaluators[n] for n in names}


# ------------------------------------------------------------------------------------------------- stages
def world_rank() -> int:
    return int(os.environ.get("RANK", "0"))


def wait_for(path: Path, what: str, timeout_s: float = 6 * 3600) -> None:
    """Non-zero ranks wait for rank 0 to finish a single-process stage (calibration + init)."""
    start = time.time()
    while not path.exists():
        if time.time() - start > timeout_s:
            raise RuntimeError(f"timed out waiting for {what} ({path})")
        time.sleep(5)


def build_context(plan: dict, cfg: DictConfig, tokenizer, pool, features: list[dict], collate) -> InitContext:
    hp = HyperParams(
        rank=plan["hp"]["rank"], alpha=plan["hp"]["alpha"], dropout=plan["hp"]["dropout"],
        target_modules=plan["hp"]["target_modules"], learning_rate=plan["hp"]["learning_rate"],
        use_rslora=plan["hp"]["use_rslora"], use_dora=plan["hp"]["use_dora"],
    )
    return InitContext(
        hp=hp,
        options=cfg.method,
        tokenizer=tokenizer,
        seed=plan["seed"],
        train_records=pool,
        train_features=features,
        collate_fn=collate,
        calibration=OmegaConf.create(plan["calibration"]) if "calibration" in plan else None,
        model_dtype=plan["model"]["dtype"],
        cache_identity={
            "model": plan["model"].get("path") or plan["model"]["name"],
            "model_dtype": plan["model"]["dtype"],
            "task": plan["task"]["name"],
            "data": plan["task"]["data"],
            "n_pool_records": len(pool),
        },
    )


def init_identity(plan: dict) -> str:
    """What an init depends on: the plan without the learning rate (training alone reads it) and the evaluators
    (scoring alone). Runs that differ only there, a learning-rate grid say, start from the same weights."""
    same = json.loads(json.dumps(plan, default=str))
    same["hp"].pop("learning_rate", None)
    same["task"].pop("evaluators", None)
    return runs.config_hash(same, length=16)


def reusable_init(run_dir: Path, identity: str, method) -> Path | None:
    """A sibling run's whole saved init with the same identity, or None."""
    for complete in sorted(run_dir.parent.glob(f"*/{INIT_DIR}/COMPLETE")):
        donor = complete.parent
        if donor.parent == run_dir or runs_json(complete).get("init_identity") != identity:
            continue
        if saved_init_problem(donor, method) is None:
            return donor
    return None


def adopt_init(donor: Path, init_dir: Path) -> None:
    """The donor's init files, hard-linked (saved files are only ever replaced, never rewritten in place) or copied
    where links cannot be made; COMPLETE last, as for an init computed here."""
    tmp = init_dir.with_name(f".{init_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(donor, tmp, copy_function=link_or_copy, ignore=shutil.ignore_patterns("COMPLETE"))
    tmp.rename(init_dir)


def initialize(method, model, ctx: InitContext, run_dir: Path, identity: str | None = None):
    """Run the method's init once and save it as plain files (residual base + initial adapter). A sibling run
    with the same `identity` (init_identity) lends its saved init instead: the report says `reused_from`, and
    keeps the donor's init_seconds (what the init costs; the run's own timings say what this run spent)."""
    init_dir = run_dir / INIT_DIR
    complete = init_dir / "COMPLETE"
    if complete.exists() and method.uses_peft:
        problem = saved_init_problem(init_dir, method)
        if problem is None:
            log.info("init: loading the saved initialisation from %s", init_dir)
            return load_initialized(model, init_dir, method), runs_json(complete)
        if world_rank() != 0:
            raise RuntimeError(f"rank 0's saved init in {init_dir} is unusable ({problem})")
        log.warning("init: the saved initialisation in %s is unusable (%s); redoing it", init_dir, problem)
    if init_dir.exists():  # a kill while saving left part of a folder behind: start it clean
        shutil.rmtree(init_dir)
    donor = reusable_init(run_dir, identity, method) if identity and method.uses_peft else None
    if donor is not None:
        print(f"[astra_repro] init: reusing {donor.parent.name}'s initialisation (the same plan but for the "
              "learning rate / evaluators)")
        adopt_init(donor, init_dir)
        report = dict(runs_json(donor / "COMPLETE"), reused_from=donor.parent.name)
        runs.atomic_write_json(complete, report)
        return load_initialized(model, init_dir, method), report
    t0 = time.time()
    model = method.initialize(model, ctx)
    report = dict(ctx.report, init_seconds=round(time.time() - t0, 2))
    if identity:
        report["init_identity"] = identity
    if method.uses_peft:
        if method.residual_modifying:
            from astra_repro import export

            export.save_initial_adapter(model, init_dir, tokenizer=ctx.tokenizer)
        else:
            model.save_pretrained(init_dir / "adapter")
        runs.atomic_write_json(complete, report)  # last: its presence means every file above is whole
    return model, report


def saved_init_problem(init_dir: Path, method) -> str | None:
    """Why the saved init cannot be loaded (a file cut short after COMPLETE was written, e.g. a full disk), or None."""
    folders = [init_dir / "adapter"] + ([init_dir / "base"] if method.residual_modifying else [])
    return next((p for p in map(runs.weights_problem, folders) if p), None)


def runs_json(path: Path) -> dict:
    return json.loads(path.read_text())


def load_initialized(model, init_dir: Path, method):
    from peft import PeftModel

    if method.residual_modifying:
        from safetensors.torch import load_file

        shards = sorted((init_dir / "base").glob("*.safetensors"))  # one file, or several for large models
        if not shards:
            raise RuntimeError(f"{init_dir / 'base'} holds no residual weights; delete {init_dir} to redo the init")
        for shard in shards:
            _, unexpected = model.load_state_dict(load_file(str(shard)), strict=False)
            if unexpected:
                raise RuntimeError(f"residual base weights do not fit the model: unexpected {unexpected[:3]}")
    return PeftModel.from_pretrained(model, str(init_dir / "adapter"), is_trainable=True)


def check_targets_survive_truncation(features: list[dict], plan: dict) -> None:
    """A prompt longer than max_length leaves no response tokens: the loss would silently be zero."""
    empty = sum(1 for f in features if all(label == -100 for label in f["labels"]))
    if features and empty == len(features):
        raise ConfigError(
            f"every training example is cut before its response at max_length={plan['schedule']['max_length']}; "
            "raise task.train.max_length"
        )
    if empty:
        log.warning("%d of %d training examples have no response tokens left after truncation", empty, len(features))


def disk_estimate(method, model, cfg: DictConfig) -> int:
    """Bytes a run writes, roughly: the merged export, the saved residual of a residual-modifying init, and for
    full fine-tuning `save_total_limit` checkpoints of weights + two AdamW moments; 256 MB for logs and records."""
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    copies = 1 + int(method.residual_modifying)
    if method.trains and not method.uses_peft:
        copies += int(cfg.trainer.get("save_total_limit") or 1) * 3
    return copies * model_bytes + (256 << 20)


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def run(cfg: DictConfig) -> Path:
    RunSpec.from_config(cfg)  # checked (the stages are rewired to receive the spec next)
    threads.apply_runtime(cfg.get("runtime"))  # torch's threads for this run; the wait policy was set at import
    wall_start = time.time()
    plan = plan_run(cfg)
    method = get_method(plan["method"]["name"])
    run_dir = runs.run_dir(plan, cfg.output_root)
    if runs.is_complete(run_dir) and not cfg.force:
        print(f"[astra_repro] already done: {run_dir}  (force=true redoes it)")
        print_metrics(runs_json(run_dir / runs.METRICS_FILE))
        return run_dir
    if method.trains:  # never HF Trainer's DataParallel over the GPUs one process sees: a multiple of the batch
        check_one_process_per_device(plan["batch"]["world_size"])
    if cfg.force and run_dir.exists() and world_rank() == 0:
        shutil.rmtree(run_dir)
    runs.check_disk(run_dir, 0, "this run")  # writable (space is checked once the model's size is known)
    runs.atomic_write_text(run_dir / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(plan)))
    print(f"[astra_repro] run folder: {run_dir}")
    try:
        if world_rank() != 0:  # the other ranks of a multi-process run share rank 0's folder
            return run_stages(cfg, plan, method, run_dir, wall_start)
        with runs.FolderLock(run_dir, "run folder"):  # two processes never write one run folder at once
            return run_stages(cfg, plan, method, run_dir, wall_start)
    except FolderInUse:  # another process is running this folder: it is not ours to mark
        raise
    except BaseException as err:  # the folder must not look like a run in progress or a finished one
        if world_rank() == 0:
            runs.mark_failed(run_dir, err)
        raise


def run_stages(cfg: DictConfig, plan: dict, method, run_dir: Path, wall_start: float) -> Path:
    """Load, calibrate + init, train, export, evaluate and record into an existing run folder."""
    (run_dir / runs.FAILED_FILE).unlink(missing_ok=True)  # a re-run after a fix starts clean
    timings: dict[str, float] = {}

    import transformers

    transformers.set_seed(plan["seed"])
    model, tokenizer = load_model(cfg.model)
    if world_rank() == 0:  # before hours of work, not after: the folder is writable and has room for the outputs
        runs.check_disk(run_dir, disk_estimate(method, model, cfg), "this run")
    task = get_task(cfg.task, plan["recipe"], model_kind(cfg.model))
    # Training uses the first n_train records in file order; calibration samples from the whole set, as the
    # reference does (protocol §1.1), so the pool is kept.
    pool, data_info = task.load_training_records()
    n_train = plan["task"]["data"]["n_train"]
    records = pool[:n_train] if n_train else pool
    data_info.update(n_train=len(records), n_pool=len(pool))
    features = task.training_features(tokenizer, records, plan["schedule"]["max_length"])
    check_targets_survive_truncation(features, plan)
    collate = task.collator(tokenizer)
    ctx = build_context(plan, cfg, tokenizer, task.calibration_records(pool), features, collate)

    # calibrate + init (single process: rank 0 writes, the others load)
    t0 = time.time()
    if world_rank() == 0:
        model, init_report = initialize(method, model, ctx, run_dir, init_identity(plan))
    else:
        wait_for(run_dir / INIT_DIR / "COMPLETE", "rank 0's calibration + init")
        model, init_report = initialize(method, model, ctx, run_dir)
    timings["init_s"] = round(time.time() - t0, 2)
    n_trainable, n_total = count_parameters(model)
    print(f"[astra_repro] method={method.name} rank={plan['hp']['rank']} trainable params={n_trainable:,} / {n_total:,}")

    train_stats: dict = {}
    if method.trains:
        t0 = time.time()
        train_stats = train_stage(cfg, plan, method, model, features, collate, run_dir)
        if world_rank() == 0 and zero3_partitioned(model):
            model = reload_trained_model(cfg, method, ctx, run_dir)
        timings["train_s"] = round(time.time() - t0, 2)
        t0 = time.time()
        export_stage(method, model, tokenizer, run_dir)
        timings["export_s"] = round(time.time() - t0, 2)

    if world_rank() != 0:
        return run_dir
    metrics, eval_info, versions = {}, {}, {}
    if not cfg.skip_eval:
        t0 = time.time()
        target = EvalTarget(model, tokenizer, path=saved_model_path(method, run_dir, cfg.model), backend=cfg.eval.backend,
                            generation=cfg.eval.generation)
        metrics, eval_info, versions = evaluate_stage(plan, target, run_dir)
        timings["eval_s"] = round(time.time() - t0, 2)
    timings["wall_s"] = round(time.time() - wall_start, 2)
    batch = train_stats.get("batch") or plan["batch"]  # the layout training ran under (a later launch may only score)
    record = {
        "run_name": run_dir.name,
        "config_hash": runs.config_hash(plan),
        "task": plan["task"]["name"],
        "task_variant": task.variant,
        "model": plan["model"]["name"],
        "method": method.name,
        "method_label": method_label(method, cfg),
        "recipe": plan["recipe"],
        "rank": plan["hp"]["rank"],
        "alpha": plan["hp"]["alpha"],
        "learning_rate": plan["hp"]["learning_rate"],
        "seed": plan["seed"],
        # per device x accumulation x processes, as trained (the Trainer's own product is checked against the plan
        # before training starts): Tables 1 and 9 differ only in this (128 vs 32)
        "global_batch_size": batch["global"],
        "batch": batch,  # {global, per_device, grad_accum, world_size}
        "n_trainable_params": n_trainable,
        "n_total_params": n_total,
        "data": data_info,
        "eval_data": eval_info,
        "evaluator_versions": versions,
        "metrics": metrics,
        "train": train_stats,
        "init": init_report,
        "timings": timings,
        "cost": run_cost(timings, init_report, train_stats),
        "runtime": threads.runtime_record(),  # threads, affinity CPUs, OMP wait policy and where each came from
        "sweep": os.environ.get(SWEEP_ENV),  # set by `astra_repro.sweep --local` and slurm/array.sbatch
        "software": software_versions(),
    }
    runs.atomic_write_json(run_dir / runs.METRICS_FILE, record)  # the last write: its presence means "done"
    print_metrics(record)
    print(f"[astra_repro] record: {run_dir / runs.METRICS_FILE}  ({timings['wall_s']:.0f} s)")
    return run_dir


def method_label(method, cfg: DictConfig) -> str:
    """The row name in tables: the YAML's `label` if set (presets like astra_paper_math), plus the eigenvector
    selection's name for methods that have one (Astra's Table 4 labels)."""
    base = cfg.method.get("label") or method.name
    label_fn = getattr(type(method), "selection_label", None)
    return f"{base} ({label_fn(cfg.method)})" if callable(label_fn) else base


def train_stage(cfg, plan, method, model, features, collate, run_dir: Path) -> dict:
    from astra_repro.training.trainer import build_training_arguments, train

    trained = run_dir / TRAINED_DIR
    done = trained / "COMPLETE"
    if done.exists():
        problem = runs.weights_problem(trained)
        if problem is None:
            log.info("train: already done, loading %s", trained)
            load_trained(model, method, trained)
            return runs_json(done)
        log.warning("train: the saved weights in %s are unusable (%s); finishing training again from the last "
                    "checkpoint", trained, problem)
        if world_rank() == 0:
            done.unlink()
    use_bf16 = cfg.trainer.bf16 is True or (
        cfg.trainer.bf16 == "auto" and plan["model"]["dtype"] == "bfloat16" and torch.cuda.is_available()
    )
    report_to = []
    if cfg.wandb.enabled:
        os.environ.setdefault("WANDB_PROJECT", cfg.wandb.project)
        if not os.environ.get("WANDB_API_KEY"):
            os.environ.setdefault("WANDB_MODE", "offline")
        report_to = ["wandb"]
    args = build_training_arguments(run_dir, plan["schedule"], plan["batch"], cfg.trainer, plan["hp"]["learning_rate"],
                                    plan["seed"], use_bf16, report_to)
    groups = method.optimizer_param_groups(model, plan["hp"]["learning_rate"], cfg.trainer.weight_decay, cfg.method)
    optimizer = torch.optim.AdamW(groups) if groups else None
    stats = train(model, features, collate, args, run_dir, optimizer=optimizer, save_to=trained, batch=plan["batch"])
    if world_rank() == 0:
        runs.atomic_write_json(done, stats)
    return stats


def zero3_partitioned(model) -> bool:
    """True when DeepSpeed ZeRO-3 has sharded the live parameters across ranks (each rank holds a slice)."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


def reload_trained_model(cfg: DictConfig, method, ctx: InitContext, run_dir: Path):
    """A whole, unsharded copy of the trained model on this rank, rebuilt from the run folder's files (base model +
    saved init + trained weights): after ZeRO-3 the live model is partitioned, and export and evaluation need
    every parameter."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # else from_pretrained would partition the new model too
    model, _ = load_model(cfg.model)
    model, _ = initialize(method, model, ctx, run_dir)
    load_trained(model, method, run_dir / TRAINED_DIR)
    return model


def load_trained(model, method, trained_dir: Path) -> None:
    if method.uses_peft:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(trained_dir / "adapter_model.safetensors")))
    else:
        trained = type(model).from_pretrained(trained_dir, dtype=next(model.parameters()).dtype)
        model.load_state_dict(trained.state_dict())


def export_stage(method, model, tokenizer, run_dir: Path) -> None:
    """A converted plain LoRA (rank 2r, loads on the ORIGINAL base model) for residual inits, and a merged model."""
    from astra_repro import export

    if world_rank() != 0:
        return
    if not method.uses_peft:  # full fine-tuning: trained/ already is the full model; make it loadable on its own
        tokenizer.save_pretrained(run_dir / TRAINED_DIR)
        return
    out = run_dir / EXPORT_DIR
    if (out / "COMPLETE").exists() and runs.weights_problem(out / "merged") is None:
        return
    if out.exists():  # a kill while exporting left part of the folder: start it clean
        shutil.rmtree(out)
    if method.residual_modifying:
        export.export_plain_lora(model, run_dir / INIT_DIR / "adapter", out / "plain_lora")
    export.export_merged(model, out / "merged", tokenizer=tokenizer)
    runs.atomic_write_text(out / "COMPLETE", "")


def saved_model_path(method, run_dir: Path, model_cfg: DictConfig) -> str | None:
    """A folder holding the weights being scored (for vLLM): the merged export, FFT's trained model, or the base."""
    if method.trains:
        folder = run_dir / (EXPORT_DIR + "/merged" if method.uses_peft else TRAINED_DIR)
        return str(folder) if (folder / "config.json").exists() else None
    return saved_model_folder(model_cfg)


def evaluate_stage(plan, target: EvalTarget, run_dir: Path) -> tuple[dict, dict, dict]:
    """Every evaluator of the plan on one target; all their samples go to predictions.jsonl (an `evaluator` field
    tells them apart)."""
    from astra_repro.evaluators.generation import resolve_backend

    recipe = plan["recipe"]
    model = target.model
    # vLLM serves causal LMs here; encoder-decoder models (T5 on GLUE) are always scored in memory
    seq2seq = model is not None and is_seq2seq(model)
    use_vllm = not seq2seq and resolve_backend(target.backend, target.path) == "vllm"
    if torch.cuda.is_available() and not use_vllm:
        model.cuda()
    merged = hasattr(model, "merge_adapter")
    if merged:
        model.merge_adapter()  # generation at plain-model speed; the record on disk keeps the adapter
    metrics, info, versions, predictions = {}, {}, {}, []
    task_evaluators = OmegaConf.create(plan["task"]["evaluators"])
    try:
        for name in task_evaluators:
            evaluator_cls = get_evaluator(name)
            settings = OmegaConf.to_container(task_evaluators[name], resolve=True)
            result_file = run_dir / EVAL_PARTS_DIR / f"{name}.json"
            part = finished_evaluator(result_file, settings, evaluator_cls.version)
            if part is None:
                started = time.time()
                result = evaluator_cls(task_evaluators[name], recipe).evaluate(target)
                part = {
                    "settings": settings, "version": evaluator_cls.version, "metrics": result.metrics,
                    "info": dict(result.info, primary_metric=evaluator_cls.primary_metric,
                                 seconds=round(time.time() - started, 2)),
                    "predictions": result.predictions,
                }
                # a kill during the next evaluator keeps this one; key order kept, so predictions.jsonl is unchanged
                runs.atomic_write_text(result_file, json.dumps(part, default=str))
            metrics[name], info[name], versions[name] = part["metrics"], part["info"], part["version"]
            predictions.extend(part["predictions"])
    finally:
        if merged:
            model.unmerge_adapter()
    runs.write_jsonl(run_dir / PREDICTIONS_FILE, predictions)
    return metrics, info, versions


def finished_evaluator(result_file: Path, settings: dict, version) -> dict | None:
    """An evaluator's saved result from an interrupted evaluation of this run, if its settings and version match."""
    if not result_file.exists():
        return None
    try:
        part = runs_json(result_file)
    except ValueError:
        return None
    if runs.canonical_json(part.get("settings")) != runs.canonical_json(settings) or part.get("version") != version:
        return None
    log.info("eval: %s already scored before an interruption; reusing %s", result_file.stem, result_file)
    return part


def print_metrics(record: dict) -> None:
    label = record.get("method_label", record.get("method"))
    for evaluator, values in record.get("metrics", {}).items():
        info = record.get("eval_data", {}).get(evaluator, {})
        if not values:
            print(f"[astra_repro] {label} {evaluator}: not scored ({info.get('skipped') or info.get('scoring_error') or 'no metrics'})")
            continue
        shown = ", ".join(f"{k}={v:.2f}" if isinstance(v, (int, float)) else f"{k}={v}" for k, v in values.items())
        print(f"[astra_repro] {label} {evaluator}: {shown}  (data: {info.get('data_source', '?')})")


def software_versions() -> dict:
    import peft
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__, "python": sys.version.split()[0]}


@hydra.main(config_path=str(CONFIG_DIR), config_name="config", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    try:
        export_submitit_env()  # a task of a multi-task submitit job: RANK, WORLD_SIZE, ... from SLURM's variables
        run(cfg)
    except ConfigError as err:
        from astra_repro.cli import exit_with

        exit_with(err)
    finally:
        close_process_group()


def close_process_group() -> None:
    """Tear the process group down before the interpreter does: a gloo group left to interpreter shutdown can
    abort a rank at exit ("terminate called without an active exception", seen once in the DDP test)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        try:
            torch.distributed.destroy_process_group()
        except Exception as err:  # never mask the run's own outcome
            log.warning("could not tear the process group down: %s", err)


def main() -> None:
    from astra_repro.cli import check_config_choices, check_override_keys, exit_with

    logging.getLogger("transformers").setLevel(logging.WARNING)
    try:
        check_config_choices(sys.argv[1:])
        check_override_keys(sys.argv[1:])
    except ConfigError as err:
        exit_with(err)
    hydra_entry()


if __name__ == "__main__":
    main()
