"""Every registered method runs through the real runner on tiny_llama + task=math (one short training run),
and every residual-modifying init's exported plain LoRA reproduces the trained model on the ORIGINAL base."""

import json

import pytest
import torch
from helpers import tiny_cfg
from peft import PeftModel
from transformers import AutoModelForCausalLM

from astra_repro.methods import METHODS
from astra_repro.models import load_model
from astra_repro.train import run

# Kept small so all of them fit in the suite's budget; EVA's PEFT loop converges faster at rank 4.
SHORT = ["task.train.max_steps=1", "skip_eval=true", "rank=4"]


@pytest.mark.parametrize("name", METHODS.names())
def test_method_trains_one_step_and_records(name):
    run_dir = run(tiny_cfg(f"method={name}", *SHORT))
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["method"] == name
    method = METHODS.get(name)
    if method.trains:
        log = [json.loads(l) for l in (run_dir / "train_log.jsonl").read_text().splitlines()]
        assert log[0]["step"] == 1 and log[0]["loss"] > 0
        assert record["n_trainable_params"] > 0
        # tokens trained on: the non-padding tokens of the batches the optimiser saw
        assert 0 < record["cost"]["tokens_trained"] == log[-1]["num_input_tokens_seen"]
    else:
        assert record["n_trainable_params"] == 0
    cost = record["cost"]
    assert cost["n_devices"] == 1 and cost["device"].startswith("cpu") and cost["peak_memory_gb"] > 0.1
    assert cost["device_hours"] == round(record["timings"]["wall_s"] / 3600, 4) and cost["resumed"] is False
    if method.uses_peft and method.trains:
        assert (run_dir / "export" / "merged" / "config.json").exists()
    if method.needs_calibration:  # the record says what calibration and the decompositions cost
        calibration, eigen = record["init"]["calibration"], record["init"]["eigen"]
        assert calibration["calibration_s"] > 0 and calibration["samples_per_s"] > 0 and calibration["samples"] > 0
        assert calibration["calibration_peak_gb"] >= 0 and 0 < eigen["eigen_s"] <= eigen["layers_s"]
        assert eigen["layers_peak_gb"] >= 0


RESIDUAL = [name for name, cls in METHODS if cls.residual_modifying]


@pytest.mark.parametrize("name", RESIDUAL)
def test_exported_plain_lora_matches_trained_model_on_original_base(name, tiny_model_cfg):
    run_dir = run(tiny_cfg(f"method={name}", "task.train.max_steps=2", "skip_eval=true", "rank=4", "lr=0.01"))
    plain = run_dir / "export" / "plain_lora"
    config = json.loads((plain / "adapter_config.json").read_text())
    assert config["r"] == 8  # rank 2r

    ids = torch.randint(3, 100, (2, 24), generator=torch.Generator().manual_seed(0))
    original, _ = load_model(tiny_model_cfg)
    converted = PeftModel.from_pretrained(original, str(plain)).eval()
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "export" / "merged").eval()
    untouched, _ = load_model(tiny_model_cfg)
    with torch.no_grad():
        a = converted(ids).logits
        b = merged(ids).logits
        c = untouched.eval()(ids).logits
    assert (a - b).abs().max() < 1e-4
    assert (b - c).abs().max() > 1e-4, "training did not change the model, the check would be vacuous"
