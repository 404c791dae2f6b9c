"""Saving what an init and a training run produce, for every residual-modifying init (Astra, PiSSA, MiLoRA, ...).

    init_dir/base/      the residual base model (W_res = W − s·B0·A0), a plain HF folder
    init_dir/adapter/   the initial adapter (B0, A0) with init_lora_weights=True, so PEFT loads it as-is
    export_plain_lora   the trained adapter converted to a rank-2r plain LoRA for the ORIGINAL base model:
                        ΔW = s(B'A' − B0A0) = s[B' | −B0][A' ; A0]  (peft `subtract_mutated_init`)
    export_merged       the full merged model (what the paper evaluates)

None of these touch the live model: the runner may keep training it afterwards.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel

from astra_repro.methods.base import lora_layers

log = logging.getLogger(__name__)

INIT_ADAPTER_SUBDIR = "adapter"
INIT_BASE_SUBDIR = "base"


def plain_base_state_dict(peft_model: PeftModel) -> dict[str, torch.Tensor]:
    """The base model's weights under their original names (LoRA parameters dropped, ".base_layer" removed).
    Tensors are shared with the live model, not copied."""
    state = peft_model.get_base_model().state_dict()
    plain = {}
    for key, value in state.items():
        if "lora_" in key:
            continue
        plain[key.replace(".base_layer.", ".")] = value
    return plain


def save_initial_adapter(peft_model: PeftModel, init_dir: str | Path, tokenizer: Any = None, adapter: str = "default") -> Path:
    """Save the initial adapter to `init_dir/adapter` (init_lora_weights reset to True, as PEFT's conversion
    requires) and the residual base model to `init_dir/base`. Returns the adapter folder."""
    init_dir = Path(init_dir)
    adapter_dir = init_dir / INIT_ADAPTER_SUBDIR
    config = peft_model.peft_config[adapter]
    original_init = config.init_lora_weights
    config.init_lora_weights = True  # else loading it would decompose the (already residual) base weights again
    try:
        peft_model.save_pretrained(adapter_dir, selected_adapters=[adapter])
    finally:
        config.init_lora_weights = original_init
    base_dir = init_dir / INIT_BASE_SUBDIR
    peft_model.get_base_model().save_pretrained(base_dir, state_dict=plain_base_state_dict(peft_model))
    if tokenizer is not None:
        tokenizer.save_pretrained(base_dir)
    log.info("saved the initial adapter to %s and the residual base model to %s", adapter_dir, base_dir)
    return adapter_dir


def export_plain_lora(trained_peft_model: PeftModel, init_adapter_dir: str | Path, out_dir: str | Path) -> Path:
    """Write the trained adapter as a plain LoRA (rank 2r, alpha 2·alpha, or ·√2 with rsLoRA) that stock
    `PeftModel.from_pretrained(original_base, out_dir)` applies to the ORIGINAL base model.

    PEFT loads the initial adapter from dirname(path) with subfolder=basename(path) into the live model for the
    conversion and deletes it afterwards; we restore the live model's requires_grad flags in case loading moved them.
    """
    init_adapter_dir = Path(init_adapter_dir).resolve()
    if not (init_adapter_dir / "adapter_config.json").exists():
        raise FileNotFoundError(f"{init_adapter_dir} holds no initial adapter; call save_initial_adapter first")
    if init_adapter_dir.name in trained_peft_model.peft_config:
        raise ValueError(f"the live model already has an adapter named '{init_adapter_dir.name}'; rename the init folder")
    flags = {name: p.requires_grad for name, p in trained_peft_model.named_parameters()}
    try:
        trained_peft_model.save_pretrained(
            str(out_dir), path_initial_model_for_weight_conversion=str(init_adapter_dir)
        )
    finally:
        for name, p in trained_peft_model.named_parameters():
            if name in flags:
                p.requires_grad_(flags[name])
    log.info("exported a plain rank-2r LoRA to %s", out_dir)
    return Path(out_dir)


@torch.no_grad()
def merged_state_dict(peft_model: PeftModel) -> dict[str, torch.Tensor] | None:
    """Base weights + every active adapter's delta, layer by layer, without modifying the live model.
    None when a layer needs PEFT's own merge (DoRA, LoRA bias)."""
    state = plain_base_state_dict(peft_model)
    for name, layer in lora_layers(peft_model).items():
        if getattr(layer, "merged", False):
            continue  # adapters already merged into the base weights
        active = [a for a in layer.active_adapters if a in layer.lora_A]
        if any(layer.use_dora.get(a, False) or getattr(layer, "lora_bias", {}).get(a, False) for a in active):
            return None
        weight = layer.get_base_layer().weight
        merged = weight.float()
        for adapter in active:
            merged = merged + layer.get_delta_weight(adapter).float()
        state[f"{name}.weight"] = merged.to(weight.dtype)
    return state


def export_merged(trained_peft_model: PeftModel, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """Save the merged full model (residual + trained adapter) as a plain HF folder; the live model stays as is.

    The merged weights are built one layer at a time next to the live ones (one extra copy of the adapted
    weights). DoRA / LoRA-bias adapters go through PEFT's merge_and_unload on a deep copy (two copies of the model).
    """
    out_dir = Path(out_dir)
    state = merged_state_dict(trained_peft_model)
    if state is not None:
        trained_peft_model.get_base_model().save_pretrained(out_dir, state_dict=state)
    else:
        merged = copy.deepcopy(trained_peft_model).merge_and_unload()
        merged.save_pretrained(out_dir)
        del merged
    if tokenizer is not None:
        tokenizer.save_pretrained(out_dir)
    log.info("exported the merged model to %s", out_dir)
    return out_dir


@torch.no_grad()
def max_output_difference(
    model_a: torch.nn.Module, model_b: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> float:
    """max |logits_a − logits_b| on the given inputs, both models in eval mode (their modes are restored)."""
    outputs = []
    for model in (model_a, model_b):
        was_training = model.training
        model.eval()
        try:
            device = next(model.parameters()).device
            mask = None if attention_mask is None else attention_mask.to(device)
            outputs.append(model(input_ids=input_ids.to(device), attention_mask=mask).logits.float().cpu())
        finally:
            model.train(was_training)
    return float((outputs[0] - outputs[1]).abs().max())
