"""Export of a residual-modifying init: the saved init reproduces the original model, the converted plain
rank-2r LoRA reproduces the trained model on the ORIGINAL base, and the merged export reproduces it alone."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from peft import PeftModel
from transformers import AutoModelForCausalLM

from astra_repro.export import export_merged, export_plain_lora, max_output_difference, save_initial_adapter
from astra_repro.methods.astra import Astra
from astra_repro.methods.base import HyperParams, InitContext, lora_layers
from astra_repro.models import load_model
from astra_repro.paths import CONFIG_DIR

RANK, ALPHA = 8, 16
INPUT_IDS = torch.tensor([[5, 17, 40, 41, 12, 80, 33, 3, 9, 70], [60, 61, 62, 9, 10, 11, 44, 45, 46, 47]])


def astra_model(tiny_model_cfg, use_rslora=False):
    model, tokenizer = load_model(tiny_model_cfg)
    records = [{"instruction": f"Q{i}: what is {i} + {2 * i}? " * (1 + i % 3), "output": f"A: {3 * i}."} for i in range(24)]
    ctx = InitContext(
        hp=HyperParams(rank=RANK, alpha=ALPHA, dropout=0.0, target_modules=list(tiny_model_cfg.target_modules),
                       learning_rate=2e-4, use_rslora=use_rslora),
        options=OmegaConf.load(CONFIG_DIR / "method" / "astra.yaml"), tokenizer=tokenizer, seed=0,
        train_records=records,
        calibration=OmegaConf.create(dict(source="task", n_samples=6, seq_len=40, batch_size=1, seed=42, padding="max_length")),
        cache_identity={"model": "tiny_llama"},
    )
    return Astra().initialize(model, ctx), tokenizer


@torch.no_grad()
def simulate_training(peft_model, seed=0):
    generator = torch.Generator().manual_seed(seed)
    for layer in lora_layers(peft_model).values():
        for param in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
            param.add_(0.05 * param.abs().mean() * torch.randn(param.shape, generator=generator))


@pytest.mark.parametrize("use_rslora", [False, True])
def test_plain_lora_export_reproduces_the_trained_model_on_the_original_base(tiny_model_cfg, tmp_path, use_rslora):
    original, _ = load_model(tiny_model_cfg)
    peft_model, tokenizer = astra_model(tiny_model_cfg, use_rslora=use_rslora)
    adapter_dir = save_initial_adapter(peft_model, tmp_path / "init", tokenizer)
    simulate_training(peft_model)
    assert max_output_difference(peft_model, original, INPUT_IDS) > 1e-3  # "training" changed the model
    trainable_before = {n for n, p in peft_model.named_parameters() if p.requires_grad}

    export_plain_lora(peft_model, adapter_dir, tmp_path / "plain")

    config = json.loads((tmp_path / "plain" / "adapter_config.json").read_text())
    assert config["r"] == 2 * RANK
    assert config["lora_alpha"] == pytest.approx(ALPHA * (2**0.5 if use_rslora else 2))
    assert config["init_lora_weights"] is True
    fresh, _ = load_model(tiny_model_cfg)  # the ORIGINAL weights, no residual
    converted = PeftModel.from_pretrained(fresh, tmp_path / "plain")
    assert max_output_difference(converted, peft_model, INPUT_IDS) < 1e-4
    # The live model is untouched: same adapters, same trainable parameters.
    assert list(peft_model.peft_config) == ["default"]
    assert {n for n, p in peft_model.named_parameters() if p.requires_grad} == trainable_before


def test_saved_init_reloads_to_the_original_model(tiny_model_cfg, tmp_path):
    original, _ = load_model(tiny_model_cfg)
    peft_model, tokenizer = astra_model(tiny_model_cfg)
    adapter_dir = save_initial_adapter(peft_model, tmp_path / "init", tokenizer)
    assert json.loads((adapter_dir / "adapter_config.json").read_text())["init_lora_weights"] is True
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "init" / "base")
    assert not any("lora" in name or "base_layer" in name for name, _ in base.named_parameters())
    assert max_output_difference(base, original, INPUT_IDS) > 1e-3  # the residual alone is not the original
    reloaded = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    assert max_output_difference(reloaded, original, INPUT_IDS) < 1e-5
    assert (tmp_path / "init" / "base" / "tokenizer.json").exists()


def test_merged_export_reproduces_the_trained_model_and_keeps_the_live_one(tiny_model_cfg, tmp_path):
    peft_model, tokenizer = astra_model(tiny_model_cfg)
    simulate_training(peft_model, seed=1)
    before = peft_model(input_ids=INPUT_IDS).logits.detach().clone()

    export_merged(peft_model, tmp_path / "merged", tokenizer)

    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert max_output_difference(merged, peft_model, INPUT_IDS) < 1e-4
    assert torch.equal(peft_model(input_ids=INPUT_IDS).logits, before)  # the live model is not merged
    assert all(not layer.merged for layer in lora_layers(peft_model).values())


def test_max_output_difference(tiny_model_cfg):
    a, _ = load_model(tiny_model_cfg)
    b, _ = load_model(tiny_model_cfg)
    assert max_output_difference(a, b, INPUT_IDS) == 0.0
    with torch.no_grad():
        b.lm_head.weight.add_(0.1)
    assert max_output_difference(a, b, INPUT_IDS) > 0.0
