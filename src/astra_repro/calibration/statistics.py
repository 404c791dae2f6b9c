"""Per-layer activation statistics: the (un)centred covariance of a linear layer's outputs (Astra) or inputs (CorDA).

Reference rule [LyoAI/Astra astra.py `calib_cov_distribution`; protocol §1.2], per sample i and layer:
    Y_i  = the layer's output rows for sample i            (seq_len - 1 rows, pads included)
    Y_i <- Y_i / abs(max(Y_i))                              (signed max over all entries, then abs - not max(abs))
    C   += Y_iᵀ Y_i ;  count += 1 ;  finally C /= count     (divided by samples, not tokens)
The reference hook read `output[0]`, so a batch > 1 silently used one sample (D7). Here every sample of a batch is
normalised on its own and added, so any batch size gives the per-sample result.
"""

from __future__ import annotations

import logging
import math
from typing import Iterable

import torch

from astra_repro.calibration.spec import CalibrationSpec

log = logging.getLogger(__name__)


class CovarianceAccumulator:
    """Running Σ_i Y_iᵀY_i over samples, plus what centring needs (Σ rows, number of rows).

    `update(Y, row_mask)` takes one batch: Y (batch, positions, d), row_mask (batch, positions) bool marking the
    rows that count. Arithmetic runs in `dtype` (the model's dtype reproduces the bf16 reference, D5).
    """

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device | str, normalize: str, center: bool):
        self.dim = dim
        self.dtype = dtype
        self.normalize = normalize
        self.center = center
        self.second_moment = torch.zeros(dim, dim, dtype=dtype, device=device)
        self.row_sum = torch.zeros(dim, dtype=torch.float64, device=device) if center else None
        self.n_samples = 0
        self.n_rows = 0

    @torch.no_grad()
    def update(self, Y: torch.Tensor, row_mask: torch.Tensor) -> None:
        Y = Y.detach().to(self.dtype)
        if Y.dim() == 2:  # a layer called on (positions, d): one sample
            Y = Y.unsqueeze(0)
        Y = Y.reshape(Y.shape[0], -1, Y.shape[-1])
        mask = row_mask.to(Y.device).reshape(Y.shape[0], -1)
        if mask.shape != Y.shape[:2]:
            raise ValueError(f"row mask {tuple(mask.shape)} does not match activations {tuple(Y.shape)}")
        for i in range(Y.shape[0]):
            rows = Y[i][mask[i]]
            if rows.shape[0] == 0:
                continue  # a sample with no counted rows adds nothing (and does not count)
            if self.normalize == "absmax":
                # The reference divides by abs(max(Y)): the *signed* maximum, then abs.
                rows = rows / rows.max().abs()
            if not torch.isfinite(rows).all():
                raise FloatingPointError("non-finite activation in calibration (a sample whose max is 0?)")
            self.second_moment += rows.T @ rows
            if self.center:
                self.row_sum += rows.double().sum(dim=0)
            self.n_samples += 1
            self.n_rows += rows.shape[0]

    def result(self) -> torch.Tensor:
        """fp32 CPU matrix: (Σ_i Y_iᵀY_i − n_rows·μμᵀ if centred) / n_samples, μ = token-level mean of the rows."""
        if self.n_samples == 0:
            raise ValueError("no calibration rows reached this layer")
        if not self.center:
            # Divided in the accumulation dtype, as the reference's `C /= count` (bf16 under its scripts).
            return (self.second_moment / self.n_samples).float().cpu()
        # Centring with the token-level mean μ over every row used (after normalisation) and the same division by
        # the number of samples as the uncentred reference, so center=True/False differ only by the mean term:
        # C = Σ_rows (y−μ)(y−μ)ᵀ / n_samples. (Eigenvectors do not depend on the overall scale.)
        mean = self.row_sum / self.n_rows
        C = self.second_moment.double() - self.n_rows * torch.outer(mean, mean)
        return (C / self.n_samples).float().cpu()


def find_target_linears(model: torch.nn.Module, target_modules: Iterable[str]) -> dict[str, torch.nn.Linear]:
    """Module name -> nn.Linear for every linear whose name equals a target or ends with "." + target (PEFT's rule)."""
    targets = list(target_modules)
    found = {}
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or "lora_" in name:
            continue
        if any(name == t or name.endswith("." + t) for t in targets):
            found[name] = module
    return found


class ActivationRecorder:
    """Forward hooks that feed every target layer's output (or input) into its accumulator.

    Set `row_masks` ({stream: (batch, positions) bool}) before each forward pass: they tell the hooks which positions
    of the batch count. `streams` maps a layer to the sequence its rows run over ("source" for every layer of a
    causal LM; an encoder-decoder's decoder layers read "target", see `models.activation_stream`). Assigning
    `row_mask` sets the single "source" stream (causal LMs).
    """

    def __init__(
        self,
        layers: dict[str, torch.nn.Linear],
        spec: CalibrationSpec,
        dtype: torch.dtype,
        streams: dict[str, str] | None = None,
    ):
        self.spec = spec
        self.row_masks: dict[str, torch.Tensor] = {}
        self.streams = {name: (streams or {}).get(name, "source") for name in layers}
        self.accumulators: dict[str, CovarianceAccumulator] = {}
        self.handles = []
        self.calls = 0
        for name, layer in layers.items():
            dim = layer.out_features if spec.where == "output" else layer.in_features
            self.accumulators[name] = CovarianceAccumulator(
                dim, dtype, layer.weight.device, normalize=spec.normalize, center=spec.center
            )
            self.handles.append(layer.register_forward_hook(self._hook(name)))

    @property
    def row_mask(self) -> torch.Tensor | None:
        return self.row_masks.get("source")

    @row_mask.setter
    def row_mask(self, mask: torch.Tensor) -> None:
        self.row_masks = {"source": mask}

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.calls += 1
            Y = output if self.spec.where == "output" else inputs[0]
            stream = self.streams[name]
            if stream not in self.row_masks:
                raise RuntimeError(f"calibration: layer {name} reads the '{stream}' sequence, but the batch has no mask for it")
            try:
                self.accumulators[name].update(Y, self.row_masks[stream])
            except ValueError as err:
                raise RuntimeError(
                    f"calibration: layer {name} was assigned the '{stream}' sequence, whose rows do not fit its "
                    f"activations ({err}); fix models.activation_stream for this architecture"
                ) from None

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def results(self) -> dict[str, torch.Tensor]:
        return {name: acc.result() for name, acc in self.accumulators.items()}


def eigen_decompose(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues ascending, eigenvectors as columns), as the reference: `torch.linalg.eigh(C.float())`."""
    return torch.linalg.eigh(C.float())


def effective_rank(eigvals: torch.Tensor) -> float:
    """Paper Eq. 9 (reference `effective_rank_fn`): exp(−Σ p log(p + 1e-8)), p = λ / Σλ."""
    eigvals = eigvals.float()
    p = eigvals / eigvals.sum()
    entropy = -(p * torch.log(p + 1e-8)).sum()
    return float(math.exp(float(entropy)))
