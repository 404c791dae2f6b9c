"""What a LoRA-initialisation method is, and the shared piece every residual-modifying init uses.

A method is one file in this package plus one YAML in `configs/method/`. It declares what it needs
(calibration statistics, gradients) and turns (model, context) into a trainable model. PEFT supplies
the LoRA layers; a method only decides their initial values.
"""

from __future__ import annotations

import logging
from abc import ABC
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from peft import LoraConfig, PeftModel, TaskType, get_peft_model

from astra_repro.options import Option, check_block  # noqa: F401  (Option: what method files declare with)
from astra_repro.registry import Registry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HyperParams:
    """The values a run actually uses (lr, rank, alpha as composed for its scale, plus the method's flags); frozen:
    built once, in the run spec (spec.py)."""

    rank: int
    alpha: float
    dropout: float
    target_modules: list[str]
    learning_rate: float
    use_rslora: bool = False
    use_dora: bool = False


@dataclass
class InitContext:
    """Everything an init may read. Built by the runner; methods must not reach outside it."""

    hp: HyperParams
    options: DictConfig  # the method's own YAML block (cfg.method)
    tokenizer: Any
    seed: int
    # The records calibration samples from (the whole training set, as dicts with "instruction"/"output").
    train_records: Sequence[dict] = ()
    # Tokenised training features (input_ids, labels) and their collator, for gradient-based inits.
    train_features: Sequence[dict] = ()
    collate_fn: Callable | None = None
    # The resolved calibration settings (cfg.calibration with the task's N filled in), for data-driven inits.
    calibration: DictConfig | None = None
    # Name of the dtype the model was loaded in ("float32", "bfloat16"): calibration accumulates in it when asked.
    model_dtype: str = "float32"
    # Identity of everything upstream of the init that changes a calibration (model, task, data, dtype).
    cache_identity: dict = field(default_factory=dict)
    # A method writes what a researcher should see in the run record here (e.g. eigenvalue ranges).
    report: dict = field(default_factory=dict)


# The keys every method's YAML may hold (configs/method/*.yaml); dropout and the flags feed HyperParams (spec.py).
COMMON_OPTIONS: dict[str, Option] = {
    "name": Option(kind=str, doc="the registry name (method=<name> picks the YAML)"),
    "description": Option(kind=str, doc="one line for `python -m astra_repro.methods`; kept out of the run hash"),
    "label": Option(kind=str, doc="row name in tables when it differs from the registry name"),
    "dropout": Option(0.0, kind=float, minimum=0.0, below=1.0),
    "use_rslora": Option(False, kind=bool),
    "use_dora": Option(False, kind=bool),
    # PEFT's task type; None = the model's (SEQ_2_SEQ_LM for an encoder-decoder, CAUSAL_LM otherwise)
    "task_type": Option(choices=tuple(t.value for t in TaskType)),
}


def calibration_overrides() -> dict[str, Option]:
    """The calibration keys a data-driven method may override in its YAML (calibration.spec.METHOD_OVERRIDABLE);
    None = the calibration stage's value."""
    from astra_repro.calibration.spec import CHOICES  # torch-heavy package: imported by the methods that calibrate

    return {
        "center": Option(kind=bool, doc="D2: subtract the mean (Eq. 2) or not (the code)"),
        "normalize": Option(choices=CHOICES["normalize"], doc="D3: per-sample abs(max) normalisation or none"),
        "include_padding": Option(kind=bool, doc="D4: pad-position activations enter the statistics"),
        "accumulate_dtype": Option(choices=CHOICES["accumulate_dtype"], doc="D5: dtype of the statistics"),
        "calibration_prompt": Option(choices=CHOICES["prompt"], doc="D8: the calibration text"),
    }


class Method(ABC):
    """Base class. The default builds a plain PEFT LoRA model with `init_lora_weights=True`."""

    name: ClassVar[str]
    description: ClassVar[str]
    uses_peft: ClassVar[bool] = True
    trains: ClassVar[bool] = True
    # True for data-driven inits that read calibration statistics: the runner then resolves cfg.calibration
    needs_calibration: ClassVar[bool] = False
    # True when the init changes the base weights (W_res = W - s*B0*A0): the runner then saves the residual
    # model with the initial adapter, and export converts the trained adapter into a plain rank-2r LoRA.
    residual_modifying: ClassVar[bool] = False
    # The method's own YAML keys, beyond COMMON_OPTIONS: the one place their defaults and valid values are stated.
    options: ClassVar[dict[str, Option]] = {}

    @classmethod
    def check_options(cls, values: Mapping | DictConfig | None, fill: bool = True) -> dict:
        """The method's options checked against the declarations, each mistake one ConfigError line naming the key.
        fill=True adds the defaults of absent keys (what an init reads); fill=False returns the values unchanged
        (the run spec: its dict is the run hash, so it holds exactly what the YAML and the overrides set)."""
        if isinstance(values, DictConfig):
            values = OmegaConf.to_container(values, resolve=True)
        values = dict(values or {})
        declared = {**COMMON_OPTIONS, **cls.options}
        check_block("method", cls.name, declared, values)
        if not fill:
            return values
        return {**{key: option.default for key, option in declared.items()}, "name": cls.name, **values}

    def read_options(self, ctx: InitContext) -> dict:
        """ctx.options checked, with the declared defaults of absent keys (a test or a script may pass a partial
        block; a run's block was already checked by the run spec)."""
        return self.check_options(ctx.options)

    @property
    def artifact_kind(self) -> str:
        """What a run folder keeps of this method, read from the two flags above (astra_repro.artifacts saves and
        loads each kind): the whole model ("full"), an adapter on the original base ("adapter"), or an adapter
        on the saved residual base ("adapter_on_residual")."""
        if not self.uses_peft:
            return "full"
        return "adapter_on_residual" if self.residual_modifying else "adapter"

    def lora_config(self, ctx: InitContext, model: torch.nn.Module | None = None, **overrides) -> LoraConfig:
        """PEFT LoraConfig for the run. PEFT's task type comes from the model (SEQ_2_SEQ_LM for an encoder-decoder,
        CAUSAL_LM otherwise) unless the method YAML sets `task_type`; pass the model so seq2seq models get theirs."""
        from astra_repro.models import peft_task_type

        hp = ctx.hp
        kwargs = dict(
            r=hp.rank,
            lora_alpha=hp.alpha,
            lora_dropout=hp.dropout,
            target_modules=list(hp.target_modules),
            use_rslora=hp.use_rslora,
            use_dora=hp.use_dora,
            init_lora_weights=True,
            task_type=ctx.options.get("task_type") or peft_task_type(model),
        )
        kwargs.update(overrides)
        return LoraConfig(**kwargs)

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        return get_peft_model(model, self.lora_config(ctx, model))

    def optimizer_param_groups(
        self, model: torch.nn.Module, lr: float, weight_decay: float, options: DictConfig | None = None
    ) -> list[dict] | None:
        """Override to give parameter groups their own learning rates (LoRA+). None = one group at `lr`.
        Reads its settings from `options` (the method YAML), not from state set in `initialize`, because a
        resumed run loads its saved init and never calls `initialize`."""
        return None


METHODS: Registry[type[Method]] = Registry("method")


def register_method(cls: type[Method]) -> type[Method]:
    METHODS.register(cls.name)(cls)
    return cls


def lora_layers(peft_model: PeftModel, adapter: str = "default") -> dict[str, torch.nn.Module]:
    """Module name (without the PEFT prefix) -> PEFT LoRA layer, for every adapted linear layer."""
    from peft.tuners.lora import LoraLayer

    layers = {}
    for name, module in peft_model.named_modules():
        if isinstance(module, LoraLayer) and adapter in module.lora_A:
            layers[strip_peft_prefix(name)] = module
    return layers


def strip_peft_prefix(name: str) -> str:
    """'base_model.model.model.layers.0.self_attn.q_proj' -> 'model.layers.0.self_attn.q_proj'."""
    prefix = "base_model.model."
    return name[len(prefix):] if name.startswith(prefix) else name


@torch.no_grad()
def install_low_rank_init(
    layer: torch.nn.Module,
    A: torch.Tensor,
    B: torch.Tensor,
    residual_scale: float,
    adapter: str = "default",
) -> None:
    """Set lora_A = A (r x d_in), lora_B = B (d_out x r) and subtract residual_scale * B @ A from the base weight.

    With residual_scale equal to the layer's LoRA scaling the layer's output is unchanged at init
    (W_res + s*B*A = W). The product is formed in fp32 from the *stored* (possibly bf16) factors, so the
    identity holds for the weights actually trained, as in the reference code.
    """
    base = layer.get_base_layer()
    weight = base.weight
    a_param = layer.lora_A[adapter].weight
    b_param = layer.lora_B[adapter].weight
    if A.shape != a_param.shape or B.shape != b_param.shape:
        raise ValueError(f"init factors {tuple(B.shape)}x{tuple(A.shape)} do not fit lora_B {tuple(b_param.shape)} / lora_A {tuple(a_param.shape)}")
    a_param.copy_(A.to(a_param.dtype))
    b_param.copy_(B.to(b_param.dtype))
    if residual_scale == 0:
        return
    if weight.dtype == torch.float32:  # in place: no weight-sized temporaries (they dominate a small model's init)
        weight.addmm_(b_param, a_param, alpha=-residual_scale)
    else:
        delta = residual_scale * (b_param.float() @ a_param.float())
        weight.copy_((weight.float() - delta).to(weight.dtype))

