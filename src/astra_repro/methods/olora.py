"""OLoRA (Büyükakyüz 2024): orthonormal init from the QR decomposition of W, residual frozen.

Rule [peft tuners/lora/layer.py `olora_init`, the author's own upstream implementation]:
    Q, R = torch.linalg.qr(W.float()),  B = Q[:, :r],  A = R[:r, :],  W_res = W - s B A.
B has orthonormal columns; A carries the magnitude. PEFT native, used unchanged.
"""

from __future__ import annotations

import torch
from peft import get_peft_model

from astra_repro.methods.base import InitContext, Method, register_method


@register_method
class OLoRA(Method):
    name = "olora"
    description = "OLoRA: B = first r columns of Q, A = first r rows of R from QR(W), residual frozen (PEFT native)"
    residual_modifying = True

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        return get_peft_model(model, self.lora_config(ctx, model, init_lora_weights="olora"))
