"""EVA (Paischer et al. 2024, "Explained Variance Adaptation"): data-driven init of A, zero B.

Rule [peft tuners/lora/eva.py, written by EVA's authors; `init_lora_weights="eva"` + `EvaConfig` +
`initialize_lora_eva_weights(model, dataloader)`]:
  * an incremental SVD (IncrementalPCA) of every target layer's INPUT activations over training minibatches, skipping
    positions whose label is -100 (`use_label_mask`), until the top components stop changing (cosine >= tau);
  * lora_A = the top right-singular vectors (rows), lora_B = 0, so outputs are unchanged and W is not modified;
  * ranks are redistributed across layers by explained variance within a budget of r per layer, each layer at most
    rho * r (rho = 1 disables redistribution); alpha is adjusted with the rank (`adjust_scaling_factors`).
PEFT native, used unchanged. The minibatches come from the task's training features in file order.
Note: with rho > 1 layers end up with different ranks (recorded in the adapter config's rank_pattern).
"""

from __future__ import annotations

import torch

from astra_repro.errors import ConfigError
from astra_repro.methods.base import InitContext, Method, Option, lora_layers, register_method


@register_method
class EVA(Method):
    name = "eva"
    description = "EVA: lora_A from an incremental SVD of layer inputs on training batches, zero B, rank redistribution (PEFT native)"
    residual_modifying = False
    # Defaults: PEFT's EvaConfig. PEFT checks rho >= 1 and tau in [0, 1] itself, at init.
    options = {
        "rho": Option(2.0, kind=float, minimum=1.0, doc="max rank per layer = rho * r (1.0 = no redistribution)"),
        "tau": Option(0.99, kind=float, minimum=0.0, doc="cosine threshold for the incremental SVD to converge"),
        "use_label_mask": Option(True, kind=bool, doc="skip positions whose label is -100 (the prompt)"),
        "whiten": Option(False, kind=bool),
        "adjust_scaling_factors": Option(True, kind=bool),
        "batch_size": Option(4, kind=int, minimum=1, doc="training features per SVD step"),
        "max_examples": Option(kind=int, minimum=1, doc="cap on the features cycled through (None = all)"),
    }

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        from peft import EvaConfig, get_peft_model, initialize_lora_eva_weights

        opts = self.read_options(ctx)
        eva = EvaConfig(
            rho=float(opts["rho"]), tau=float(opts["tau"]), use_label_mask=opts["use_label_mask"], whiten=opts["whiten"],
            adjust_scaling_factors=opts["adjust_scaling_factors"],
        )
        batch_size = int(opts["batch_size"])
        max_examples = opts["max_examples"]
        features = list(ctx.train_features if max_examples is None else ctx.train_features[: int(max_examples)])
        if not features:
            raise ConfigError("EVA needs training features for its activation SVD; the task produced none")
        if ctx.collate_fn is None:
            raise ConfigError("EVA needs ctx.collate_fn to batch training features")
        collate = ctx.collate_fn
        # EVA's input preparation insists on a plain dict (a BatchEncoding is a UserDict, not a dict).
        loader = torch.utils.data.DataLoader(
            features, batch_size=batch_size, shuffle=False, collate_fn=lambda batch: dict(collate(batch))
        )
        peft_model = get_peft_model(model, self.lora_config(ctx, model, init_lora_weights="eva", eva_config=eva))
        was_training = peft_model.training
        initialize_lora_eva_weights(peft_model, dataloader=loader, show_progress_bar=False)
        peft_model.train(was_training)
        ranks = {name: layer.r["default"] for name, layer in lora_layers(peft_model).items()}
        ctx.report["eva"] = {"rho": eva.rho, "tau": eva.tau, "batch_size": batch_size, "ranks": ranks}
        return peft_model
