"""Per-layer activation statistics: the (un)centred covariance of a linear layer's outputs (Astra) or inputs (CorDA).

Reference rule [LyoAI/Astra astra.py `calib_cov_distribution`; protocol §1.2], per sample i and layer:
    Y_i  = the layer's output rows for sample i            (seq_len - 1 rows, pads included)
    Y_i <- Y_i / abs(max(Y_i))                              (signed max over all entries, then abs - not max(abs))
    C   += Y_iᵀ Y_i ;  count += 1 ;  finally C /= count     (divided by samples, not tokens)
The reference hook read `output[0]`, so a batch > 1 silently used one sample (D7). Here every sample of a batch is
normalised on its own and added, so any batch size gives the per-sample result.

Two ways to get the same numbers (`calibration.algorithm`):

* "direct" - the rule above, sample by sample, in the accumulation dtype. bf16 accumulation (the reference's
  setting under its scripts, D5) always takes this path: its rounding is part of what is reproduced.
* "fast" (default) - fp32/fp64 accumulation only, otherwise "direct". Same statistics, less work:
    - the per-sample scale is a row scaling, so a batch is one GEMM with no row gathering;
    - a layer with more outputs than inputs and no bias (Llama's gate/up, T5's wi) keeps the statistics of its
      INPUT, each sample weighted by that layer's own output scale: Σ_i Y_iᵀY_i / s_i² = W (Σ_i X_iᵀX_i / s_i²) Wᵀ
      exactly (Y_i = X_i Wᵀ), at d_in² instead of d_out² per row; layers fed the same input tensor (gate and up)
      share one Gram matrix X_iᵀX_i per sample. The eigenvectors then come from d_in-sized problems (`spectrum`);
    - CorDA's input statistics are computed once for layers that read the same tensor (q/k/v, gate/up).
  tests/test_calibration_fast.py holds the fast path to the direct one (statistics to fp32 rounding, kept
  subspaces to principal-angle cosines >= 0.999) for every option of docs/astra_fidelity.md.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch

from astra_repro.calibration.spec import CalibrationSpec

log = logging.getLogger(__name__)

FAST_DTYPES = (torch.float32, torch.float64)

# What a layer's kept matrix is. "output"/"input": the covariance of the layer's outputs/inputs itself.
# "output_via_input": the input-side matrix M with the output covariance = W M Wᵀ (fast path, d_out > d_in).
KINDS = ("output", "input", "output_via_input")


@dataclass
class Rows:
    """Which positions of a (batch, positions) batch count, with what the fast path needs to skip masking."""

    mask: torch.Tensor  # (batch, positions) bool
    all_rows: bool  # every position counts (reference padding with include_padding: the usual case)
    counted: torch.Tensor  # (batch,) rows counted per sample
    n_samples: int  # samples with at least one counted row
    n_rows: int

    @classmethod
    def of(cls, mask: "torch.Tensor | Rows") -> "Rows":
        if isinstance(mask, Rows):
            return mask
        mask = mask.to(torch.bool)
        counted = mask.reshape(mask.shape[0], -1).sum(dim=-1) if mask.dim() > 1 else mask.sum().reshape(1)
        return cls(mask, bool(mask.all()), counted, int((counted > 0).sum()), int(counted.sum()))

    def reshaped(self, mask: torch.Tensor) -> "Rows":
        return self if mask is self.mask else Rows(mask, self.all_rows, self.counted, self.n_samples, self.n_rows)


@dataclass
class LayerStatistics:
    """What calibration keeps for one layer: `matrix` (CPU; fp32, or float64 when accumulated in float64) of `kind`,
    and how many samples/rows went in."""

    kind: str
    matrix: torch.Tensor
    n_samples: int
    n_rows: int
    centered: bool = False

    def covariance(self, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The layer's output (or, kind "input", input) covariance as the reference defines it, in the matrix's
        dtype (fp32, or float64 for float64 statistics)."""
        if self.kind != "output_via_input":
            return self.matrix
        if weight is None:
            raise ValueError("this layer's statistics are kept on its input side: pass the layer's weight")
        W = weight.detach().to(self.matrix.device, torch.float64)
        return (W @ self.matrix.double() @ W.T).to(self.matrix.dtype)

    def to_blob(self) -> dict:
        return {"kind": self.kind, "matrix": self.matrix, "n_samples": self.n_samples, "n_rows": self.n_rows,
                "centered": self.centered}

    @classmethod
    def from_blob(cls, blob: dict) -> "LayerStatistics":
        if blob.get("kind") not in KINDS:
            raise ValueError(f"unknown statistics kind {blob.get('kind')!r}")
        return cls(blob["kind"], blob["matrix"], int(blob["n_samples"]), int(blob["n_rows"]), bool(blob["centered"]))


class RunningSecondMoment:
    """A running Σ_i Z_iᵀZ_i over samples (Z_i = sample i's rows / s_i), the Σ of rows centring needs, and the
    counts; `result()` forms the reference's matrix from them once."""

    def __init__(self, dim: int, dtype: torch.dtype, device: torch.device | str, normalize: str, center: bool):
        self.dim = dim
        self.dtype = dtype
        self.normalize = normalize
        self.center = center
        self.second_moment = torch.zeros(dim, dim, dtype=dtype, device=device)
        self.row_sum = torch.zeros(dim, dtype=torch.float64, device=device) if center else None
        self.n_samples = 0
        self.n_rows = 0
        self.final: torch.Tensor | None = None

    def result(self) -> torch.Tensor:
        """CPU matrix (fp32; float64 when accumulated in float64): (Σ_i Z_iᵀZ_i − n_rows·μμᵀ if centred) / n_samples,
        μ = token-level mean of the rows. Formed once, in place (no second copy is ever held); later calls return
        the same matrix."""
        if self.final is not None:
            return self.final
        if self.n_samples == 0:
            raise ValueError("no calibration rows reached this layer")
        if not self.center:
            # Divided in the accumulation dtype, as the reference's `C /= count` (bf16 under its scripts).
            C = self.second_moment.div_(self.n_samples)
        else:
            # Centring with the token-level mean μ over every row used (after normalisation) and the same division
            # by the number of samples as the uncentred reference, so center=True/False differ only by the mean term:
            # C = Σ_rows (y−μ)(y−μ)ᵀ / n_samples (in float64: centring cancels most of the second moment).
            mean = self.row_sum / self.n_rows
            C = (self.second_moment.double() - self.n_rows * torch.outer(mean, mean)).div_(self.n_samples)
        self.second_moment = None
        C = (C.double() if self.dtype == torch.float64 else C.float()).cpu()
        if not torch.isfinite(C).all():
            raise FloatingPointError("non-finite calibration statistics (an activation was inf or NaN)")
        self.final = C
        return C


class CovarianceAccumulator(RunningSecondMoment):
    """Running Σ_i Y_iᵀY_i / s_i² over samples, plus what centring needs (Σ rows / s_i, number of rows).

    `update(Y, row_mask)` takes one batch: Y (batch, positions, d), row_mask (batch, positions) bool marking the
    rows that count. Arithmetic runs in `dtype` (the model's dtype reproduces the bf16 reference, D5), sample by
    sample in the released code's order - `Y_i / abs(max(Y_i))`, then `C += Y_iᵀ Y_i` - on every path: on layers
    whose top eigen-gap is within fp32 rounding (SmolLM2's massive-activation down_proj) another summation order
    moves the selected subspace (docs/astra_fidelity.md D13), so parity is bought with this order, not a tolerance.
    """

    @torch.no_grad()
    def update(self, Y: torch.Tensor, row_mask: "torch.Tensor | Rows") -> None:
        rows_info = Rows.of(row_mask)
        Y, mask = as_batch(Y, rows_info.mask)
        Y = Y.to(self.dtype)
        for i in range(Y.shape[0]):
            rows = Y[i] if rows_info.all_rows else Y[i][mask[i]]
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


class InputSideAccumulator(RunningSecondMoment):
    """Fast path: Σ_i w_i X_iᵀX_i (+ Σ_i sqrt(w_i) Σ_rows x for centring) from per-sample Gram matrices shared by
    the layers that read the same input. w_i = 1/s_i², s_i the absmax scale of the layer's output (kind
    "output_via_input") or of its input (kind "input")."""

    def __init__(self, kind: str, dim: int, dtype: torch.dtype, device, normalize: str, center: bool):
        super().__init__(dim, dtype, device, normalize, center)
        self.kind = kind

    @torch.no_grad()
    def update(self, gram: "BatchGram", scaled_by: torch.Tensor) -> None:
        """`scaled_by`: the activations (batch, positions, d) whose absmax over the counted rows sets each sample's
        scale. One in-place add of a d_in x d_in matrix per sample: no temporaries."""
        rows = gram.rows
        if len(gram.grams) == 1 and rows.all_rows:
            factors = [single_sample_factor(scaled_by[0], self.normalize)]
        else:
            factors = sample_factors(scaled_by, rows, self.normalize).tolist()
        for i, (matrix, factor) in enumerate(zip(gram.grams, factors)):
            if factor == 0:
                continue  # a sample without counted rows
            self.second_moment.add_(matrix, alpha=factor**2)
            if self.center:
                self.row_sum.add_(gram.row_sums[i], alpha=factor)
        self.n_samples += rows.n_samples
        self.n_rows += rows.n_rows


@dataclass
class BatchGram:
    """Per-sample X_iᵀX_i of one input tensor (counted rows only), shared by the layers that read it."""

    source: torch.Tensor  # the input tensor itself, held so its identity cannot be reused while cached
    version: int
    rows: Rows
    grams: list[torch.Tensor]  # one (d, d) matrix per sample
    row_sums: list[torch.Tensor] | None  # one (d,) float64 vector per sample, when centring

    @classmethod
    def of(cls, raw: torch.Tensor, X: torch.Tensor, rows: Rows, dtype: torch.dtype, with_row_sum: bool,
           scratch: torch.Tensor | None = None) -> "BatchGram":
        """`scratch` (batch, d, d), reused across batches: a fresh d x d result per call would cost page faults
        comparable to the GEMM itself for wide layers."""
        X = X.to(dtype)
        # Per sample, the counted rows only: pads left out cost nothing (and a single all-rows sample is no copy).
        samples = [X[i] if rows.all_rows else X[i][rows.mask[i]] for i in range(X.shape[0])]
        if scratch is None:
            grams = [sample.T @ sample for sample in samples]
        else:
            grams = [torch.mm(sample.T, sample, out=scratch[i]) for i, sample in enumerate(samples)]
        row_sums = [sample.sum(dim=0, dtype=torch.float64) for sample in samples] if with_row_sum else None
        return cls(raw, raw._version, rows, grams, row_sums)


def as_batch(Y: torch.Tensor, row_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch, positions, d) activations and the matching (batch, positions) bool mask (the same object when it
    already fits); errors if they disagree."""
    Y = Y.detach()
    if Y.dim() == 2:  # a layer called on (positions, d): one sample
        Y = Y.unsqueeze(0)
    Y = Y.reshape(Y.shape[0], -1, Y.shape[-1])
    mask = row_mask
    if mask.device != Y.device or mask.shape != Y.shape[:2]:
        mask = mask.to(Y.device).reshape(Y.shape[0], -1)
    if mask.shape != Y.shape[:2]:
        raise ValueError(f"row mask {tuple(mask.shape)} does not match activations {tuple(Y.shape)}")
    return Y, mask


NON_FINITE = "non-finite activation in calibration (an activation is inf/NaN, or a sample's max is 0)"


def single_sample_factor(Y: torch.Tensor, normalize: str) -> float:
    """1/s for one sample whose every row counts (one reduction, one sync): s = abs(signed max) for "absmax"."""
    if normalize != "absmax":
        return 1.0
    peak = abs(float(Y.max()))
    if not math.isfinite(peak) or peak == 0:
        raise FloatingPointError(NON_FINITE)
    return 1.0 / peak


def sample_factors(Y: torch.Tensor, rows: Rows, normalize: str) -> torch.Tensor:
    """Per-sample multiplier 1/s_i: s_i = abs(signed max over the counted rows) for "absmax" (the reference's rule),
    1 for "none"; 0 for a sample without counted rows (it adds nothing)."""
    if normalize != "absmax":
        factor = torch.ones(Y.shape[0], dtype=Y.dtype, device=Y.device)
    else:
        masked = Y if rows.all_rows else Y.masked_fill(~rows.mask[..., None], float("-inf"))
        peak = masked.amax(dim=(1, 2)).abs()
        if rows.all_rows:
            bad = ~torch.isfinite(peak) | (peak == 0)
        else:
            bad = (~torch.isfinite(peak) | (peak == 0)) & (rows.counted > 0)
        if bad.any():
            raise FloatingPointError(NON_FINITE)
        factor = 1.0 / peak
    if not rows.all_rows:
        factor = factor.where(rows.counted > 0, torch.zeros((), dtype=factor.dtype, device=factor.device))
    return factor


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


def uses_fast_algorithm(spec: CalibrationSpec, dtype: torch.dtype) -> bool:
    """`algorithm: fast` applies to fp32/fp64 accumulation; bf16 keeps the reference's per-sample rule (D5)."""
    return spec.algorithm == "fast" and dtype in FAST_DTYPES


def statistics_kind(layer: torch.nn.Linear, spec: CalibrationSpec, dtype: torch.dtype) -> str:
    """Which matrix the calibration keeps for a layer (see the module docstring)."""
    if spec.where == "input":
        return "input"
    if uses_fast_algorithm(spec, dtype) and layer.bias is None and layer.out_features > layer.in_features:
        return "output_via_input"
    return "output"


class StopForward(Exception):
    """Raised by the last target layer's hook: nothing after it (final norm, LM head) is needed."""


class ActivationRecorder:
    """Forward hooks that feed every target layer's output (or input) into its accumulator.

    Set `row_masks` ({stream: (batch, positions) bool}) before each forward pass: they tell the hooks which positions
    of the batch count. `streams` maps a layer to the sequence its rows run over ("source" for every layer of a
    causal LM; an encoder-decoder's decoder layers read "target", see `models.activation_stream`). Assigning
    `row_mask` sets the single "source" stream (causal LMs). `stop_after` names a layer after whose hook the
    forward pass is cut short (StopForward), set once a full pass has shown it is the last target to run.
    """

    def __init__(
        self,
        layers: dict[str, torch.nn.Linear],
        spec: CalibrationSpec,
        dtype: torch.dtype,
        streams: dict[str, str] | None = None,
    ):
        self.spec = spec
        self.dtype = dtype
        self._rows: dict[str, Rows] = {}
        self.streams = {name: (streams or {}).get(name, "source") for name in layers}
        self.kinds = {name: statistics_kind(layer, spec, dtype) for name, layer in layers.items()}
        self.accumulators: dict[str, CovarianceAccumulator | InputSideAccumulator] = {}
        self.handles = []
        self.calls = 0
        self.call_order: list[str] = []  # names in hook order during the current batch
        self.stop_after: str | None = None
        self._gram: BatchGram | None = None  # the last input's per-sample Gram (gate/up, q/k/v read the same tensor)
        self._scratch: dict[int, torch.Tensor] = {}  # width -> (batch, d, d) buffer the Gram matrices are written to
        fast = uses_fast_algorithm(spec, dtype)
        for name, layer in layers.items():
            kind = self.kinds[name]
            device = layer.weight.device
            if kind == "output_via_input" or (kind == "input" and fast):
                self.accumulators[name] = InputSideAccumulator(
                    kind, layer.in_features, dtype, device, spec.normalize, spec.center
                )
            else:
                dim = layer.out_features if kind == "output" else layer.in_features
                self.accumulators[name] = CovarianceAccumulator(dim, dtype, device, spec.normalize, spec.center)
            self.handles.append(layer.register_forward_hook(self._hook(name)))

    @property
    def row_masks(self) -> dict[str, torch.Tensor]:
        return {stream: rows.mask for stream, rows in self._rows.items()}

    @row_masks.setter
    def row_masks(self, masks: dict[str, torch.Tensor]) -> None:
        self._rows = {stream: Rows.of(mask) for stream, mask in masks.items()}
        self._gram = None
        self.call_order = []

    @property
    def row_mask(self) -> torch.Tensor | None:
        rows = self._rows.get("source")
        return None if rows is None else rows.mask

    @row_mask.setter
    def row_mask(self, mask: torch.Tensor) -> None:
        self.row_masks = {"source": mask}

    def _batch_rows(self, stream: str, Y: torch.Tensor) -> tuple[torch.Tensor, Rows]:
        """The activations as (batch, positions, d) and the stream's rows, checked to fit each other."""
        rows = self._rows[stream]
        Y, mask = as_batch(Y, rows.mask)
        return Y, rows.reshaped(mask)

    def _shared_gram(self, raw: torch.Tensor, X: torch.Tensor, rows: Rows) -> BatchGram:
        """The per-sample Gram of the layer input `raw` (batched as X), reused while the next layer reads the same
        tensor object, unmodified, under the same rows (Llama: up_proj after gate_proj; CorDA: k, v after q)."""
        cached = self._gram
        if cached is not None and cached.source is raw and cached.version == raw._version and cached.rows.mask is rows.mask:
            return cached
        batch, dim = X.shape[0], X.shape[-1]
        scratch = self._scratch.get(dim)
        if scratch is None or scratch.shape[0] < batch:
            scratch = self._scratch[dim] = torch.empty(batch, dim, dim, dtype=self.dtype, device=X.device)
        self._gram = BatchGram.of(raw, X, rows, self.dtype, with_row_sum=self.spec.center, scratch=scratch)
        return self._gram

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.calls += 1
            self.call_order.append(name)
            stream = self.streams[name]
            if stream not in self._rows:
                raise RuntimeError(f"calibration: layer {name} reads the '{stream}' sequence, but the batch has no mask for it")
            accumulator = self.accumulators[name]
            kind = self.kinds[name]
            try:
                if isinstance(accumulator, InputSideAccumulator):
                    X, rows = self._batch_rows(stream, inputs[0])
                    gram = self._shared_gram(inputs[0], X, rows)
                    scaled_by = X if kind == "input" else as_batch(output, rows.mask)[0]
                    accumulator.update(gram, scaled_by)
                else:
                    Y, rows = self._batch_rows(stream, output if kind == "output" else inputs[0])
                    accumulator.update(Y, rows)
            except ValueError as err:
                raise RuntimeError(
                    f"calibration: layer {name} was assigned the '{stream}' sequence, whose rows do not fit its "
                    f"activations ({err}); fix models.activation_stream for this architecture"
                ) from None
            except FloatingPointError as err:
                raise FloatingPointError(f"calibration: layer {name}: {err}") from None
            if name == self.stop_after:
                raise StopForward

        return hook

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []

    def statistics(self) -> dict[str, LayerStatistics]:
        """Per layer, the final statistics; each accumulator is consumed (freed) as its result is formed."""
        out = {}
        for name in list(self.accumulators):
            accumulator = self.accumulators.pop(name)
            try:
                matrix = accumulator.result()
            except ValueError as err:
                raise ValueError(f"{err} ({name})") from None
            out[name] = LayerStatistics(
                self.kinds[name], matrix, accumulator.n_samples, accumulator.n_rows, centered=self.spec.center
            )
        return out

# ------------------------------------------------------------------------------------------------------------
# Eigen-decompositions


NULL_SPACE_MODES = ("structural", "rounding")


class Spectrum:
    """Eigen-decomposition of a layer's output covariance C, eigenvalues ascending, in the statistics' precision
    (fp32 as the reference's `eigh(C.float())`, or float64 for float64 statistics).

    Null space (docs/astra_fidelity.md D13). An output covariance of a bias-free linear map from d_in inputs has
    rank at most d_in (and at most the number of rows it was computed from): its `n_null` = d_out − that bound
    smallest eigenvalues are zero whatever the data (structural). What eigh returns there is rounding noise,
    different on every path and machine, so `eigvals[:n_null]` are set to 0 and `vectors()` returns, for those
    columns, a fixed basis: the projection of a seeded Gaussian matrix onto the null space, orthonormalised (QR,
    columns in order, signs fixed). Every other column is eigh's own eigenvector (null_space="structural", the
    default) - unless null_space="rounding" also gives the fixed basis to the eigenvalues at rounding level.

    `rounding_level` (see `rounding_level()`): eigenvalues at or below it are not certified by the precision the
    statistics were computed in; `rounding_columns(columns)` counts the selected ones beyond the structural null.
    """

    def __init__(self, eigvals: torch.Tensor, n_null: int, range_vectors: torch.Tensor | None = None,
                 rounding_level: float = 0.0, n_structural: int | None = None):
        self.eigvals = eigvals  # (d,) ascending
        self.n_null = n_null  # columns given the fixed basis
        self.n_structural = n_null if n_structural is None else n_structural  # of which zero by the rank bound
        self.rounding_level = rounding_level
        self._range_vectors = range_vectors  # (d, d - n_null), eigenvectors of eigvals[n_null:]

    @property
    def dim(self) -> int:
        return self.eigvals.numel()

    def rounding_columns(self, columns: torch.Tensor) -> int:
        """How many of `columns` (ascending indices) lie beyond the structural null space with an eigenvalue at
        or below the rounding level: directions this precision cannot tell from their neighbours."""
        columns = columns.to(torch.long).cpu()
        selected = self.eigvals.cpu()[columns[columns >= self.n_structural]]
        return int((selected <= self.rounding_level).sum())

    def range_basis(self) -> torch.Tensor:
        """An orthonormal basis of the range (what the null-space basis is the complement of; which basis does
        not matter)."""
        return self.range_vectors()

    def range_vectors(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        """Eigenvectors of the non-null eigenvalues (all, or those at `indices` into eigvals[n_null:])."""
        return self._range_vectors if indices is None else self._range_vectors[:, indices.to(self._range_vectors.device)]

    def vectors(self, columns: torch.Tensor) -> torch.Tensor:
        """Orthonormal eigenvectors (d, len(columns)) for ascending column indices `columns`."""
        columns = columns.to(torch.long).cpu()
        in_range = columns >= self.n_null
        parts = torch.empty(self.dim, columns.numel(), dtype=self.eigvals.dtype, device=self.eigvals.device)
        if in_range.any():
            parts[:, in_range.to(parts.device)] = self.range_vectors(columns[in_range] - self.n_null)
        if (~in_range).any():
            basis = null_space_basis(self.range_basis(), int(columns[~in_range].max()) + 1)
            parts[:, (~in_range).to(parts.device)] = basis[:, columns[~in_range].to(parts.device)]
        return parts


class InputSideSpectrum(Spectrum):
    """Spectrum of C = W M Wᵀ = K Kᵀ, K = W L (M = L Lᵀ), from d_in-sized problems (d_out > d_in).

    Eigenvalues: those of KᵀK = V S² Vᵀ. Eigenvectors of well-separated eigenvalues (λ >= 1e-4 λ_max, which
    the reference selection always is in practice) come cheaply as K V / S; any other request - small
    eigenvalues, where K V / S would amplify rounding by S_max/S, or the null space, which needs an orthonormal
    basis of the range - switches to the thin QR K = Q_K R_K and the eigenvectors Q_K V' of R_K R_Kᵀ,
    orthonormal to the working precision.
    """

    QUICK_MIN_RATIO = 1e-4

    def __init__(self, K: torch.Tensor, n_structural: int, n_rows: int, null_space: str = "structural"):
        d_out, d_in = K.shape
        s2, V = torch.linalg.eigh(K.T @ K)
        full = torch.cat([torch.zeros(d_out - d_in, dtype=s2.dtype, device=s2.device), s2.clamp_min(0)])
        level = rounding_level(full, n_rows, max(d_out, d_in), K.dtype)
        n_null = n_structural
        if null_space == "rounding":
            n_null = max(n_null, int((full <= level).sum()))
        # Range eigenpairs: the largest `keep` (all d_in of them unless rows are few or an option nulls more).
        self.keep = min(d_out - n_null, d_in)
        n_null = d_out - self.keep
        s2, V = s2[d_in - self.keep:].clamp_min(0), V[:, d_in - self.keep:]
        eigvals = torch.cat([torch.zeros(n_null, dtype=s2.dtype, device=s2.device), s2])
        super().__init__(eigvals, n_null, rounding_level=level, n_structural=n_structural)
        self._K, self._V, self._s2 = K, V, s2

    def range_basis(self) -> torch.Tensor:
        """K's thin-QR factor Q_K when K has full column rank (its columns span the range): no eigh needed when
        only null-space columns are asked for (`smallest` on gate/up)."""
        if self._range_vectors is None and self.keep == self._K.shape[1]:
            Q_K, _ = torch.linalg.qr(self._K)
            return Q_K
        return self.range_vectors()

    def range_vectors(self, indices: torch.Tensor | None = None) -> torch.Tensor:
        if indices is not None and self._range_vectors is None:
            wanted = self._s2[indices.to(self._s2.device)]
            if bool((wanted >= self.QUICK_MIN_RATIO * self._s2[-1]).all()) and bool((wanted > 0).all()):
                # K V / S, re-orthonormalised (a thin QR of d_out x r, signs kept): rounding amplified by at most
                # S_max/S <= 100 leaves the columns' directions within ~1e-5, but not orthonormal to fp32 precision.
                U = (self._K @ self._V[:, indices.to(self._V.device)]) / wanted.sqrt()
                Q, R = torch.linalg.qr(U)
                return Q * torch.sign(torch.diagonal(R)).where(torch.diagonal(R) != 0, torch.ones_like(wanted))
        if self._range_vectors is None:
            Q_K, R_K = torch.linalg.qr(self._K)
            _, V = torch.linalg.eigh(R_K @ R_K.T)
            self._range_vectors = Q_K @ V[:, V.shape[1] - self.keep:]
        return super().range_vectors(indices)


NULL_SPACE_SEED = 0


def null_space_basis(range_vectors: torch.Tensor, k: int) -> torch.Tensor:
    """The first k columns of the fixed orthonormal basis of the orthogonal complement of `range_vectors`."""
    d = range_vectors.shape[0]
    # numpy fills sequentially: column j is the j-th draw of d, the same however many columns are asked for
    # (torch.randn's vectorised fill changes the tail with the total size).
    draws = np.random.default_rng(NULL_SPACE_SEED).standard_normal((k, d))
    G = torch.from_numpy(draws).T.to(range_vectors.device)
    R = range_vectors.double()
    for _ in range(2):  # project twice: one pass leaves O(eps) components in the range in floating point
        G = G - R @ (R.T @ G)
    Q, T = torch.linalg.qr(G)
    Q = Q * torch.sign(torch.diagonal(T)).where(torch.diagonal(T) != 0, torch.ones((), dtype=T.dtype, device=T.device))
    return Q.to(range_vectors.dtype)


# How far past the worst case a rounding sum may be allowed to drift in the probabilistic bound below: each entry's
# bound holds with probability >= 1 - 2 n exp(-LAMBDA^2 / 2) (Higham & Mary 2019, Thm 2.4), < 1e-4 for n <= 1e4.
ROUNDING_LAMBDA = 6.0


def rounding_level(eigvals: torch.Tensor, n_rows: int, dim: int, dtype: torch.dtype) -> float:
    """The largest error a computed eigenvalue of the calibration covariance can carry from rounding alone, in the
    precision `dtype` the statistics were accumulated and decomposed in (docs/astra_fidelity.md D13):

        tau = LAMBDA * sqrt(n_rows) * u * tr(C)  +  dim * u * λ_max,       u = eps(dtype) / 2

    First term: C = Σ_rows y yᵀ summed over n_rows terms; each entry's error is at most γ(n)·(|Y|ᵀ|Y|)_ij with
    γ(n) ≈ LAMBDA·sqrt(n)·u (probabilistic bound), and ‖|Y|ᵀ|Y|‖_2 <= ‖Y‖_F² = tr(C). Second: eigh is backward
    stable with error p(d)·u·‖C‖, p(d) <= d. By Weyl, every computed eigenvalue is within tau of the exact one,
    so an eigenvalue <= tau cannot be told from zero, nor its eigenvector from its neighbours'. fp32 at 4080 rows:
    ~2e-5 tr(C) + 3e-5 λ_max; float64: ~4e-14 tr(C) + 6e-14 λ_max."""
    if eigvals.numel() == 0:
        return 0.0
    u = torch.finfo(dtype).eps / 2
    trace = float(eigvals.double().clamp_min(0).sum())
    top = float(eigvals.double().max())
    return ROUNDING_LAMBDA * math.sqrt(max(n_rows, 1)) * u * trace + dim * u * max(top, 0.0)


def structural_null_dim(stats: LayerStatistics, weight: torch.Tensor, has_bias: bool = False) -> int:
    """How many eigenvalues of the layer's output covariance are zero whatever the data: d_out minus the rank bound
    min(d_in (+1 with a bias), rows (-1 when centred))."""
    d_out, d_in = weight.shape
    bound = min(d_in + int(has_bias), stats.n_rows - int(stats.centered))
    return max(0, d_out - max(bound, 0))


def spectrum(stats: LayerStatistics, weight: torch.Tensor, has_bias: bool = False,
             null_space: str = "structural") -> Spectrum:
    """The eigen-decomposition of the layer's output covariance, on the layer's device, in the statistics'
    precision (fp32, or float64 for float64 statistics).

    kind "output": eigh of the d_out x d_out covariance (the reference's `torch.linalg.eigh(C.float())`), whose
    columns are used as they are: only the structural null space gets the fixed basis (null_space="rounding":
    also eigenvalues at rounding level).
    kind "output_via_input" (d_out > d_in): C = W M Wᵀ = K Kᵀ with K = W L, L a factor of the d_in x d_in input
    matrix M (Cholesky; the eigen factor when M is singular), see InputSideSpectrum: d_in-sized work instead of a
    d_out-sized eigh (Llama gate/up: 576 vs 1536; LLaMA-2-7B: 4096 vs 11008).
    """
    if stats.kind == "input":
        raise ValueError("input statistics have no output spectrum (they are CorDA's, not Astra's)")
    if null_space not in NULL_SPACE_MODES:
        raise ValueError(f"null_space '{null_space}' is not one of {', '.join(NULL_SPACE_MODES)}")
    device = weight.device
    dtype = torch.float64 if stats.matrix.dtype == torch.float64 else torch.float32
    n_structural = structural_null_dim(stats, weight, has_bias)
    if stats.kind == "output":
        eigvals, eigvecs = torch.linalg.eigh(stats.matrix.to(device, dtype))
        level = rounding_level(eigvals, stats.n_rows, max(weight.shape), dtype)
        n_null = n_structural
        if null_space == "rounding":
            n_null = max(n_null, int((eigvals <= level).sum()))
        eigvals = eigvals.clone()
        eigvals[:n_null] = 0
        return Spectrum(eigvals, n_null, eigvecs[:, n_null:], rounding_level=level, n_structural=n_structural)
    M = stats.matrix.to(device, dtype)
    L, info = torch.linalg.cholesky_ex(M)
    if int(info) != 0:  # singular (or rounding-indefinite) M: the eigen factor Q sqrt(Λ+) always exists
        lam, Q = torch.linalg.eigh(M)
        L = Q * lam.clamp_min(0).sqrt()
    return InputSideSpectrum(weight.detach().to(dtype) @ L, n_structural, stats.n_rows, null_space)


def eigen_decompose(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(eigenvalues ascending, eigenvectors as columns), as the reference: `torch.linalg.eigh(C.float())`."""
    return torch.linalg.eigh(C.float())


def effective_rank(eigvals: torch.Tensor) -> float:
    """Paper Eq. 9 (reference `effective_rank_fn`): exp(−Σ p log(p + 1e-8)), p = λ / Σλ."""
    eigvals = eigvals.float()
    p = eigvals / eigvals.sum()
    entropy = -(p * torch.log(p + 1e-8)).sum()
    return float(math.exp(float(entropy)))
