"""CorDA (Yang et al. 2024): context-oriented decomposition of W by the covariance of its INPUTS.

Rule [iboing/CorDA cordalib/act_aware_utils.py `calib_cov_distribution`, cordalib/decomposition.py
`decompose_to_adapter`; peft tuners/lora/corda.py `collect_eigens_for_layer`, layer.py `corda_init`]:
  * C = mean over calibration samples of XᵀX, X = the layer's input rows of one sample divided by abs(max(X))
    (our calibration stage with where="input", normalize="absmax");
  * damping: C' = C + d·mean(diag C)·I with d = 0.01, doubled until ‖C'·C'⁻¹ − I‖_F < 0.05;
  * U, S, Vh = svd(W·C'),  V = (Vh·C'⁻¹)ᵀ   (so U S Vᵀ = W exactly);
  * IPM ("instruction-previewed", --first_eigen) keeps the r LARGEST triplets, KPM ("knowledge-preserved") the r
    SMALLEST;
  * A = diag(sqrt(S/s))·Vᵀ, B = U·diag(sqrt(S/s)), W_res = W − s·B·A (= W − U S Vᵀ, the original's residual).
The decomposition and the layer init are PEFT's own functions (faithful to the CorDA code; the original has no
alpha/r factor, which PEFT's S/s split absorbs). What we replace is PEFT's covariance hook: our calibration stage
computes it (cached, keyed by task and data), and we run the decomposition layer by layer and crop at once, so the
full U/V of every layer never sit in memory together (PEFT's `preprocess_corda` keeps them all until cropping).

The paper does not name the mode; CorDA's own fine-tuning comparisons use IPM, the default here.
CorDA's original calibration used 256 samples of 2048 tokens with no padding; with `include_padding: false`
(corda.yaml) pad positions are left out of the statistics, the closest our padded batches come to that.
"""

from __future__ import annotations

import logging

import torch

from astra_repro.errors import ConfigError
from astra_repro.methods.base import InitContext, Method, Option, calibration_overrides, lora_layers, register_method
from astra_repro.profiling import StageMeter, Stopwatch

log = logging.getLogger(__name__)

MODES = ("ipm", "kpm")


@torch.no_grad()
def corda_eigens(weight: torch.Tensor, covariance: torch.Tensor, r: int, mode: str):
    """PEFT's CordaEigens (U_WC d_out x r, S_WC r, V_WC d_in x r) for one layer, cropped to the mode's r triplets."""
    from peft.tuners.lora.corda import CordaEigens, collect_eigens_for_layer

    if mode not in MODES:
        raise ConfigError(f"unknown method.mode '{mode}'; valid: {', '.join(MODES)}")
    probe = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False, device="meta")
    # collect_eigens_for_layer reads only .weight and .covariance_matrix: give it a stand-in module holding them.
    probe.weight = torch.nn.Parameter(weight.detach(), requires_grad=False)
    probe.covariance_matrix = covariance.to(weight.device)
    full = collect_eigens_for_layer(probe, None)
    if r > full.S_WC.numel():
        raise ConfigError(f"rank {r} exceeds min(d_out, d_in) = {full.S_WC.numel()}; lower the rank")
    keep = slice(0, r) if mode == "ipm" else slice(full.S_WC.numel() - r, full.S_WC.numel())
    return CordaEigens(
        S_WC=full.S_WC[keep].clone(),
        U_WC=full.U_WC[:, keep].clone().to(weight.device),
        V_WC=full.V_WC[:, keep].clone().to(weight.device),
    )


@register_method
class CorDA(Method):
    name = "corda"
    description = "CorDA: SVD of W·C (C = input covariance from calibration), IPM top-r / KPM bottom-r in the adapter, residual frozen"
    residual_modifying = True
    needs_calibration = True  # the runner resolves cfg.calibration into ctx.calibration only for such methods
    options = {
        "mode": Option("ipm", choices=MODES, doc="ipm: the r largest triplets of W·C in the adapter; kpm: the r smallest"),
        **calibration_overrides(),
    }

    def covariances(self, model: torch.nn.Module, ctx: InitContext) -> dict[str, torch.Tensor]:
        from astra_repro.calibration import CalibrationSpec, collect_covariances

        spec = CalibrationSpec.from_config(ctx.calibration, ctx.options, where="input")
        records = list(ctx.train_records)
        if spec.source == "task" and not records:
            raise ConfigError("CorDA needs the task's training records for calibration; the task produced none")
        identity = dict(ctx.cache_identity or {})
        return collect_covariances(model, ctx.tokenizer, records, spec, list(ctx.hp.target_modules), identity, ctx.report)

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        from peft import get_peft_model
        from peft.tuners.lora.config import CordaConfig
        from peft.tuners.lora import LoraModel

        mode = self.read_options(ctx)["mode"]
        covariances = self.covariances(model, ctx)  # on the plain model, before any adapter exists
        config = self.lora_config(ctx, model, init_lora_weights="corda", corda_config=CordaConfig(corda_method=mode))
        ranks = {}
        spectrum = {}
        device = next(model.parameters()).device
        eigen = Stopwatch(device)
        with StageMeter(device) as meter:
            try:
                for name, module in model.named_modules():
                    if not (isinstance(module, torch.nn.Linear) and LoraModel._check_target_module_exists(config, name)):
                        continue
                    if name not in covariances:
                        raise RuntimeError(f"CorDA: calibration produced no covariance for {name}")
                    r = config.r
                    with eigen:  # damping, inverse and SVD of W·C: CorDA's decomposition
                        module.eigens = corda_eigens(module.weight, covariances.pop(name), r, mode)
                    ranks[name] = r
                    spectrum[name] = [float(module.eigens.S_WC.min()), float(module.eigens.S_WC.max())]
                # PEFT's corda_init reads module.eigens: A = sqrt(S/s) Vᵀ, B = U sqrt(S/s), W -= s B A; drops eigens.
                peft_model = get_peft_model(model, config)
            finally:
                for module in model.modules():
                    if hasattr(module, "eigens"):
                        del module.eigens
        missing = set(ranks) - set(lora_layers(peft_model))
        if missing:
            raise RuntimeError(f"CorDA: layers without adapters after init: {sorted(missing)[:3]}")
        ctx.report["corda"] = {"mode": mode, "selected_singular_value_range": spectrum}
        # eigen_s: the decompositions alone; layers_s adds PEFT's factor and residual writes.
        ctx.report["eigen"] = {"layers": len(ranks), "eigen_s": round(eigen.seconds, 3), **meter.as_record("layers")}
        return peft_model
