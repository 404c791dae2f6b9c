"""Astra (arXiv 2602.19111): LoRA on eigenvectors of each layer's output-activation covariance.

Rule [LyoAI/Astra astra.py `AstraLayer.astra_init`, `crop_astra_eigens`; protocol §1.3-1.4], per adapted layer:
    C = calibration covariance of the layer's outputs (see astra_repro.calibration)
    S, V = eigh(C)                      (ascending eigenvalues)
    V_r = r columns of V chosen by `subspace`   (reference: V[:, -r:], the r LARGEST eigenvalues - D1)
    A = V_rᵀ W (fp32, then the weight dtype),  B = V_r,  W_res = W − s·B·A
with s = the layer's LoRA scaling (alpha/r) as in the code, or 1 as in the paper's Eq. 8 (D6). B has orthonormal
columns and A carries the magnitude, unlike PiSSA's sqrt(S) split. With s = scaling the outputs are unchanged
at init. peft 0.21.2 has no Astra, so the factors are written into a default PEFT LoRA model.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import torch
from omegaconf import DictConfig
from peft import get_peft_model

from astra_repro.calibration import CalibrationSpec, LayerStatistics, collect_statistics, spectrum
from astra_repro.calibration.spec import CHOICES as CALIBRATION_CHOICES
from astra_repro.errors import ConfigError
from astra_repro.selection_labels import DEFAULT_WINDOW_START
from astra_repro.selection_labels import selection_label as name_of_selection
from astra_repro.methods.base import (
    InitContext, Method, Option, calibration_overrides, install_low_rank_init, lora_layers, register_method,
)
from astra_repro.profiling import StageMeter, Stopwatch

log = logging.getLogger(__name__)

NAMED_WINDOWS = ("0", "d/4", "d/2", "3d/4", "d-r")


def astra_options(options: DictConfig | Mapping | None) -> dict[str, Any]:
    """Astra's own options (`Astra.options`), checked, with the reference defaults of absent keys and
    accumulate_dtype "auto" resolved for the selection."""
    checked = Astra.check_options(options)
    resolved = {key: checked[key] for key in Astra.options}
    if resolved["accumulate_dtype"] == "auto":
        resolved["accumulate_dtype"] = "model" if takes_top_of_spectrum(resolved) else "float64"
    return resolved


def takes_top_of_spectrum(opts: Mapping) -> bool:
    """Whether a selection is the r largest eigenvalues (the reference's), which fp32 resolves (D13)."""
    return opts["subspace"] == "largest" or (opts["subspace"] == "window" and str(opts["window_start"]) == "d-r")


def window_start_index(window_start: Any, dim: int, rank: int) -> int:
    """Ascending column index where a window of `rank` eigenvectors starts, clipped so the window fits.

    The reference's "medium" crop V[:, d//2 : d//2 + r] is silently short when d//2 + r > d; clipping keeps r columns.
    """
    named = {"0": 0, "d/4": dim // 4, "d/2": dim // 2, "3d/4": 3 * dim // 4, "d-r": dim - rank}
    start = named[str(window_start)] if str(window_start) in named and not isinstance(window_start, int) else int(window_start)
    return max(0, min(start, dim - rank))


def select_columns(subspace: str, dim: int, rank: int, window_start: Any = "d/2", seed: int = 0) -> torch.Tensor:
    """Indices (into ascending eigh columns) of the eigenvectors to adapt."""
    if rank > dim:
        raise ConfigError(f"LoRA rank {rank} exceeds a target layer's output dimension {dim}; lower the rank")
    if subspace == "largest":
        return torch.arange(dim - rank, dim)
    if subspace == "smallest":
        return torch.arange(0, rank)
    if subspace == "window":
        start = window_start_index(window_start, dim, rank)
        return torch.arange(start, start + rank)
    if subspace == "random":
        generator = torch.Generator().manual_seed(seed)
        return torch.randperm(dim, generator=generator)[:rank].sort().values
    raise ConfigError(f"unknown astra subspace '{subspace}'; valid: largest, smallest, window, random")


def layer_columns(opts: Mapping, name: str, dim: int, rank: int, seed: int) -> torch.Tensor:
    """The columns the options select for one layer. A per-layer seed (stable across processes, unlike hash()) so
    "random" draws different columns per layer."""
    return select_columns(opts["subspace"], dim, rank, opts["window_start"], seed + zlib.crc32(name.encode()))


@register_method
class Astra(Method):
    name = "astra"
    description = "Astra: eigenvectors of the output-activation covariance (A = V^T W, B = V), residual frozen"
    residual_modifying = True
    needs_calibration = True  # the runner resolves cfg.calibration into ctx.calibration for such methods
    # Defaults are the reference's. The calibration overrides default to None = the calibration stage's value
    # (whose defaults are the reference's too).
    options = {
        "subspace": Option("largest", choices=("largest", "smallest", "window", "random"),
                           doc="D1: which eigenvectors of C (ascending eigh columns) initialise the adapter"),
        "window_start": Option(DEFAULT_WINDOW_START, choices=NAMED_WINDOWS, kind=int, minimum=0,
                               doc="window only: a named start or an ascending column index"),
        "label_convention": Option("paper", choices=("paper", "math"), doc="D1: how tables name the selection"),
        "residual_scaling": Option("alpha_over_r", choices=("alpha_over_r", "none"),
                                   doc="D6: W - s*B*A (the code) or W - B*A (Eq. 8)"),
        # D13: only eigenvalues zero by the rank bound get the fixed basis (structural); "rounding" also gives it to
        # eigenvalues at rounding level (a reproducible convention instead of eigh's own vectors there).
        "null_space": Option("structural", choices=("structural", "rounding")),
        # D13: where the fast path's input-side statistics (gate/up) leave a selection's eigen-gap within fp32
        # rounding, recompute those layers with the released code's sums (where_needed: bit-for-bit parity) or not
        # (never: faster, the selection there is then rounding's, not the released code's).
        "released_arithmetic": Option("where_needed", choices=("where_needed", "never")),
        **calibration_overrides(),
        # "auto": the model's dtype (the reference's, D5) when the selection is the top of the spectrum, float64 when
        # it reaches below it (smallest, windows, random), where fp32 rounding would pick the directions (D13).
        "accumulate_dtype": Option("auto", choices=("auto", *CALIBRATION_CHOICES["accumulate_dtype"])),
    }

    @staticmethod
    def selection_label(options: DictConfig | Mapping | None) -> str:
        """Table 4 row name of the selection these options make, under their `label_convention`."""
        opts = astra_options(options)
        return name_of_selection(opts["subspace"], opts["window_start"], opts["label_convention"])

    def initialize(self, model: torch.nn.Module, ctx: InitContext) -> torch.nn.Module:
        opts = astra_options(ctx.options)
        if ctx.hp.use_dora:
            # DoRA's magnitude is computed from W before the residual is subtracted: the pair is not defined.
            raise ConfigError("astra does not combine with DoRA; set method.use_dora=false")
        spec = CalibrationSpec.from_config(ctx.calibration, opts, where="output")
        statistics = collect_statistics(
            model, ctx.tokenizer, ctx.train_records, spec, ctx.hp.target_modules, ctx.cache_identity, ctx.report
        )
        released = self._released_arithmetic_where_needed(model, ctx, spec, statistics, opts)
        peft_model = get_peft_model(model, self.lora_config(ctx, model))
        layers = lora_layers(peft_model)
        scalings = sorted({float(layer.scaling["default"]) for layer in layers.values()})
        if opts["residual_scaling"] == "none" and scalings != [1.0]:
            warnings.warn(
                f"astra residual_scaling=none subtracts B·A (Eq. 8) but the adapter adds s·B·A with s = "
                f"{', '.join(f'{s:g}' for s in scalings)}: the model's outputs change at init",
                stacklevel=2,
            )
        selections = {}
        device = next(peft_model.parameters()).device
        eigen = Stopwatch(device)
        with StageMeter(device) as meter:
            for name, layer in layers.items():
                if name not in statistics:
                    raise RuntimeError(f"no calibration statistics for adapted layer {name}")
                # Popped: each layer's statistics are freed as soon as its factors are installed.
                selections[name] = self._init_layer(name, layer, statistics.pop(name), opts, ctx.seed, eigen)
        # eigen_s: the decompositions alone; layers_s adds forming A = VᵀW and writing the factors and residuals.
        ctx.report["eigen"] = {"layers": len(selections), "eigen_s": round(eigen.seconds, 3),
                               **meter.as_record("layers")}
        log.info("astra: %d eigen-decompositions in %.1f s, with factors and residuals %.1f s",
                 len(selections), eigen.seconds, meter.seconds)
        self.selections = selections  # per module, for inspection (astra_repro.parity)
        summary = summarize_selection(selections)
        for layer_type, row in summary.items():
            log.info(
                "astra %s: %s eigenvalues, percentiles %.1f-%.1f%% of the ascending spectrum, %.1f%% of the energy",
                layer_type, opts["subspace"], row["percentile_low"], row["percentile_high"], 100 * row["energy_fraction"],
            )
        degenerate = {t: row["null_columns"] for t, row in summary.items() if row["null_columns"]}
        if degenerate:
            log.warning(
                "astra subspace=%s selects directions with structurally zero eigenvalue in %s (layers with more outputs "
                "than inputs): there A = VᵀW = 0 and B is a fixed basis of the null space, see docs/astra_fidelity.md D13",
                opts["subspace"], ", ".join(f"{t} ({n} columns)" for t, n in degenerate.items()),
            )
        uncertain = {t: row["rounding_columns"] for t, row in summary.items() if row["rounding_columns"]}
        if uncertain:
            log.warning(
                "astra subspace=%s selects directions whose eigenvalue is at rounding level in %s statistics in %s: "
                "the precision, not the data, orders them (docs/astra_fidelity.md D13)%s",
                opts["subspace"], spec.accumulate_dtype, ", ".join(f"{t} ({n} columns)" for t, n in uncertain.items()),
                "" if spec.accumulate_dtype == "float64" else "; method.accumulate_dtype=float64 resolves more of them",
            )
        ctx.report["astra"] = {**opts, "selection_label": self.selection_label(opts), "calibration": spec.as_dict(),
                               "released_arithmetic_layers": released}
        ctx.report["astra_selected_percentiles"] = summary
        ctx.report["astra_directions"] = direction_shares(summary)
        return peft_model

    @torch.no_grad()
    def _released_arithmetic_where_needed(self, model: torch.nn.Module, ctx: InitContext, spec: CalibrationSpec,
                                          statistics: dict[str, LayerStatistics], opts: dict) -> list[str]:
        """Layers whose statistics the fast path kept on the input side (W M Wᵀ: gate/up) and whose eigen-gap at
        the selection's edge lies within rounding: there two fp32 summation orders select different subspaces, so
        only the released code's own arithmetic (per-sample output sums, `calibration.algorithm=direct`) reproduces
        its selection. They get those statistics from a second calibration pass over them alone (docs D13).
        Returns their names (the run record lists them)."""
        if opts["released_arithmetic"] == "never":
            return []
        modules = dict(model.named_modules())
        rank = ctx.hp.rank
        flagged = []
        for name, stats in statistics.items():
            if stats.kind != "output_via_input":
                continue
            layer = modules[name]
            decomposition = spectrum(stats, layer.weight, has_bias=layer.bias is not None)
            columns = layer_columns(opts, name, layer.out_features, rank, ctx.seed)
            if edge_gap(decomposition.eigvals, columns, decomposition.n_structural) <= decomposition.rounding_level:
                flagged.append(name)
        if flagged:
            log.info("astra: %d layer(s) have their selection's eigen-gap within fp32 rounding (%s): recomputing their "
                     "statistics with the released code's arithmetic", len(flagged), ", ".join(flagged))
            report: dict = {}
            direct = collect_statistics(model, ctx.tokenizer, ctx.train_records, replace(spec, algorithm="direct"),
                                        flagged, ctx.cache_identity, report)
            statistics.update(direct)
            ctx.report["calibration_released_arithmetic"] = report.get("calibration")
        return flagged

    @torch.no_grad()
    def _init_layer(self, name: str, layer: torch.nn.Module, stats: LayerStatistics, opts: dict, seed: int,
                    eigen: Stopwatch) -> dict:
        base = layer.get_base_layer()
        weight = base.weight
        dim, rank = weight.shape[0], layer.r["default"]
        side = weight.shape[1] if stats.kind == "output_via_input" else dim
        if stats.matrix.shape != (side, side):
            raise RuntimeError(f"statistics of {name} are {tuple(stats.matrix.shape)}, expected ({side}, {side})")
        columns = layer_columns(opts, name, dim, rank, seed)
        with eigen:
            # Eigenpairs of the output covariance, ascending; its null space gets a fixed basis (D13).
            decomposition = spectrum(stats, weight, has_bias=base.bias is not None, null_space=opts["null_space"])
            V = decomposition.vectors(columns)
        eigvals = decomposition.eigvals
        A = V.T @ weight.to(V.dtype)  # fp32 as the reference (float64 for float64 statistics)
        scaling = float(layer.scaling["default"])
        residual_scale = scaling if opts["residual_scaling"] == "alpha_over_r" else 1.0
        install_low_rank_init(layer, A.to(weight.dtype), V.to(weight.dtype), residual_scale=residual_scale)
        selected = eigvals[columns.to(eigvals.device)]
        total = eigvals.clamp_min(0).sum()
        return {
            "dim": dim,
            "columns": int(columns.numel()),
            "null_dim": decomposition.n_structural,
            "null_columns": int((columns < decomposition.n_structural).sum()),
            "rounding_columns": decomposition.rounding_columns(columns),
            "fixed_basis_columns": int((columns < decomposition.n_null).sum()),
            "rounding_level": decomposition.rounding_level / max(float(eigvals.max()), 1e-300),
            "columns_low": int(columns.min()),
            "columns_high": int(columns.max()),
            "eigval_low": float(selected.min()),
            "eigval_high": float(selected.max()),
            "energy_fraction": float(selected.clamp_min(0).sum() / total) if total > 0 else 0.0,
        }


def edge_gap(eigvals: torch.Tensor, columns: torch.Tensor, n_structural: int) -> float:
    """The smallest distance between a selected and an unselected eigenvalue beyond the structural null space (whose
    eigenvalues are zero by construction and have no eigenvectors to reproduce); inf when either side is empty."""
    index = torch.arange(eigvals.numel())
    chosen = torch.zeros(eigvals.numel(), dtype=torch.bool)
    chosen[columns.cpu()] = True
    beyond = index >= n_structural
    values = eigvals.detach().double().cpu()
    selected, others = values[chosen & beyond], values[~chosen & beyond]
    if selected.numel() == 0 or others.numel() == 0:
        return float("inf")
    return float((selected[:, None] - others[None, :]).abs().min())


def summarize_selection(selections: dict[str, dict]) -> dict[str, dict]:
    """Per layer type (q_proj, ...): the percentile range of the ascending spectrum actually selected (0 % =
    smallest eigenvalue, 100 % = largest), over all layers of that type, and the mean captured energy fraction."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for name, row in selections.items():
        by_type[name.rsplit(".", 1)[-1]].append(row)
    summary = {}
    for layer_type, rows in sorted(by_type.items()):
        summary[layer_type] = {
            "n_layers": len(rows),
            "percentile_low": min(100.0 * r["columns_low"] / r["dim"] for r in rows),
            "percentile_high": max(100.0 * (r["columns_high"] + 1) / r["dim"] for r in rows),
            "eigval_low": min(r["eigval_low"] for r in rows),
            "eigval_high": max(r["eigval_high"] for r in rows),
            "energy_fraction": sum(r["energy_fraction"] for r in rows) / len(rows),
            # Columns taken from the structural null space of the output covariance (d_out > d_in): zero eigenvalue,
            # so A = VᵀW = 0 there and B is a fixed basis of directions the layer can never output (D13).
            "null_dim": max(r["null_dim"] for r in rows),
            "null_columns": sum(r["null_columns"] for r in rows),
            # Columns beyond it whose eigenvalue is at or below the rounding level of the statistics' precision:
            # their order, so their choice, is rounding's, not the data's (D13).
            "rounding_columns": sum(r["rounding_columns"] for r in rows),
            # Columns given the fixed basis: the structural ones, plus the rounding ones under null_space=rounding.
            "fixed_basis_columns": sum(r["fixed_basis_columns"] for r in rows),
            "rounding_level_rel": max(r["rounding_level"] for r in rows),  # tau / λ_max, the worst layer
            "columns": sum(r["columns"] for r in rows),
        }
    return summary


def direction_shares(summary: dict[str, dict]) -> dict[str, Any]:
    """Of all adapted directions: how many the data determine (eigenvectors above the rounding level) and how many
    a convention does (the structural null space's fixed basis, or an order rounding decides)."""
    total = sum(row["columns"] for row in summary.values())
    structural = sum(row["null_columns"] for row in summary.values())
    rounding = sum(row["rounding_columns"] for row in summary.values())
    data = total - structural - rounding
    return {"columns": total, "data": data, "structural_null": structural, "rounding_level": rounding,
            "data_share": data / total if total else 0.0}
