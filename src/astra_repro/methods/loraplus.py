"""LoRA+ (Hayou et al. 2024): plain LoRA init, but B learns `lr_ratio` times faster than A.

Rule [LoRA+ paper Sec. 4 and nikhil-ghosh-berkeley/loraplus; grouping as in peft optimizers/loraplus.py
`create_loraplus_optimizer`]:
  * group A: every trainable parameter that is not lora_B and not 1-D, at lr;
  * group B: lora_B weights and 1-D trainable parameters (biases, DoRA magnitudes) at lr * lr_ratio, with weight
    decay (or 0 for parameters the HF Trainer exempts from decay: biases and LayerNorm weights);
  * LoRA embedding factors at `lr_embedding` (1e-6 in PEFT; our targets have none).
The paper recommends lr_ratio = 2^4 = 16. The init itself is PEFT's default (kaiming-uniform A, zero B).
"""

from __future__ import annotations

from operator import attrgetter

import torch

from astra_repro.methods.base import Method, Option, register_method


def loraplus_param_groups(model: torch.nn.Module, lr: float, weight_decay: float, lr_ratio: float,
                          lr_embedding: float = 1e-6) -> list[dict]:
    from peft.tuners.lora.layer import Embedding as LoraEmbedding
    from transformers.pytorch_utils import ALL_LAYERNORM_LAYERS
    from transformers.trainer_pt_utils import get_parameter_names

    decay = {n for n in get_parameter_names(model, ALL_LAYERNORM_LAYERS) if "bias" not in n}
    groups = {"A": [], "B": [], "B_no_decay": [], "embedding": []}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        module_name = ".".join(name.split(".")[:-2])
        module = attrgetter(module_name)(model) if module_name else None
        if isinstance(module, LoraEmbedding):
            groups["embedding"].append(param)
        elif "lora_B" in name or param.ndim == 1:
            groups["B" if name in decay else "B_no_decay"].append(param)
        else:
            groups["A"].append(param)
    out = [
        {"params": groups["A"], "lr": lr, "weight_decay": weight_decay, "name": "loraplus_A"},
        {"params": groups["embedding"], "lr": lr_embedding, "weight_decay": weight_decay, "name": "loraplus_embedding"},
        {"params": groups["B"], "lr": lr * lr_ratio, "weight_decay": weight_decay, "name": "loraplus_B"},
        {"params": groups["B_no_decay"], "lr": lr * lr_ratio, "weight_decay": 0.0, "name": "loraplus_B_no_decay"},
    ]
    return [g for g in out if g["params"]]


@register_method
class LoRAPlus(Method):
    name = "loraplus"
    description = "LoRA+: PEFT default init, optimizer gives lora_B lr * lr_ratio (16) and lora_A lr"
    residual_modifying = False
    options = {
        "lr_ratio": Option(16.0, kind=float, minimum=0.0, doc="eta_B / eta_A (the paper's recommended 2^4)"),
        "lr_embedding": Option(1e-6, kind=float, minimum=0.0, doc="lr of LoRA factors on embedding layers (PEFT's)"),
    }

    def initialize(self, model, ctx):
        opts = self.read_options(ctx)
        ctx.report["loraplus"] = {"lr_ratio": float(opts["lr_ratio"]), "lr_embedding": float(opts["lr_embedding"])}
        return super().initialize(model, ctx)

    def optimizer_param_groups(self, model: torch.nn.Module, lr: float, weight_decay: float, options=None) -> list[dict]:
        opts = self.check_options(options)  # None (no YAML block): the declared defaults
        return loraplus_param_groups(model, lr, weight_decay, float(opts["lr_ratio"]), float(opts["lr_embedding"]))
