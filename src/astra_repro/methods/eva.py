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
from astra_repro.methods.base import InitContext, Method, lora_layers, register_method


@register_method
class EVA(Method):
    name = "eva"
    description = "EVA: lora_A from an incremental SVD of layer inputs on training batches, zero B, rank redistribution (PEFT native)"
    residual_modifying = False

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        from peft import EvaConfig, get_peft_model, initialize_lora_eva_weights

        eva = EvaConfig(
            rho=float(self.option(ctx, "rho", 2.0)),
            tau=float(self.option(ctx, "tau", 0.99)),
            use_label_mask=bool(self.option(ctx, "use_label_mask", True)),
            whiten=bool(self.option(ctx, "whiten", False)),
            adjust_scaling_factors=bool(self.option(ctx, "adjust_scaling_factors", True)),
        )
        batch_size = int(self.option(ctx, "batch_size", 4))
        max_examples = self.option(ctx, "max_examples", None)
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
