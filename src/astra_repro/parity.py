"""Reference parity of the Astra init, on every target module of a model: `python -m astra_repro.parity --help`.

The framework's init (fast statistics, input-side spectra, the null-space rule of docs/astra_fidelity.md D13) is
held against the straightforward computation, written out here on its own with nothing clever in it - the released
code's rule [LyoAI/Astra astra.py `calib_cov_distribution`, `crop_astra_eigens`; protocol §1.2-1.4]:

    per sample (batch 1):  Y = layer output[0];  Y = Y / abs(max(Y));  C += Yᵀ Y        then C /= N
    S, V = eigh(C)   (fp32 as the reference's `eigh(C.float())`, or float64)
    V_r = the option's columns of V (largest: V[:, -r:]);  A = V_rᵀ W;  W_res = W − s · V_r A

Per module it reports the principal-angle cosines between the two B's, the relative distance of the residual
weights, the eigen-gap at the selection's edge against the rounding level, the columns the init took from the
structural null space or at rounding level, and tr(BᵀCB) against the sum of the selected eigenvalues (Ky Fan: equal
exactly when B spans the eigenvectors the option names). `tests/test_astra_reference_parity.py` runs it on every
module of the embedded model; the figures in docs/astra_fidelity.md D13 come from it.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

log = logging.getLogger(__name__)

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@torch.no_grad()
def straightforward_covariances(model: torch.nn.Module, input_ids: Sequence[Sequence[int]],
                                attention_mask: Sequence[Sequence[int]] | None, targets: Sequence[str],
                                dtype: torch.dtype = torch.float32, skip: set[str] = frozenset()) -> dict[str, torch.Tensor]:
    """The released code's covariance of every target linear's output (but those in `skip`), one sample per
    forward pass."""
    from astra_repro.calibration.statistics import find_target_linears

    layers = {name: layer for name, layer in find_target_linears(model, targets).items() if name not in skip}
    sums = {name: torch.zeros(layer.out_features, layer.out_features, dtype=dtype) for name, layer in layers.items()}

    def hook_for(name):
        def hook(module, inputs, output):
            Y = output[0].detach().to(dtype)  # the first (only) sample of the batch: (positions, d_out)
            Y = Y / torch.max(Y).abs()
            sums[name] += Y.t().matmul(Y)
        return hook

    handles = [layer.register_forward_hook(hook_for(name)) for name, layer in layers.items()]
    was_training = model.training
    model.eval()
    try:
        for i, ids in enumerate(tqdm(input_ids, desc="straightforward covariances", unit="sample", leave=False)):
            mask = None if attention_mask is None else torch.tensor([attention_mask[i]])
            model(input_ids=torch.tensor([ids]), attention_mask=mask, use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return {name: C / len(input_ids) for name, C in sums.items()}


@dataclass
class ModuleParity:
    name: str
    layer_type: str
    min_cosine: float  # principal-angle cosines between the framework's B and the straightforward V_r
    residual_rel: float  # ‖W_res − W_res_ref‖_F / ‖W_res_ref‖_F
    edge_gap_rel: float  # min |λ_selected − λ_unselected| / λ_max (the straightforward spectrum)
    rounding_level_rel: float  # the framework's rounding level / λ_max, for its statistics' precision
    null_columns: int  # columns the framework took from the structural null space
    rounding_columns: int  # columns beyond it at or below the rounding level
    energy_ratio: float  # tr(BᵀCB) / Σ selected λ (C: the straightforward covariance; Ky Fan: 1 iff the same space)
    energy_excess_rel: float  # (tr(BᵀCB) − Σ selected λ) / λ_max: the same, where the selected λ are ~0
    smallest_ratio: float  # λ_min of the selection / λ_max: how deep into the spectrum it reaches
    wt_b_rel: float  # ‖Wᵀ B‖_F / (‖W‖_2 · sqrt(r)) where every column is a structural null direction (else nan)
    reference_rounding_columns: int  # selected eigenvalues of the straightforward C at or below its rounding level
    released_arithmetic: bool = False  # the framework recomputed it with the released code's sums (edge gap ≤ τ)


def principal_cosines(B1: torch.Tensor, B2: torch.Tensor) -> torch.Tensor:
    Q1, _ = torch.linalg.qr(B1.double())
    Q2, _ = torch.linalg.qr(B2.double())
    return torch.linalg.svdvals(Q1.T @ Q2)


def largest_eigenvalue(C: torch.Tensor, iterations: int = 50) -> float:
    """λ_max of a PSD matrix by power iteration (from below; enough to scale a relative figure)."""
    x = torch.ones(C.shape[0], dtype=C.dtype)
    for _ in range(iterations):
        x = C @ x
        x = x / torch.linalg.norm(x)
    return float(x @ (C @ x))


def compare_module(name: str, C: torch.Tensor | None, W: torch.Tensor, B: torch.Tensor, W_res: torch.Tensor,
                   columns: torch.Tensor, scaling: float, record: dict, n_rows: int,
                   eigen: Callable[[], tuple[torch.Tensor, torch.Tensor]]) -> ModuleParity:
    """One module: the framework's (B, W_res) against eigh(C) with the same columns (`eigen()` returns
    eigh(C), computed once per module however many algorithms are compared)."""
    from astra_repro.calibration.statistics import rounding_level

    structural = max(0, W.shape[0] - min(W.shape[1], n_rows))
    Bd, Wd64 = B.double(), W.double()
    if int(columns.max()) < structural:
        # ‖W‖_2 by power iteration from below (an exact SVD here cost a second per module, most of the check):
        # the figure can only come out larger, never hide a B outside the null space.
        wt_b = float(torch.linalg.norm(Wd64.T @ Bd) / (largest_eigenvalue(Wd64.T @ Wd64) ** 0.5 * B.shape[1] ** 0.5))
        # Every column in the structural null space: any orthonormal basis of it is an eigenbasis (eigh's would be
        # rounding noise), so the checks are that B lies in it (WᵀB = 0, hence BᵀCB = 0 for any data: C is not
        # needed) and that W_res = W − s·B·BᵀW was written.
        W_res_ref = Wd64 - scaling * Bd @ (Bd.T @ Wd64)
        return ModuleParity(
            name=name, layer_type=name.rsplit(".", 1)[-1], min_cosine=float("nan"),
            residual_rel=float(torch.linalg.norm(W_res.double() - W_res_ref) / torch.linalg.norm(W_res_ref)),
            edge_gap_rel=float("nan"), rounding_level_rel=float(record.get("rounding_level", 0.0)),
            null_columns=int(record.get("null_columns", 0)), rounding_columns=int(record.get("rounding_columns", 0)),
            energy_ratio=float("nan"), energy_excess_rel=float("nan"), smallest_ratio=0.0,
            reference_rounding_columns=0, wt_b_rel=wt_b,
        )
    eigvals, V = eigen()
    level = rounding_level(eigvals, n_rows, max(W.shape), C.dtype)
    V_r = V[:, columns]
    Wd = W.to(V.dtype)
    W_res_ref = Wd - scaling * V_r @ (V_r.T @ Wd)
    chosen = torch.zeros(eigvals.numel(), dtype=torch.bool)
    chosen[columns] = True
    top = float(eigvals[-1])
    gap = float((eigvals[chosen][:, None] - eigvals[~chosen][None, :]).abs().min()) if (~chosen).any() else float("inf")
    selected_sum = float(eigvals[chosen].double().clamp_min(0).sum())
    energy = float(torch.trace(Bd.T @ C.double() @ Bd))
    return ModuleParity(
        name=name,
        layer_type=name.rsplit(".", 1)[-1],
        min_cosine=float(principal_cosines(B, V_r).min()),
        residual_rel=float(torch.linalg.norm(W_res.double() - W_res_ref.double()) / torch.linalg.norm(W_res_ref.double())),
        edge_gap_rel=gap / top if top > 0 else 0.0,
        rounding_level_rel=float(record.get("rounding_level", 0.0)),
        null_columns=int(record.get("null_columns", 0)),
        rounding_columns=int(record.get("rounding_columns", 0)),
        energy_ratio=energy / selected_sum if selected_sum > 0 else float("inf"),
        energy_excess_rel=(energy - selected_sum) / top if top > 0 else 0.0,
        smallest_ratio=float(eigvals[chosen].min()) / top if top > 0 else 0.0,
        reference_rounding_columns=int((eigvals[columns[columns >= structural]] <= level).sum()),
        wt_b_rel=float("nan"),  # only asked of the structural null space's columns
    )


def check(load: Callable[[], tuple[torch.nn.Module, Any]], records: Sequence[dict], calibration: dict,
          options: dict | None = None, rank: int = 16, alpha: int = 32, targets: Sequence[str] = TARGETS,
          algorithms: Sequence[str] = ("fast",), reference_dtype: torch.dtype | None = None,
          cache_identity: dict | None = None) -> dict[str, list[ModuleParity]]:
    """Every target module: the framework's Astra init (method options `options`, calibration settings
    `calibration`, each calibration algorithm in `algorithms`) against the straightforward computation on the
    same calibration samples, computed once. `load` returns a fresh (model, tokenizer); the reference covariance
    is accumulated in `reference_dtype` (default: float64 when the framework's statistics are float64, else fp32
    as the released code)."""
    from astra_repro.calibration import CalibrationSpec
    from astra_repro.calibration.data import build_samples
    from astra_repro.calibration.statistics import find_target_linears
    from astra_repro.methods.astra import Astra, astra_options, layer_columns
    from astra_repro.methods.base import HyperParams, InitContext, lora_layers
    from astra_repro.paths import CONFIG_DIR

    method_options = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "method" / "astra.yaml"), OmegaConf.create(options or {}))
    opts = astra_options(method_options)
    model, tokenizer = load()
    spec = CalibrationSpec.from_config(OmegaConf.create(calibration), opts, where="output")
    if spec.batch_size != 1 or not spec.include_padding or spec.center or spec.normalize != "absmax" or spec.source != "task":
        raise ValueError("the straightforward computation is the released code's: batch_size 1, include_padding, "
                         "absmax, uncentred, the task source")
    if reference_dtype is None:
        reference_dtype = torch.float64 if spec.accumulate_dtype == "float64" else torch.float32
    samples = build_samples(tokenizer, records, spec)
    n_rows = sum(len(ids) for ids in samples.input_ids)
    weights = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    seed = 0  # the InitContext seed below
    columns_of = {name: layer_columns(opts, name, layer.out_features, rank, seed)
                  for name, layer in find_target_linears(model, targets).items()}
    # A selection inside the structural null space needs no covariance (compare_module): skip the d_out² sums
    in_null = {name for name, columns in columns_of.items()
               if int(columns.max()) < weights[name].shape[0] - min(weights[name].shape[1], n_rows)}
    covariances = straightforward_covariances(model, samples.input_ids, samples.attention_mask, targets, reference_dtype,
                                              skip=in_null)
    del model
    eigens: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def eigen_of(plain: str):
        def eigen():
            if plain not in eigens:
                eigens[plain] = torch.linalg.eigh(covariances[plain])
            return eigens[plain]
        return eigen

    results: dict[str, list[ModuleParity]] = {}
    for algorithm in algorithms:
        model, tokenizer = load()
        ctx = InitContext(
            hp=HyperParams(rank=rank, alpha=alpha, dropout=0.0, target_modules=list(targets), learning_rate=0.0),
            options=method_options, tokenizer=tokenizer, seed=seed, train_records=records,
            calibration=OmegaConf.create({**calibration, "algorithm": algorithm}),
            cache_identity={**(cache_identity or {}), "algorithm": algorithm},
        )
        method = Astra()
        peft_model = method.initialize(model, ctx)
        rows = []
        for name, layer in lora_layers(peft_model).items():
            plain = name.removeprefix("base_model.model.")
            C, columns = covariances.get(plain), columns_of[plain]
            scaling = float(layer.scaling["default"]) if opts["residual_scaling"] == "alpha_over_r" else 1.0
            rows.append(compare_module(plain, C, weights[plain], layer.lora_B["default"].weight.detach(),
                                       layer.get_base_layer().weight.detach(), columns, scaling,
                                       method.selections[name], n_rows, eigen_of(plain)))
        flagged = set(ctx.report["astra"]["released_arithmetic_layers"])
        for row in rows:
            row.released_arithmetic = row.name in flagged
        results[algorithm] = rows
        del model, peft_model
    return results


def summarize(results: Sequence[ModuleParity]) -> dict[str, dict]:
    """Per layer type: the worst cosine and residual distance, and the column counts."""
    by_type: dict[str, list[ModuleParity]] = defaultdict(list)
    for row in results:
        by_type[row.layer_type].append(row)
    out = {}
    for layer_type, rows in by_type.items():
        # nan: a selection inside the structural null space, where cosines with eigh's basis mean nothing
        worst = min(rows, key=lambda r: 2.0 if math.isnan(r.min_cosine) else r.min_cosine)
        out[layer_type] = {
            "modules": len(rows),
            "min_cosine": worst.min_cosine,
            "worst_module": worst.name,
            "max_residual_rel": max(r.residual_rel for r in rows),
            "null_columns": sum(r.null_columns for r in rows),
            "rounding_columns": sum(r.rounding_columns for r in rows),
            "max_energy_ratio": max((r.energy_ratio for r in rows if not math.isnan(r.energy_ratio)), default=float("nan")),
            "max_energy_excess_rel": max((r.energy_excess_rel for r in rows if not math.isnan(r.energy_excess_rel)),
                                         default=float("nan")),
            "min_edge_gap_rel": min((r.edge_gap_rel for r in rows if not math.isnan(r.edge_gap_rel)), default=float("nan")),
            # where the eigen-gap at the selection's edge is within rounding: two summation orders cannot agree there,
            # so only the released code's own arithmetic reproduces its selection
            "gap_within_rounding": [r.name for r in rows if r.edge_gap_rel <= r.rounding_level_rel],
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2_135m", help="a model config name under configs/model")
    parser.add_argument("--data", default=None, help="training records (jsonl: MetaMathQA/GSM8K/pissa fields); "
                        "default: the built-in synthetic math problems")
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--algorithm", default="fast", choices=["fast", "direct", "both"])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an Astra option, e.g. subspace=smallest (repeatable)")
    parser.add_argument("--out", default=None, help="write every module's figures to this JSON file")
    parser.add_argument("--selection-only", action="store_true",
                        help="only the framework's init and what its record says per layer type (no straightforward "
                             "reference: for settings where it would take hours, e.g. 256 x 512 on a CPU)")
    args = parser.parse_args(argv)

    from astra_repro.models import load_model, model_config

    model_cfg = model_config(args.model)
    records = load_records(args.data)
    options = dict(option.split("=", 1) for option in args.option)
    calibration = dict(source="task", n_samples=args.n_samples, seq_len=args.seq_len, batch_size=1, seed=42,
                       padding="max_length", path=None)
    algorithms = ("fast", "direct") if args.algorithm == "both" else (args.algorithm,)
    if args.selection_only:
        report = selection_report(lambda: load_model(model_cfg), records, calibration, options, args.rank, args.alpha,
                                  cache_identity={"model": args.model, "data": args.data or "synthetic"})
        print_selection_report(report)
        if args.out:
            Path(args.out).write_text(json.dumps({"settings": vars(args), **report}, indent=1))
        return
    results = check(lambda: load_model(model_cfg), records, calibration, options, args.rank, args.alpha,
                    algorithms=algorithms, cache_identity={"model": args.model, "data": args.data or "synthetic"})
    out = {"settings": vars(args), "algorithms": {}}
    for algorithm, rows in results.items():
        summary = summarize(rows)
        print(f"algorithm={algorithm}")
        print(f"{'type':<10} {'modules':>7} {'min cos':>10} {'max resid':>10} {'null':>5} {'round':>6} "
              f"{'max tr ratio':>13} {'excess/λmax':>12}  worst")
        for layer_type in TARGETS:
            if layer_type in summary:
                row = summary[layer_type]
                print(f"{layer_type:<10} {row['modules']:>7} {row['min_cosine']:>10.6f} {row['max_residual_rel']:>10.2e} "
                      f"{row['null_columns']:>5} {row['rounding_columns']:>6} {row['max_energy_ratio']:>13.6g} "
                      f"{row['max_energy_excess_rel']:>12.3g}  "
                      f"{row['worst_module']}")
        released = [r.name for r in rows if r.released_arithmetic]
        print(f"recomputed with the released arithmetic ({len(released)} modules): {', '.join(released) or 'none'}")
        within = [name for row in summary.values() for name in row["gap_within_rounding"]]
        print(f"edge gap within rounding ({len(within)} modules): {', '.join(within) or 'none'}")
        out["algorithms"][algorithm] = {"summary": summary, "modules": [asdict(r) for r in rows]}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=1))


def selection_report(load, records, calibration: dict, options: dict | None, rank: int, alpha: int,
                     targets: Sequence[str] = TARGETS, cache_identity: dict | None = None) -> dict:
    """The framework's init alone: what the run record says about the selection, per layer type."""
    from astra_repro.methods.astra import Astra
    from astra_repro.methods.base import HyperParams, InitContext
    from astra_repro.paths import CONFIG_DIR

    model, tokenizer = load()
    ctx = InitContext(
        hp=HyperParams(rank=rank, alpha=alpha, dropout=0.0, target_modules=list(targets), learning_rate=0.0),
        options=OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "method" / "astra.yaml"), OmegaConf.create(options or {})),
        tokenizer=tokenizer, seed=0, train_records=records, calibration=OmegaConf.create(calibration),
        cache_identity=dict(cache_identity or {}),
    )
    Astra().initialize(model, ctx)
    return {key: ctx.report[key] for key in ("astra", "astra_selected_percentiles", "astra_directions", "calibration",
                                             "eigen")}


def print_selection_report(report: dict) -> None:
    print(f"{'type':<10} {'columns':>8} {'struct null':>11} {'rounding':>9} {'percentiles':>16} {'tau/λmax':>10}")
    for layer_type, row in report["astra_selected_percentiles"].items():
        print(f"{layer_type:<10} {row['columns']:>8} {row['null_columns']:>11} {row['rounding_columns']:>9} "
              f"{row['percentile_low']:>7.1f}-{row['percentile_high']:<7.1f}% {row['rounding_level_rel']:>10.2e}")
    shares = report["astra_directions"]
    print(f"directions: {shares['data']}/{shares['columns']} from data, {shares['structural_null']} structural null, "
          f"{shares['rounding_level']} at rounding level ({report['astra']['accumulate_dtype']} statistics); "
          f"calibration {report['calibration'].get('calibration_s')} s, eigen {report['eigen'].get('eigen_s')} s")


def load_records(path: str | None) -> list[dict]:
    from astra_repro.data import synthetic_math
    from astra_repro.data.sources import normalize_math_training_record

    if path is None:
        return [normalize_math_training_record(p) for p in synthetic_math.generate("train", 400, seed=0)]
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [normalize_math_training_record(json.loads(line)) for line in lines if line.strip()]


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    main()
