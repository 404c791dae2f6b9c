"""Full fine-tuning, and `base`: the pretrained model scored without any training (the zero-shot row)."""

import torch

from astra_repro.methods.base import InitContext, Method, register_method


@register_method
class FullFineTuning(Method):
    name = "fft"
    description = "Full fine-tuning: every parameter trainable, starting from the original checkpoint"
    uses_peft = False

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        for p in model.parameters():
            p.requires_grad_(True)
        return model


@register_method
class BaseModel(Method):
    name = "base"
    description = "No fine-tuning: score the pretrained model as it is (the reference row of a table)"
    uses_peft = False
    trains = False

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        for p in model.parameters():
            p.requires_grad_(False)
        return model
