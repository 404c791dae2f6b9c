"""Astra init: outputs unchanged at init, the factor shapes of the reference (B = V orthonormal, A = VᵀW), the
eigenvector selections (largest / smallest / windows / random) checked against an independent eigh, options."""

import dataclasses
import warnings

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from astra_repro.calibration import CalibrationSpec, collect_covariances
from astra_repro.errors import ConfigError
from astra_repro.methods.astra import astra_options, Astra
from astra_repro.methods.base import METHODS, HyperParams, InitContext, lora_layers
from astra_repro.models import load_model
from astra_repro.paths import CONFIG_DIR

RANK, ALPHA = 8, 16  # s = alpha / r = 2, so the residual scaling is visible


def make_records(n=24):
    return [{"instruction": f"Q{i}: what is {i} + {2 * i}? " * (1 + i % 3), "output": f"A: {3 * i}."} for i in range(n)]


def make_ctx(tokenizer, target_modules, yaml="astra", rank=RANK, alpha=ALPHA, seed=0, **options):
    opts = OmegaConf.load(CONFIG_DIR / "method" / f"{yaml}.yaml")
    opts = OmegaConf.merge(opts, OmegaConf.create(options))
    calibration = OmegaConf.create(dict(source="task", n_samples=6, seq_len=40, batch_size=1, seed=42, padding="max_length", path=None))
    return InitContext(
        hp=HyperParams(rank=rank, alpha=alpha, dropout=0.0, target_modules=list(target_modules), learning_rate=2e-4),
        options=opts, tokenizer=tokenizer, seed=seed, train_records=make_records(), calibration=calibration,
        cache_identity={"model": "tiny_llama", "task": "synthetic"},
    )


def astra_init(tiny_model_cfg, **kwargs):
    model, tokenizer = load_model(tiny_model_cfg)
    ctx = make_ctx(tokenizer, tiny_model_cfg.target_modules, **kwargs)
    return Astra().initialize(model, ctx), ctx


def reference_covariances(tiny_model_cfg, ctx):
    """Covariances of a fresh copy of the original model (cached from the init's own pass)."""
    model, tokenizer = load_model(tiny_model_cfg)
    spec = CalibrationSpec.from_config(ctx.calibration, astra_options(ctx.options), where="output")
    return collect_covariances(model, tokenizer, ctx.train_records, spec, ctx.hp.target_modules, ctx.cache_identity)


def logits(model, input_ids):
    model.eval()
    with torch.no_grad():
        return model(input_ids=input_ids).logits


INPUT_IDS = torch.tensor([[5, 17, 40, 41, 12, 80, 33, 3, 9, 70], [60, 61, 62, 9, 10, 11, 2, 2, 2, 2]])


def test_registered():
    import astra_repro.methods  # noqa: F401  (the registry imports every method module)

    assert METHODS.get("astra") is Astra and Astra.residual_modifying


def test_outputs_unchanged_and_factors_match_the_reference(tiny_model_cfg):
    original, _ = load_model(tiny_model_cfg)
    peft_model, ctx = astra_init(tiny_model_cfg)
    torch.testing.assert_close(logits(peft_model, INPUT_IDS), logits(original, INPUT_IDS), rtol=0, atol=1e-5)
    original_weights = dict(original.named_parameters())
    layers = lora_layers(peft_model)
    assert len(layers) == 14
    for name, layer in layers.items():
        A = layer.lora_A["default"].weight.detach()
        B = layer.lora_B["default"].weight.detach()
        W_res = layer.get_base_layer().weight.detach()
        W = original_weights[f"{name}.weight"].detach()
        s = layer.scaling["default"]
        assert s == ALPHA / RANK
        torch.testing.assert_close(B.T @ B, torch.eye(RANK), rtol=0, atol=1e-5)  # orthonormal columns
        torch.testing.assert_close(A, B.T @ W, rtol=0, atol=1e-5)  # A = VᵀW
        torch.testing.assert_close(W_res + s * B @ A, W, rtol=0, atol=1e-5)
        assert not torch.allclose(W_res, W, atol=1e-3)  # the residual really was modified
    assert ctx.report["astra"]["subspace"] == "largest" and ctx.report["astra"]["selection_label"] == "Tail"
    summary = ctx.report["astra_selected_percentiles"]
    assert set(summary) == set(tiny_model_cfg.target_modules)
    assert summary["q_proj"]["percentile_low"] == pytest.approx(100 * (64 - RANK) / 64)
    assert summary["q_proj"]["percentile_high"] == 100.0


def trace_energy(B, C):
    return float(torch.trace(B.double().T @ C.double() @ B.double()))


def test_largest_and_smallest_extremise_the_energy_theorem_2_2(tiny_model_cfg):
    largest, ctx = astra_init(tiny_model_cfg, subspace="largest")
    smallest, _ = astra_init(tiny_model_cfg, subspace="smallest")
    covariances = reference_covariances(tiny_model_cfg, ctx)
    small_layers = lora_layers(smallest)
    generator = torch.Generator().manual_seed(0)
    for name, layer in lora_layers(largest).items():
        C = covariances[name]
        eigvals = np.linalg.eigvalsh(C.double().numpy())  # independent, ascending
        tol = 1e-5 * eigvals[-1] * RANK
        top = trace_energy(layer.lora_B["default"].weight.detach(), C)
        bottom = trace_energy(small_layers[name].lora_B["default"].weight.detach(), C)
        assert top == pytest.approx(eigvals[-RANK:].sum(), abs=tol)
        assert bottom == pytest.approx(eigvals[:RANK].sum(), abs=tol)
        for _ in range(3):
            U, _ = torch.linalg.qr(torch.randn(C.shape[0], RANK, generator=generator, dtype=torch.float64))
            assert bottom - tol <= trace_energy(U, C) <= top + tol


def test_window_picks_exactly_the_named_columns(tiny_model_cfg):
    windows = {"d/4": lambda d: d // 4, "3d/4": lambda d: 3 * d // 4, "0": lambda d: 0, 5: lambda d: 5}
    covariances = None
    for window_start, start_of in windows.items():  # one test: the calibration cache is shared by the inits
        peft_model, ctx = astra_init(tiny_model_cfg, subspace="window", window_start=window_start)
        covariances = covariances or reference_covariances(tiny_model_cfg, ctx)
        for name, layer in lora_layers(peft_model).items():
            C = covariances[name].double()
            eigvals = np.linalg.eigvalsh(C.numpy())
            d = C.shape[0]
            start = min(start_of(d), d - RANK)
            B = layer.lora_B["default"].weight.detach().double()
            # Each column of B is an eigenvector (BᵀCB diagonal) and their eigenvalues are exactly the window's.
            M = (B.T @ C @ B).numpy()
            tol = 1e-5 * eigvals[-1]
            np.testing.assert_allclose(M - np.diag(np.diag(M)), 0, atol=tol)
            np.testing.assert_allclose(np.sort(np.diag(M)), eigvals[start : start + RANK], atol=tol, err_msg=f"{window_start}")


def test_window_is_clipped_to_fit():
    from astra_repro.methods.astra import select_columns

    assert select_columns("window", 10, 8, "d/2").tolist() == list(range(2, 10))
    assert select_columns("window", 64, 8, "d-r").tolist() == list(range(56, 64))
    with pytest.raises(ConfigError):
        select_columns("largest", 4, 8)


def test_random_is_seeded_and_picks_eigenvectors(tiny_model_cfg):
    first, ctx = astra_init(tiny_model_cfg, subspace="random", seed=3)
    again, _ = astra_init(tiny_model_cfg, subspace="random", seed=3)
    other, _ = astra_init(tiny_model_cfg, subspace="random", seed=4)
    covariances = reference_covariances(tiny_model_cfg, ctx)
    again_layers, other_layers = lora_layers(again), lora_layers(other)
    differs = False
    for name, layer in lora_layers(first).items():
        B = layer.lora_B["default"].weight.detach()
        assert torch.equal(B, again_layers[name].lora_B["default"].weight.detach())
        differs |= not torch.allclose(B.abs(), other_layers[name].lora_B["default"].weight.detach().abs(), atol=1e-4)
        C = covariances[name].double()
        eigvals = np.linalg.eigvalsh(C.numpy())
        diag = np.diag((B.double().T @ C @ B.double()).numpy())
        tol = 1e-5 * eigvals[-1]
        assert all(np.min(np.abs(eigvals - v)) < tol for v in diag)  # each column is an eigenvector
        torch.testing.assert_close(B.T @ B, torch.eye(RANK), rtol=0, atol=1e-5)  # r distinct ones
    assert differs
    assert ctx.report["astra"]["selection_label"] == "Random"


def test_residual_scaling_none_is_eq_8_and_warns(tiny_model_cfg):
    original, _ = load_model(tiny_model_cfg)
    with pytest.warns(UserWarning, match="outputs change at init"):
        peft_model, _ = astra_init(tiny_model_cfg, residual_scaling="none")
    for name, layer in lora_layers(peft_model).items():
        W = dict(original.named_parameters())[f"{name}.weight"].detach()
        B, A = layer.lora_B["default"].weight.detach(), layer.lora_A["default"].weight.detach()
        torch.testing.assert_close(layer.get_base_layer().weight.detach() + B @ A, W, rtol=0, atol=1e-5)
    assert not torch.allclose(logits(peft_model, INPUT_IDS), logits(original, INPUT_IDS), atol=1e-3)
    # With alpha = r (the paper's NLG setting, s = 1) Eq. 8 and the code agree: no warning, outputs unchanged.
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        same, _ = astra_init(tiny_model_cfg, residual_scaling="none", rank=8, alpha=8)
    torch.testing.assert_close(logits(same, INPUT_IDS), logits(original, INPUT_IDS), rtol=0, atol=1e-5)


def test_paper_math_variant(tiny_model_cfg):
    original, _ = load_model(tiny_model_cfg)
    peft_model, ctx = astra_init(tiny_model_cfg, yaml="astra_paper_math")
    torch.testing.assert_close(logits(peft_model, INPUT_IDS), logits(original, INPUT_IDS), rtol=0, atol=1e-5)
    calibration = ctx.report["astra"]["calibration"]
    assert (calibration["center"], calibration["include_padding"], calibration["accumulate_dtype"]) == (True, False, "float64")  # auto: the small end in float64 (D13)
    assert ctx.report["astra"]["subspace"] == "smallest" and ctx.report["astra"]["selection_label"] == "Tail"
    assert ctx.report["astra_selected_percentiles"]["q_proj"]["percentile_low"] == 0.0


@pytest.mark.parametrize(
    "options, label",
    [
        (dict(subspace="largest"), "Tail"),
        (dict(subspace="smallest"), "Top"),
        (dict(subspace="window", window_start="d/2"), "Medium"),
        (dict(subspace="window", window_start="d/4"), "Upper Quartile (Q3)"),
        (dict(subspace="window", window_start="3d/4"), "Lower Quartile (Q1)"),
        (dict(subspace="random"), "Random"),
        (dict(subspace="largest", label_convention="math"), "Top"),
        (dict(subspace="smallest", label_convention="math"), "Tail"),
        (dict(subspace="window", window_start="d/4", label_convention="math"), "Lower Quartile (Q1)"),
        (dict(subspace="window", window_start=7), "Window@7"),
    ],
)
def test_selection_label(options, label):
    assert Astra.selection_label(OmegaConf.create(options)) == label


@pytest.mark.parametrize(
    "bad",
    [dict(subspace="biggest"), dict(window_start="d/3"), dict(label_convention="physics"), dict(residual_scaling="half")],
)
def test_bad_options_are_config_errors(tiny_model_cfg, bad):
    with pytest.raises(ConfigError, match="valid"):
        astra_init(tiny_model_cfg, **bad)


def test_dora_is_refused(tiny_model_cfg):
    model, tokenizer = load_model(tiny_model_cfg)
    ctx = make_ctx(tokenizer, tiny_model_cfg.target_modules)
    ctx.hp = dataclasses.replace(ctx.hp, use_dora=True)
    with pytest.raises(ConfigError, match="use_dora"):
        Astra().initialize(model, ctx)


@pytest.mark.parametrize("yaml", ["astra", "astra_paper_math"])
def test_yaml_documents_every_option(yaml):
    cfg = OmegaConf.load(CONFIG_DIR / "method" / f"{yaml}.yaml")
    assert cfg.name == "astra"
    assert set(Astra.options) <= set(cfg), f"{yaml}.yaml lacks {set(Astra.options) - set(cfg)}"
    assert "hp" not in cfg  # hyper-parameters come from the scale (tests/test_scale_composition.py checks them)
