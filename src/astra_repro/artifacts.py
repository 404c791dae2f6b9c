"""What a run folder keeps of a method: the saved init, the trained weights and the export, for each artifact kind.

A method declares its kind (`Method.artifact_kind`, from `uses_peft` and `residual_modifying`); one class per kind
below holds every save and load rule of that kind, so the runner never asks which kind it holds:

    full                  init/  nothing (the checkpoint itself)      trained/  the whole model (+ tokenizer at export)
    adapter               init/adapter                                export/merged
    adapter_on_residual   init/adapter + init/base (W_res)            export/plain_lora (rank 2r) + export/merged

Every folder is written through `runs.stage_folder`: its COMPLETE marker, written last, says the folder is whole.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Mapping

from omegaconf import DictConfig, OmegaConf

from astra_repro import export, runs
from astra_repro.export import INIT_ADAPTER_SUBDIR, INIT_BASE_SUBDIR
from astra_repro.methods import InitContext
from astra_repro.models import load_model, saved_model_folder

log = logging.getLogger("astra_repro")

MERGED_SUBDIR, PLAIN_LORA_SUBDIR = "merged", "plain_lora"


# ------------------------------------------------------------------------------------------------- the kinds
class FullModel:
    """Full fine-tuning (and `base`): the init is the pretrained checkpoint itself, so nothing is saved before
    training; trained/ holds the whole model, which export makes loadable on its own (the tokenizer)."""

    saves_init = False

    def load_trained(self, model, trained_dir: Path) -> None:
        trained = type(model).from_pretrained(trained_dir, dtype=next(model.parameters()).dtype)
        model.load_state_dict(trained.state_dict())

    def export(self, model, tokenizer, run_dir: Path) -> None:
        tokenizer.save_pretrained(run_dir / runs.TRAINED_DIR)

    def model_folder(self, run_dir: Path) -> Path:
        return run_dir / runs.TRAINED_DIR

    def model_copies(self, method, trainer: Mapping) -> int:
        """Model-sized files a run writes: the trained model, plus `save_total_limit` checkpoints of weights and
        two AdamW moments each while training."""
        return 1 + (int(trainer.get("save_total_limit") or 1) * 3 if method.trains else 0)


class Adapter:
    """A PEFT adapter on the original base model: init/adapter holds the initial adapter, export/merged the model
    the paper scores."""

    saves_init = True
    init_folders: tuple[str, ...] = (INIT_ADAPTER_SUBDIR,)

    def save_init(self, model, init_dir: Path, tokenizer) -> None:
        model.save_pretrained(init_dir / INIT_ADAPTER_SUBDIR)

    def init_problem(self, init_dir: Path) -> str | None:
        """Why the saved init cannot be loaded (a file cut short after COMPLETE was written, e.g. a full disk), or None."""
        return next((p for p in (runs.weights_problem(init_dir / f) for f in self.init_folders) if p), None)

    def load_init(self, model, init_dir: Path):
        from peft import PeftModel

        return PeftModel.from_pretrained(model, str(init_dir / INIT_ADAPTER_SUBDIR), is_trainable=True)

    def load_trained(self, model, trained_dir: Path) -> None:
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(trained_dir / "adapter_model.safetensors")))

    def export(self, model, tokenizer, run_dir: Path) -> None:
        out = run_dir / runs.EXPORT_DIR
        if runs.stage_done(out) and runs.weights_problem(out / MERGED_SUBDIR) is None:
            return
        with runs.stage_folder(out):  # a kill while exporting left part of the folder: it starts clean
            self.write_export(model, tokenizer, run_dir, out)

    def write_export(self, model, tokenizer, run_dir: Path, out: Path) -> None:
        export.export_merged(model, out / MERGED_SUBDIR, tokenizer=tokenizer)

    def model_folder(self, run_dir: Path) -> Path:
        return run_dir / runs.EXPORT_DIR / MERGED_SUBDIR

    def model_copies(self, method, trainer: Mapping) -> int:
        return 1  # the merged export


class AdapterOnResidual(Adapter):
    """An adapter on a modified base (W_res = W - s*B0*A0: Astra, PiSSA, ...): the init saves the residual base
    next to the initial adapter, and export adds the trained adapter as a plain rank-2r LoRA for the ORIGINAL base."""

    init_folders = (INIT_ADAPTER_SUBDIR, INIT_BASE_SUBDIR)

    def save_init(self, model, init_dir: Path, tokenizer) -> None:
        export.save_initial_adapter(model, init_dir, tokenizer=tokenizer)

    def load_init(self, model, init_dir: Path):
        from safetensors.torch import load_file

        shards = sorted((init_dir / INIT_BASE_SUBDIR).glob("*.safetensors"))  # one file, or several for large models
        if not shards:
            raise RuntimeError(f"{init_dir / INIT_BASE_SUBDIR} holds no residual weights; delete {init_dir} to redo the init")
        for shard in shards:
            _, unexpected = model.load_state_dict(load_file(str(shard)), strict=False)
            if unexpected:
                raise RuntimeError(f"residual base weights do not fit the model: unexpected {unexpected[:3]}")
        return super().load_init(model, init_dir)

    def write_export(self, model, tokenizer, run_dir: Path, out: Path) -> None:
        export.export_plain_lora(model, run_dir / runs.INIT_DIR / INIT_ADAPTER_SUBDIR, out / PLAIN_LORA_SUBDIR)
        super().write_export(model, tokenizer, run_dir, out)

    def model_copies(self, method, trainer: Mapping) -> int:
        return 2  # the merged export and the saved residual base


KINDS = {"full": FullModel(), "adapter": Adapter(), "adapter_on_residual": AdapterOnResidual()}


def artifacts_of(method):
    """The save and load rules of what `method` declares it leaves in a run folder."""
    return KINDS[method.artifact_kind]


# ------------------------------------------------------------------------------------------------- init
def build_context(spec, tokenizer, pool, features: list[dict], collate) -> InitContext:
    """What an init may read, from the run spec (spec.RunSpec)."""
    plan = spec.plan()
    return InitContext(
        hp=spec.hp,
        options=spec.method_options(),
        tokenizer=tokenizer,
        seed=spec.seed,
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
    for complete in sorted(run_dir.parent.glob(f"*/{runs.INIT_DIR}/{runs.COMPLETE_FILE}")):
        donor = complete.parent
        if donor.parent == run_dir or runs.stage_record(donor).get("init_identity") != identity:
            continue
        if artifacts_of(method).init_problem(donor) is None:
            return donor
    return None


def adopt_init(donor: Path, init_dir: Path) -> None:
    """The donor's init files, hard-linked (saved files are only ever replaced, never rewritten in place) or copied
    where links cannot be made; its COMPLETE is left to the caller's stage_folder, written last as for an init
    computed here."""
    tmp = init_dir.with_name(f".{init_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)

    def link_or_copy(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(donor, tmp, copy_function=link_or_copy, ignore=shutil.ignore_patterns(runs.COMPLETE_FILE))
    tmp.rename(init_dir)


def initialize(method, model, ctx: InitContext, run_dir: Path, identity: str | None = None):
    """Run the method's init once and save it as plain files (residual base + initial adapter). A sibling run
    with the same `identity` (init_identity) lends its saved init instead: the report says `reused_from`, and
    keeps the donor's init_seconds (what the init costs; the run's own timings say what this run spent)."""
    kind = artifacts_of(method)
    if not kind.saves_init:  # the whole model trains from the checkpoint itself: nothing to save, load or lend
        return compute_init(method, model, ctx, identity)
    init_dir = run_dir / runs.INIT_DIR
    if runs.stage_done(init_dir):
        problem = kind.init_problem(init_dir)
        if problem is None:
            log.info("init: loading the saved initialisation from %s", init_dir)
            return kind.load_init(model, init_dir), runs.stage_record(init_dir)
        if runs.world_rank() != 0:
            raise RuntimeError(f"rank 0's saved init in {init_dir} is unusable ({problem})")
        log.warning("init: the saved initialisation in %s is unusable (%s); redoing it", init_dir, problem)
    donor = reusable_init(run_dir, identity, method) if identity else None
    if donor is not None:
        print(f"[astra_repro] init: reusing {donor.parent.name}'s initialisation (the same plan but for the "
              "learning rate / evaluators)")
        with runs.stage_folder(init_dir) as record:
            adopt_init(donor, init_dir)
            record.update(runs.stage_record(donor), reused_from=donor.parent.name)
        return kind.load_init(model, init_dir), dict(record)
    model, report = compute_init(method, model, ctx, identity)
    with runs.stage_folder(init_dir) as record:  # a kill while saving left part of a folder behind: start it clean
        kind.save_init(model, init_dir, ctx.tokenizer)
        record.update(report)
    return model, report


def compute_init(method, model, ctx: InitContext, identity: str | None):
    t0 = time.time()
    model = method.initialize(model, ctx)
    report = dict(ctx.report, init_seconds=round(time.time() - t0, 2))
    if identity:
        report["init_identity"] = identity
    return model, report


# ------------------------------------------------------------------------------------------------- trained weights
def reload_trained_model(spec, method, ctx: InitContext, run_dir: Path):
    """A whole, unsharded copy of the trained model on this rank, rebuilt from the run folder's files (base model +
    saved init + trained weights): after ZeRO-3 the live model is partitioned, and export and evaluation need
    every parameter."""
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # else from_pretrained would partition the new model too
    model, _ = load_model(spec.model_config())
    model, _ = initialize(method, model, ctx, run_dir)
    artifacts_of(method).load_trained(model, run_dir / runs.TRAINED_DIR)
    return model


def export_stage(method, model, tokenizer, run_dir: Path) -> None:
    """What the trained model is kept as, for scoring and for use elsewhere (rank 0 only): see the kinds above."""
    if runs.world_rank() != 0:
        return
    artifacts_of(method).export(model, tokenizer, run_dir)


def saved_model_path(method, run_dir: Path, model_cfg: DictConfig) -> str | None:
    """A folder holding the weights being scored (for vLLM): the merged export, FFT's trained model, or the base."""
    if method.trains:
        folder = artifacts_of(method).model_folder(run_dir)
        return str(folder) if (folder / "config.json").exists() else None
    return saved_model_folder(model_cfg)


def finished_model_folder(run_dir: Path) -> Path | None:
    """The folder holding a finished run's final weights, whichever kind wrote it (read from the folder itself, so
    a run of a method no longer registered is found too): the merged export, trained/ of full fine-tuning, or None."""
    for kind in (KINDS["adapter"], KINDS["full"]):
        folder = kind.model_folder(run_dir)
        if (folder / "config.json").exists():
            return folder
    return None


def disk_estimate(method, model, trainer: Mapping) -> int:
    """Bytes a run writes, roughly: the model-sized files of its kind, and 256 MB for logs and records."""
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return artifacts_of(method).model_copies(method, trainer) * model_bytes + (256 << 20)
