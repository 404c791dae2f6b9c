"""MiLoRA (Wang et al. 2024): adapt the *minor* singular triplets of W, freeze the rest.

Rule [MiLoRA `svd_init.py` `initialize_lora_layer(mode="min")`, as called by sufenlp/MiLoRA's scripts]:
    U, S, Vh = torch.linalg.svd(W.float())          (full SVD, S descending)
    keep the LAST r triplets (smallest singular values), S_r <- S_r / s   (s = alpha / r)
    B = U_r diag(sqrt(S_r)),  A = diag(sqrt(S_r)) Vh_r,  W_res = W - s B A
The reference also has modes "mid", "max" and "random" (its ablation); `mode` selects them here, "min" is MiLoRA.

Hand-written: PEFT's `init_lora_weights="mica"` is a different method (A = 0, B = frozen minor left vectors).
One deliberate difference from the reference script: it subtracts s*B*A formed from the fp32 factors, while we
(`install_low_rank_init`) form it from the factors as stored in the adapter's dtype, so W_res + s*B*A == W holds
for the weights actually trained. Identical in fp32.
"""

from __future__ import annotations

import numpy as np
import torch

from astra_repro.errors import ConfigError
from astra_repro.methods.base import InitContext, Method, Option, install_low_rank_init, lora_layers, register_method

MODES = ("min", "mid", "max", "random")


def select_triplets(n: int, r: int, mode: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """Indices into a descending singular spectrum of length n, as svd_init.py picks them."""
    if r > n:
        raise ConfigError(f"rank {r} exceeds the layer's number of singular values {n}; lower the rank")
    if mode == "min":
        return np.arange(n - r, n)
    if mode == "mid":
        start = (n - r) // 2
        return np.arange(start, start + r)
    if mode == "max":
        return np.arange(r)
    if mode == "random":
        rng = rng or np.random.default_rng(0)
        return np.sort(rng.choice(n, r, replace=False))
    raise ConfigError(f"unknown method.mode '{mode}'; valid: {', '.join(MODES)}")


@torch.no_grad()
def milora_factors(weight: torch.Tensor, r: int, scaling: float, mode: str = "min",
                   rng: np.random.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A r x d_in, B d_out x r, selected singular values) for one weight (d_out x d_in), all fp32."""
    U, S, Vh = torch.linalg.svd(weight.float(), full_matrices=False)
    idx = torch.as_tensor(select_triplets(S.numel(), r, mode, rng), device=S.device)
    S_sel = S[idx]
    root = torch.sqrt(S_sel / scaling)
    B = U[:, idx] * root  # U_r diag(sqrt(S_r/s))
    A = root[:, None] * Vh[idx, :]  # diag(sqrt(S_r/s)) Vh_r
    return A.contiguous(), B.contiguous(), S_sel


@register_method
class MiLoRA(Method):
    name = "milora"
    description = "MiLoRA: bottom-r singular triplets of W in the adapter (sqrt(S) split), residual frozen (hand-written)"
    residual_modifying = True
    options = {"mode": Option("min", choices=MODES, doc="which singular triplets: min (MiLoRA), mid, max, random")}

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        from peft import get_peft_model

        mode = self.read_options(ctx)["mode"]
        rng = np.random.default_rng(ctx.seed)
        peft_model = get_peft_model(model, self.lora_config(ctx, model))
        spectrum = {}
        for name, layer in lora_layers(peft_model).items():
            r = layer.r["default"]
            s = layer.scaling["default"]
            A, B, S_sel = milora_factors(layer.get_base_layer().weight, r, s, mode, rng)
            install_low_rank_init(layer, A, B, residual_scale=s)
            spectrum[name] = [float(S_sel.min()), float(S_sel.max())]
        ctx.report["milora"] = {"mode": mode, "selected_singular_value_range": spectrum}
        return peft_model
