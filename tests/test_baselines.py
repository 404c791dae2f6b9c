"""Baseline initialisations (PiSSA, MiLoRA, CorDA, LoRA-GA, OLoRA, EVA, LoRA+) on the tiny fp32 Llama.

Every residual-modifying init must leave the model's outputs unchanged (W_res + s·B·A == W), and each init must put
the subspace its authors' rule names into the adapter; these are checked against independent computations here.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from astra_repro.errors import ConfigError
from astra_repro.methods import base as methods_base
from astra_repro.methods.base import HyperParams, InitContext, lora_layers
from astra_repro.methods.corda import CorDA
from astra_repro.methods.eva import EVA
from astra_repro.methods.loraga import LoRAGA
from astra_repro.methods.loraplus import LoRAPlus
from astra_repro.methods.milora import MiLoRA
from astra_repro.methods.olora import OLoRA
from astra_repro.methods.pissa import PiSSA

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RANK, ALPHA = 4, 8

RECORDS = [
    {"instruction": "What is 2 + 3?", "output": "2 + 3 = 5. The answer is: 5"},
    {"instruction": "Tom has 4 apples and eats one. How many are left?", "output": "4 - 1 = 3. The answer is: 3"},
    {"instruction": "Name a primary colour.", "output": "Red is a primary colour."},
    {"instruction": "Double 21.", "output": "21 * 2 = 42. The answer is: 42"},
    {"instruction": "Write the word cat backwards.", "output": "The word cat backwards is tac."},
    {"instruction": "What is 10 divided by 5?", "output": "10 / 5 = 2. The answer is: 2"},
    {"instruction": "Is 7 odd or even?", "output": "7 is odd because 7 = 2 * 3 + 1."},
    {"instruction": "Add 12 and 30.", "output": "12 + 30 = 42. The answer is: 42"},
    {"instruction": "Spell the number 9.", "output": "Nine."},
    {"instruction": "What comes after Monday?", "output": "Tuesday comes after Monday."},
]


def tokenise(tokenizer, records):
    features = []
    for rec in records:
        prompt = f"### Instruction:\n{rec['instruction']}\n### Response:"
        prompt_ids = tokenizer(prompt)["input_ids"]
        ids = tokenizer(prompt + rec["output"] + tokenizer.eos_token)["input_ids"]
        labels = [-100] * len(prompt_ids) + ids[len(prompt_ids):]
        features.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels})
    return features


def make_ctx(tokenizer, options: dict | None = None, use_rslora: bool = False, seed: int = 0) -> InitContext:
    from transformers import DataCollatorForSeq2Seq

    return InitContext(
        hp=HyperParams(rank=RANK, alpha=ALPHA, dropout=0.0, target_modules=list(TARGETS), learning_rate=1e-3,
                       use_rslora=use_rslora),
        options=OmegaConf.create(options or {}),
        tokenizer=tokenizer,
        seed=seed,
        train_records=RECORDS,
        train_features=tokenise(tokenizer, RECORDS),
        collate_fn=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        calibration=OmegaConf.create(
            {"source": "task", "n_samples": 4, "seq_len": 32, "batch_size": 1, "seed": 42, "padding": "max_length",
             "path": None}
        ),
        cache_identity={"model": "tiny", "task": "test"},
    )


def probe_batch(tokenizer):
    enc = tokenizer(["The answer is: 42", "Tom has 4 apples"], return_tensors="pt", padding=True)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


def linear_weights(model) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().clone() for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in TARGETS}


def projector(M: torch.Tensor) -> torch.Tensor:
    """Orthogonal projector onto the column space of M (float64)."""
    Q, _ = torch.linalg.qr(M.double())
    return Q @ Q.T


def subspace_distance(M1: torch.Tensor, M2: torch.Tensor) -> float:
    return float(torch.linalg.matrix_norm(projector(M1) - projector(M2), ord=2))


# Residual-modifying inits (method class, options, use_rslora).
RESIDUAL_CASES = {
    "pissa": (PiSSA, {}, False),
    "pissa_exact": (PiSSA, {"svd": "exact"}, False),
    "milora": (MiLoRA, {}, False),
    "corda_ipm": (CorDA, {"mode": "ipm", "include_padding": False}, False),
    "corda_kpm": (CorDA, {"mode": "kpm", "include_padding": False}, False),
    "loraga_original": (LoRAGA, {"flavour": "original"}, True),
    "loraga_peft": (LoRAGA, {"flavour": "peft"}, True),
    "olora": (OLoRA, {}, False),
}


@pytest.mark.parametrize("case", list(RESIDUAL_CASES))
def test_residual_inits_keep_outputs_and_weights(tiny_model, case):
    model, tokenizer = tiny_model
    cls, options, rslora = RESIDUAL_CASES[case]
    assert cls.residual_modifying
    original = copy.deepcopy(model).eval()
    before = linear_weights(model)
    batch = probe_batch(tokenizer)
    with torch.no_grad():
        ref = original(**batch).logits

    peft_model = cls().initialize(model, make_ctx(tokenizer, options, use_rslora=rslora))
    peft_model.eval()
    with torch.no_grad():
        out = peft_model(**batch).logits
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)

    layers = lora_layers(peft_model)
    assert set(layers) == set(before)
    expected_scale = ALPHA / (RANK ** 0.5 if rslora else RANK)
    for name, layer in layers.items():
        s = layer.scaling["default"]
        assert s == pytest.approx(expected_scale)
        W_res = layer.get_base_layer().weight.detach()
        BA = layer.lora_B["default"].weight.detach() @ layer.lora_A["default"].weight.detach()
        W_norm = torch.linalg.matrix_norm(before[name])
        # MiLoRA's minor triplets of a random matrix are small, hence relative thresholds.
        assert torch.linalg.matrix_norm(s * BA) > 1e-3 * W_norm, f"{case}: {name} adapter is zero"
        assert torch.linalg.matrix_norm(W_res - before[name]) > 1e-3 * W_norm, f"{case}: {name} base weight not modified"
        torch.testing.assert_close(W_res + s * BA, before[name], atol=2e-5, rtol=1e-4)


def test_pissa_exact_is_top_r_svd(tiny_model):
    model, tokenizer = tiny_model
    before = linear_weights(model)
    peft_model = PiSSA().initialize(model, make_ctx(tokenizer, {"svd": "exact"}))
    for name, layer in lora_layers(peft_model).items():
        U, S, Vh = torch.linalg.svd(before[name].double(), full_matrices=False)
        A, B, s = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach(), layer.scaling["default"]
        assert subspace_distance(B, U[:, :RANK]) < 1e-4, name
        assert subspace_distance(A.T, Vh[:RANK].T) < 1e-4, name
        # sqrt(S/s) split: B and A carry the same singular values sqrt(S_r / s).
        torch.testing.assert_close(torch.linalg.svdvals(B.double()), torch.sqrt(S[:RANK] / s), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.linalg.svdvals(A.double()), torch.sqrt(S[:RANK] / s), atol=1e-4, rtol=1e-4)


def test_pissa_fast_svd_close_to_exact(tiny_model):
    model, tokenizer = tiny_model
    before = linear_weights(model)
    peft_model = PiSSA().initialize(model, make_ctx(tokenizer, {"svd": "fast", "niter": 16}))
    assert peft_model.peft_config["default"].init_lora_weights == "pissa_niter_16"
    for name, layer in lora_layers(peft_model).items():
        W = before[name].double()
        S = torch.linalg.svdvals(W)
        # PEFT calls svd_lowrank(W, q=r) without oversampling, so on a random (flat-spectrum) matrix the subspace is
        # only approximate: require the captured energy ||P_B W||_F to be near the optimum sqrt(sum S_r^2).
        P = projector(layer.lora_B["default"].weight.detach())
        captured = float(torch.linalg.matrix_norm(P @ W) / torch.sqrt((S[:RANK] ** 2).sum()))
        assert 0.95 < captured <= 1 + 1e-9, (name, captured)
        # ... and clearly more than the minor directions would give.
        assert captured > 1.5 * float(torch.sqrt((S[-RANK:] ** 2).sum() / (S[:RANK] ** 2).sum()))


def test_milora_is_bottom_r_svd(tiny_model):
    model, tokenizer = tiny_model
    before = linear_weights(model)
    peft_model = MiLoRA().initialize(model, make_ctx(tokenizer))
    for name, layer in lora_layers(peft_model).items():
        U, S, Vh = torch.linalg.svd(before[name].double(), full_matrices=False)
        A, B, s = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach(), layer.scaling["default"]
        assert subspace_distance(B, U[:, -RANK:]) < 1e-3, name
        assert subspace_distance(A.T, Vh[-RANK:].T) < 1e-3, name
        assert subspace_distance(B, U[:, :RANK]) > 0.99, name  # and not the principal one
        torch.testing.assert_close(s * (B.double() @ A.double()), U[:, -RANK:] @ torch.diag(S[-RANK:]) @ Vh[-RANK:],
                                   atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(torch.linalg.svdvals(B.double()), torch.sqrt(S[-RANK:] / s), atol=1e-5, rtol=1e-4)


def reference_corda(W: torch.Tensor, C: torch.Tensor, r: int, mode: str):
    """Independent float64 CorDA decomposition: damped C, SVD of W·C, V = (Vh·C⁻¹)ᵀ; returns (U_r, S_r, V_r)."""
    W, C = W.double(), C.double()
    eye = torch.eye(C.shape[0], dtype=torch.float64)
    damp = 0.01
    while True:
        Cd = C + damp * torch.diagonal(C).mean() * eye
        Cinv = torch.linalg.inv(Cd)
        if torch.linalg.matrix_norm(Cd @ Cinv - eye) < 0.05:
            break
        damp *= 2
    U, S, Vh = torch.linalg.svd(W @ Cd, full_matrices=False)
    V = (Vh @ Cinv).T
    idx = slice(0, r) if mode == "ipm" else slice(S.numel() - r, S.numel())
    return U[:, idx], S[idx], V[:, idx]


@pytest.mark.parametrize("mode", ["ipm", "kpm"])
def test_corda_matches_independent_decomposition(tiny_model, mode):
    from astra_repro.calibration import CalibrationSpec, collect_covariances

    model, tokenizer = tiny_model
    before = linear_weights(model)
    ctx = make_ctx(tokenizer, {"mode": mode, "include_padding": False})
    spec = CalibrationSpec.from_config(ctx.calibration, ctx.options, where="input")
    assert spec.where == "input" and spec.normalize == "absmax" and not spec.include_padding
    covs = collect_covariances(copy.deepcopy(model), tokenizer, RECORDS, spec, TARGETS, ctx.cache_identity)
    peft_model = CorDA().initialize(model, ctx)
    for name, layer in lora_layers(peft_model).items():
        C = covs[name]
        assert C.shape == (before[name].shape[1],) * 2  # input covariance: d_in x d_in
        U_r, S_r, V_r = reference_corda(before[name], C, RANK, mode)
        A, B, s = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach(), layer.scaling["default"]
        assert subspace_distance(B, U_r) < 1e-3, name
        assert subspace_distance(A.T, V_r) < 1e-3, name
        # The adapter holds exactly the selected triplets: s·B·A = U_r S_r V_rᵀ.
        target = U_r @ torch.diag(S_r) @ V_r.T
        # (fp32 SVD of a damped, moderately conditioned W·C vs float64 here: compare in relative Frobenius norm.)
        err = torch.linalg.matrix_norm(s * (B.double() @ A.double()) - target) / torch.linalg.matrix_norm(target)
        assert err < 5e-3, (name, float(err))


def test_corda_ipm_and_kpm_differ(tiny_model):
    model, tokenizer = tiny_model
    ipm = CorDA().initialize(copy.deepcopy(model), make_ctx(tokenizer, {"mode": "ipm"}))
    kpm = CorDA().initialize(copy.deepcopy(model), make_ctx(tokenizer, {"mode": "kpm"}))
    name = "model.layers.0.mlp.up_proj"
    B_ipm = lora_layers(ipm)[name].lora_B["default"].weight.detach()
    B_kpm = lora_layers(kpm)[name].lora_B["default"].weight.detach()
    assert subspace_distance(B_ipm, B_kpm) > 0.5
    # IPM keeps the large singular values of W·C, KPM the small ones.
    assert torch.linalg.matrix_norm(B_ipm) > torch.linalg.matrix_norm(B_kpm)


def independent_gradient(model, ctx, n: int = 8) -> dict[str, torch.Tensor]:
    """Mean over the first n training examples (batch 1) of dL/dW for every target weight, full-model backward."""
    model = copy.deepcopy(model).train()
    for p in model.parameters():
        p.requires_grad_(True)
    grads = {}
    for feature in ctx.train_features[:n]:
        model.zero_grad()
        model(**ctx.collate_fn([feature])).loss.backward()
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and name.split(".")[-1] in TARGETS:
                grads[name] = grads.get(name, 0) + m.weight.grad.detach().double() / n
    return grads


def test_loraga_original_subspaces_and_scale(tiny_model):
    model, tokenizer = tiny_model
    ctx = make_ctx(tokenizer, {"flavour": "original"}, use_rslora=True)
    grads = independent_gradient(model, ctx)
    peft_model = LoRAGA().initialize(model, ctx)
    for name, layer in lora_layers(peft_model).items():
        U, S, Vh = torch.linalg.svd(grads[name], full_matrices=False)
        A, B = layer.lora_A["default"].weight.detach().double(), layer.lora_B["default"].weight.detach().double()
        # ArB2r: B spans U[:, r:2r], A's rows span Vh[:r] (B is d_out x r, A is r x d_in).
        assert subspace_distance(B, U[:, RANK:2 * RANK]) < 0.05, name
        assert subspace_distance(A.T, Vh[:RANK].T) < 0.05, name
        # stable scale on BOTH factors: orthonormal frames times m^(1/4)/sqrt(16), m = out_features; no singular values.
        factor = B.shape[0] ** 0.25 / 4.0
        torch.testing.assert_close(B.T @ B, factor ** 2 * torch.eye(RANK, dtype=torch.float64), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(A @ A.T, factor ** 2 * torch.eye(RANK, dtype=torch.float64), atol=1e-4, rtol=1e-4)


def test_loraga_peft_flavour_scales_only_B_with_singular_values(tiny_model):
    model, tokenizer = tiny_model
    ctx = make_ctx(tokenizer, {"flavour": "peft"}, use_rslora=True)
    grads = independent_gradient(model, ctx)
    peft_model = LoRAGA().initialize(model, ctx)
    name = "model.layers.1.self_attn.o_proj"
    layer = lora_layers(peft_model)[name]
    U, S, Vh = torch.linalg.svd(grads[name], full_matrices=False)
    A, B = layer.lora_A["default"].weight.detach().double(), layer.lora_B["default"].weight.detach().double()
    assert subspace_distance(B, U[:, RANK:2 * RANK]) < 0.05
    torch.testing.assert_close(A @ A.T, torch.eye(RANK, dtype=torch.float64), atol=1e-4, rtol=1e-4)  # A unscaled
    factor = B.shape[0] ** 0.25 / 4.0
    torch.testing.assert_close(torch.linalg.norm(B, dim=0), factor * S[RANK:2 * RANK], rtol=2e-2, atol=1e-8)


def first_step_updates(peft_model, ctx, lr: float = 1e-4) -> dict[str, torch.Tensor]:
    """One SGD step on the mean loss of the first 8 examples; per layer the change in W_eff = W_res + s·B·A (float64)."""
    layers = lora_layers(peft_model)

    def effective(layer):
        return layer.scaling["default"] * (layer.lora_B["default"].weight.detach().double()
                                           @ layer.lora_A["default"].weight.detach().double())

    start = {n: effective(l) for n, l in layers.items()}
    opt = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=lr)
    peft_model.train()
    opt.zero_grad()
    for feature in ctx.train_features[:8]:
        (peft_model(**ctx.collate_fn([feature])).loss / 8).backward()
    opt.step()
    return {n: effective(l) - start[n] for n, l in layers.items()}


def alignment(delta: torch.Tensor, grad: torch.Tensor, k: int) -> tuple[float, float]:
    """(share of ||delta|| in the top-k left singular subspace of grad, cosine between delta and -grad_k), where
    grad_k is the best rank-k approximation of grad."""
    U, S, Vh = torch.linalg.svd(grad, full_matrices=False)
    share = float(torch.linalg.matrix_norm(U[:, :k].T @ delta) / torch.linalg.matrix_norm(delta))
    grad_k = U[:, :k] @ torch.diag(S[:k]) @ Vh[:k]
    cosine = float(-(delta * grad_k).sum() / (torch.linalg.matrix_norm(delta) * torch.linalg.matrix_norm(grad_k)))
    return share, cosine


def test_loraga_first_update_follows_gradient(tiny_model):
    """With A = c·Vh[:r] and B = c·U[:, r:2r], one SGD step changes W_eff by -lr·s²·c²·(G AᵀA/c² + BBᵀG/c²) =
    -lr·s²·c²·G_2r: the best rank-2r approximation of the full gradient (LoRA-GA's claim)."""
    from astra_repro.methods.lora import Lora

    model, tokenizer = tiny_model
    ctx = make_ctx(tokenizer, {"flavour": "original"}, use_rslora=True)
    grads = independent_gradient(model, ctx)
    deltas = first_step_updates(LoRAGA().initialize(copy.deepcopy(model), ctx), ctx)
    for name, delta in deltas.items():
        share, cosine = alignment(delta, grads[name], 2 * RANK)
        assert share > 0.999 and cosine > 0.99, (name, share, cosine)
    # Control: plain LoRA's first step (random A, zero B) is far from -G_2r.
    control = first_step_updates(Lora().initialize(copy.deepcopy(model), make_ctx(tokenizer, use_rslora=True)), ctx)
    control_cos = [alignment(d, grads[n], 2 * RANK)[1] for n, d in control.items()]
    assert np.mean(control_cos) < 0.9, control_cos


def test_loraga_needs_features(tiny_model):
    model, tokenizer = tiny_model
    ctx = make_ctx(tokenizer, {"flavour": "original"}, use_rslora=True)
    ctx.train_features = []
    with pytest.raises(ConfigError):
        LoRAGA().initialize(model, ctx)
    with pytest.raises(ConfigError):
        LoRAGA().initialize(model, make_ctx(tokenizer, {"flavour": "nope"}))


def test_olora_is_qr(tiny_model):
    model, tokenizer = tiny_model
    before = linear_weights(model)
    peft_model = OLoRA().initialize(model, make_ctx(tokenizer))
    name = "model.layers.0.mlp.down_proj"
    layer = lora_layers(peft_model)[name]
    Q, R = torch.linalg.qr(before[name].float())
    torch.testing.assert_close(layer.lora_B["default"].weight.detach(), Q[:, :RANK])
    torch.testing.assert_close(layer.lora_A["default"].weight.detach(), R[:RANK])


def test_loraplus_param_groups_have_ratio(tiny_model):
    model, tokenizer = tiny_model
    method = LoRAPlus()
    ctx = make_ctx(tokenizer, {"lr_ratio": 16})
    peft_model = method.initialize(model, ctx)
    groups = method.optimizer_param_groups(peft_model, lr=1e-4, weight_decay=0.01)
    by_name = {g["name"]: g for g in groups}
    a, b = by_name["loraplus_A"], by_name["loraplus_B_no_decay" if "loraplus_B" not in by_name else "loraplus_B"]
    assert a["lr"] == pytest.approx(1e-4) and b["lr"] == pytest.approx(16e-4)
    ids = {id(p): g["name"] for g in groups for p in g["params"]}
    for name, p in peft_model.named_parameters():
        if not p.requires_grad:
            assert id(p) not in ids
        elif "lora_B" in name:
            assert ids[id(p)].startswith("loraplus_B"), name
        elif "lora_A" in name:
            assert ids[id(p)] == "loraplus_A", name
    n_trainable = sum(1 for p in peft_model.parameters() if p.requires_grad)
    assert len(ids) == n_trainable
    # A usable optimizer, and PEFT's own LoRA+ grouping agrees on which tensors run fast.
    torch.optim.AdamW(groups, lr=1e-4)
    from peft.optimizers import create_loraplus_optimizer

    ref = create_loraplus_optimizer(peft_model, torch.optim.AdamW, lr=1e-4, loraplus_lr_ratio=16)
    fast_ref = {id(p) for g in ref.param_groups if g["lr"] == pytest.approx(16e-4) for p in g["params"]}
    fast_ours = {id(p) for g in groups if g["lr"] == pytest.approx(16e-4) for p in g["params"]}
    assert fast_ours == fast_ref and fast_ours


def test_eva_initialises_lora_A_from_activations(tiny_model):
    from astra_repro.methods.lora import Lora

    model, tokenizer = tiny_model
    original = copy.deepcopy(model).eval()
    batch = probe_batch(tokenizer)
    ctx = make_ctx(tokenizer, {"rho": 1.0, "batch_size": 4})
    torch.manual_seed(0)
    eva_model = EVA().initialize(copy.deepcopy(model), ctx)
    torch.manual_seed(0)
    lora_model = Lora().initialize(copy.deepcopy(model), make_ctx(tokenizer))
    eva_layers, lora_layers_ = lora_layers(eva_model), lora_layers(lora_model)
    assert set(eva_layers) == set(lora_layers_)
    for name, layer in eva_layers.items():
        A = layer.lora_A["default"].weight.detach()
        assert A.shape[0] == RANK  # rho = 1: no redistribution
        assert not torch.allclose(A, lora_layers_[name].lora_A["default"].weight.detach())
        # EVA components are orthonormal rows (no whitening); B starts at zero.
        torch.testing.assert_close(A @ A.T, torch.eye(RANK), atol=1e-4, rtol=1e-4)
        assert torch.count_nonzero(layer.lora_B["default"].weight) == 0
    eva_model.eval()
    with torch.no_grad():
        torch.testing.assert_close(eva_model(**batch).logits, original(**batch).logits)
    assert not EVA.residual_modifying


def test_eva_rank_redistribution_survives_save_and_load(tiny_model, tmp_path):
    """With rho = 2 EVA gives layers different ranks; the saved adapter (rank_pattern) must reload as it was."""
    from peft import PeftModel

    model, tokenizer = tiny_model
    fresh = copy.deepcopy(model)
    eva_model = EVA().initialize(model, make_ctx(tokenizer, {"rho": 2.0}))
    layers = lora_layers(eva_model)
    ranks = {n: l.r["default"] for n, l in layers.items()}
    assert sum(ranks.values()) <= RANK * len(TARGETS) * 2 and max(ranks.values()) <= 2 * RANK
    eva_model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(fresh, str(tmp_path / "adapter"), is_trainable=True)
    for name, layer in lora_layers(reloaded).items():
        torch.testing.assert_close(layer.lora_A["default"].weight, layers[name].lora_A["default"].weight)
        torch.testing.assert_close(layer.lora_B["default"].weight, layers[name].lora_B["default"].weight)


def test_classes_are_registered():
    for cls, name, residual in [(PiSSA, "pissa", True), (MiLoRA, "milora", True), (CorDA, "corda", True),
                                (LoRAGA, "loraga", True), (OLoRA, "olora", True), (EVA, "eva", False),
                                (LoRAPlus, "loraplus", False)]:
        assert methods_base.METHODS.get(name) is cls
        assert cls.name == name and cls.description and cls.residual_modifying is residual


@pytest.mark.parametrize("name", ["pissa", "milora", "corda", "loraga", "olora", "eva", "loraplus"])
def test_method_yaml_schema(name):
    from astra_repro.paths import CONFIG_DIR

    cfg = OmegaConf.load(CONFIG_DIR / "method" / f"{name}.yaml")
    assert cfg.name == name and cfg.description
    assert "hp" not in cfg  # lr / rank / alpha come from the scale files (tests/test_scale_composition.py)
    assert {"dropout", "use_rslora", "use_dora"} <= set(cfg)


def test_bad_options_raise(tiny_model):
    model, tokenizer = tiny_model
    with pytest.raises(ConfigError):
        PiSSA().initialize(model, make_ctx(tokenizer, {"svd": "approximate"}))
    with pytest.raises(ConfigError):
        MiLoRA().initialize(model, make_ctx(tokenizer, {"mode": "smallest"}))
    with pytest.raises(ConfigError):
        CorDA().initialize(model, make_ctx(tokenizer, {"mode": "xpm"}))
