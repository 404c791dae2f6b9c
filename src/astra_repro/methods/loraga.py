"""LoRA-GA (Wang et al. 2024): initialise the adapter from the SVD of the full-model gradient.

Two flavours, selected by the `flavour` option:

`original` (default) - the authors' code [Outsider565/LoRA-GA reproduce/run_exp.py `estimate_gradient`,
`reinit_lora_modules(mode="gradient")`, conf/init/gradient.yaml, Readme.md]:
  * G = mean over the FIRST bsz*iters = 1*8 training examples (no shuffling, batch size 1) of dL/dW, on the model
    before any adapter is attached, in train() mode. Gradients are accumulated in fp32.
  * For each target weight (out x in): U, S, V = torch.svd_lowrank(G, q=4r, niter=4); Vh = V^T.
  * direction "ArB2r": B = U[:, r:2r], A = Vh[:r]   (also "ArBr": B = U[:, 0:2r:2], A = Vh[1:2r:2]; "A2rBr": B = U[:, :r],
    A = Vh[r:2r]).
  * scale "stable": BOTH A and B are multiplied by m^(1/4) / sqrt(gamma), m = out_features, gamma = stable_gamma (16).
    ("unit": no scaling; "gd": both divided by s; "weightS": both times mean(sqrt(S_W[:r] / s)) of the weight's SVD.)
  * W_res = W - s B A with s the layer's LoRA scaling. The README requires use_rslora=True (s = alpha / sqrt(r)).
  No singular values enter A or B: they are (scaled) orthonormal frames.

`peft` - PEFT 0.21.2's native LoRA-GA (`LoraGAConfig` + `preprocess_loraga`, tuners/lora/layer.py `lora_ga_init`).
  Differences from the authors' code (why `original` is the default):
  * B = U[:, r:2r] @ diag(S[r:2r]): PEFT multiplies B by the gradient's singular values (huge or tiny depending on the
    loss scale), the authors do not;
  * scale "stable" multiplies ONLY B by m^(1/4)/sqrt(gamma); the authors scale both A and B;
  * PEFT's gradient is the mean over backward passes of each module and only target weights get gradients (the
    authors compute all parameters' gradients, which gives the same values for the targets).
  Both flavours subtract s*B*A from W so the model's outputs are unchanged at init.

Gradients are computed over `grad_examples` training features with `ctx.collate_fn`, batch size `grad_batch_size`.
The randomized SVD is seeded with the run seed.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Callable, Iterable

import torch

from astra_repro.errors import ConfigError
from astra_repro.methods.base import InitContext, Method, Option, install_low_rank_init, lora_layers, register_method

log = logging.getLogger(__name__)

DIRECTIONS = ("ArB2r", "ArBr", "A2rBr")
SCALES = ("stable", "unit", "gd", "weightS")
# Our scale names -> PEFT's LoraGAConfig.scale names.
PEFT_SCALES = {"stable": "stable", "unit": "unit", "gd": "gd_scale", "weightS": "weight_svd"}


@contextmanager
def seeded_rng(seed: int):
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def gradient_batches(ctx: InitContext, n_examples: int, batch_size: int) -> list[dict]:
    """The first n_examples training features, in order, collated into batches of batch_size (as the authors)."""
    features = list(ctx.train_features[:n_examples])
    if not features:
        raise ConfigError("LoRA-GA needs training features for its gradient estimate; the task produced none")
    if len(features) < n_examples:
        log.warning("LoRA-GA: only %d training examples for a %d-example gradient estimate", len(features), n_examples)
    collate = ctx.collate_fn
    if collate is None:
        raise ConfigError("LoRA-GA needs ctx.collate_fn to batch its gradient examples")
    return [collate(features[i:i + batch_size]) for i in range(0, len(features), batch_size)]


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def run_backward(model: torch.nn.Module, batches: Iterable[dict]) -> int:
    """Forward + backward each batch's mean loss (gradients accumulate in .grad); returns the number of batches."""
    device = _device_of(model)
    n = 0
    for batch in batches:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        out = model(**batch)
        out.loss.backward()
        n += 1
    return n


def full_gradients(model: torch.nn.Module, target_names: Callable[[str], bool], batches: list[dict]) -> dict[str, torch.Tensor]:
    """Mean gradient dL/dW (fp32) over batches for every nn.Linear whose name passes target_names.

    Only the target weights require grad during the passes; their gradients equal those of a full-model backward.
    Each batch's gradient is added into an fp32 accumulator, so a bf16 model still gets an fp32 mean.
    """
    targets = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and target_names(n)}
    if not targets:
        raise ConfigError("LoRA-GA found no target linear layers in the model")
    saved = {n: p.requires_grad for n, p in model.named_parameters()}
    was_training = model.training
    for p in model.parameters():
        p.requires_grad_(False)
        p.grad = None
    for m in targets.values():
        m.weight.requires_grad_(True)
    sums = {n: torch.zeros_like(m.weight, dtype=torch.float32) for n, m in targets.items()}
    model.train()
    try:
        device = _device_of(model)
        with torch.enable_grad():
            for batch in batches:
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                model(**batch).loss.backward()
                for n, m in targets.items():
                    sums[n] += m.weight.grad.float()
                    m.weight.grad = None
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(saved[n])
        model.train(was_training)
    return {n: g / len(batches) for n, g in sums.items()}


@torch.no_grad()
def loraga_factors(grad: torch.Tensor, r: int, scaling: float, direction: str = "ArB2r", scale: str = "stable",
                   stable_gamma: float = 16.0, weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(A r x in, B out x r) from one layer's gradient (out x in), as the authors' reinit_lora_modules(mode="gradient")."""
    grad = grad.float()
    q = min(4 * r, min(grad.shape))
    U, S, V = torch.svd_lowrank(grad, q=q, niter=4)
    Vh = V.T
    if direction == "ArB2r":
        B, A = U[:, r:2 * r], Vh[:r, :]
    elif direction == "ArBr":
        B, A = U[:, 0:2 * r:2], Vh[1:2 * r:2, :]
    elif direction == "A2rBr":
        B, A = U[:, :r], Vh[r:2 * r, :]
    else:
        raise ConfigError(f"unknown method.direction '{direction}'; valid: {', '.join(DIRECTIONS)}")
    if B.shape[1] != r or A.shape[0] != r:
        raise ConfigError(f"LoRA-GA needs 2r <= min(layer dims); rank {r} is too large for a {tuple(grad.shape)} layer")
    if scale == "stable":
        m = grad.shape[0]  # out_features: "the scale of output is only related to the feature_out"
        factor = m ** 0.25 / stable_gamma ** 0.5
        A, B = A * factor, B * factor
    elif scale == "gd":
        A, B = A / scaling, B / scaling
    elif scale == "weightS":
        if weight is None:
            raise ValueError("scale 'weightS' needs the layer weight")
        _, S_w, _ = torch.svd_lowrank(weight.float(), q=min(4 * r, min(weight.shape)), niter=4)
        avg = torch.sqrt(S_w[:r] / scaling).mean()
        A, B = A * avg, B * avg
    elif scale != "unit":
        raise ConfigError(f"unknown method.scale '{scale}'; valid: {', '.join(SCALES)}")
    return A.contiguous(), B.contiguous()


@register_method
class LoRAGA(Method):
    name = "loraga"
    description = "LoRA-GA: adapter from the SVD of the first-8-example gradient (ArB2r, stable scale), residual frozen"
    residual_modifying = True

    # Defaults: the authors' reproduce/ recipe (the first 1 x 8 training examples, ArB2r, stable scale, gamma 16).
    options = {
        "flavour": Option("original", choices=("original", "peft"),
                          doc="original: the authors' code; peft: PEFT's LoraGAConfig path (docs/methods.md)"),
        "direction": Option("ArB2r", choices=DIRECTIONS, doc="which singular vectors of the gradient go to A and B"),
        "scale": Option("stable", choices=SCALES, doc="how the factors are scaled"),
        "stable_gamma": Option(16, kind=float, minimum=0.0, doc="gamma of the stable scale"),
        "grad_examples": Option(8, kind=int, minimum=1, doc="training examples the gradient is estimated on"),
        "grad_batch_size": Option(1, kind=int, minimum=1, doc="examples per backward pass"),
    }

    def settings(self, ctx: InitContext) -> dict:
        """The options this init reads (what the run record shows under `loraga`)."""
        opts = self.read_options(ctx)
        return dict(flavour=opts["flavour"], direction=opts["direction"], scale=opts["scale"],
                    stable_gamma=float(opts["stable_gamma"]), grad_examples=int(opts["grad_examples"]),
                    grad_batch_size=int(opts["grad_batch_size"]))

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        s = self.settings(ctx)
        if not ctx.hp.use_rslora:
            log.warning("LoRA-GA's README requires use_rslora=True; this run has it off")
        batches = gradient_batches(ctx, s["grad_examples"], s["grad_batch_size"])
        if s["flavour"] == "peft":
            peft_model = self._init_peft(model, ctx, s, batches)
        else:
            peft_model = self._init_original(model, ctx, s, batches)
        ctx.report["loraga"] = {**s, "n_gradient_batches": len(batches)}
        return peft_model

    def _init_original(self, model, ctx, s, batches):
        from peft import get_peft_model

        config = self.lora_config(ctx, model)
        from peft.tuners.lora import LoraModel

        grads = full_gradients(model, lambda n: LoraModel._check_target_module_exists(config, n), batches)
        peft_model = get_peft_model(model, config)
        with seeded_rng(ctx.seed):
            for name, layer in lora_layers(peft_model).items():
                if name not in grads:
                    raise RuntimeError(f"LoRA-GA: no gradient recorded for {name}")
                r, scaling = layer.r["default"], layer.scaling["default"]
                A, B = loraga_factors(grads.pop(name), r, scaling, s["direction"], s["scale"], s["stable_gamma"],
                                      weight=layer.get_base_layer().weight)
                install_low_rank_init(layer, A, B, residual_scale=scaling)
        return peft_model

    def _init_peft(self, model, ctx, s, batches):
        from peft import LoraGAConfig, get_peft_model
        from peft.tuners.lora.loraga import preprocess_loraga

        ga = LoraGAConfig(direction=s["direction"], scale=PEFT_SCALES[s["scale"]], stable_gamma=int(s["stable_gamma"]))
        config = self.lora_config(ctx, model, init_lora_weights="lora_ga", lora_ga_config=ga)
        preprocess_loraga(model, config, lambda: run_backward(model, batches))
        with seeded_rng(ctx.seed):
            return get_peft_model(model, config)
