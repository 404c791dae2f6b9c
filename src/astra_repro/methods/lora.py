"""LoRA and the two structural variants the paper compares, all PEFT-native: rsLoRA (s = alpha/sqrt(r))
and DoRA (magnitude + direction). Their YAMLs set the PEFT flags; the classes only name them."""

from astra_repro.methods.base import Method, register_method


@register_method
class Lora(Method):
    name = "lora"
    description = "LoRA: kaiming-uniform A, zero B (PEFT default); outputs unchanged at init"


@register_method
class RsLora(Method):
    name = "rslora"
    description = "rsLoRA: LoRA with scaling alpha/sqrt(r) (PEFT use_rslora)"


@register_method
class Dora(Method):
    name = "dora"
    description = "DoRA: weight-decomposed LoRA, trainable magnitude vector (PEFT use_dora)"
