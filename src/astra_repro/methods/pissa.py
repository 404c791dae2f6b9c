"""PiSSA (Meng et al. 2024): adapt the principal singular triplets of W, freeze the residual.

Rule [GraphPKU/PiSSA utils/init_pissa.py + scripts/*/run_pissa.sh; peft tuners/lora/layer.py `pissa_init`]:
    W = U S Vh (fp32),  A = diag(sqrt(S_r / s)) Vh_r,  B = U_r diag(sqrt(S_r / s)),  W_res = W - s B A.
The authors' scripts use the fast randomized SVD with 16 subspace iterations (`init_lora_weights="pissa_niter_16"`);
`svd: exact` switches to the full `torch.linalg.svd` (`init_lora_weights="pissa"`). We use PEFT's native code
unchanged; the only thing we add is seeding the randomized SVD with the run seed so inits are reproducible.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from peft import get_peft_model

from astra_repro.methods.base import InitContext, Method, Option, lora_layers, register_method


@contextmanager
def seeded_rng(seed: int):
    """Seed torch's CPU (and current CUDA device) RNG inside the block, restoring the outer state afterwards."""
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@register_method
class PiSSA(Method):
    name = "pissa"
    description = "PiSSA: top-r singular triplets of W in the adapter (sqrt(S) split), residual frozen (PEFT native)"
    residual_modifying = True
    options = {
        "svd": Option("fast", choices=("fast", "exact"), doc="fast: torch.svd_lowrank (the authors'); exact: linalg.svd"),
        "niter": Option(16, kind=int, minimum=0, doc="subspace iterations of the fast SVD (pissa_niter_16)"),
    }

    def init_string(self, ctx: InitContext) -> str:
        opts = self.read_options(ctx)
        return "pissa" if opts["svd"] == "exact" else f"pissa_niter_{int(opts['niter'])}"

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        init = self.init_string(ctx)
        # svd_lowrank draws a random test matrix from the global RNG: fork it so the init depends only on the seed.
        with seeded_rng(ctx.seed):
            peft_model = get_peft_model(model, self.lora_config(ctx, model, init_lora_weights=init))
        ctx.report["pissa"] = {"init_lora_weights": init, "n_layers": len(lora_layers(peft_model))}
        return peft_model
