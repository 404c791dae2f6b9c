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
import sys
import zlib
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
                                dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """The released code's covariance of every target linear's output, one sample per forward pass."""
    from astra_repro.calibration.statistics import find_target_linears

    layers = find_target_linears(model, targets)
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
    smallest_ratio: float  # λ_min of the selection / λ_max: how deep into the spectrum it reaches
    wt_b_rel: float  # ‖Wᵀ B‖_F / (‖W‖_2 · sqrt(r)): 0 for directions the layer can never output


def principal_cosines(B1: torch.Tensor, B2: torch.Tensor) -> torch.Tensor:
    Q1, _ = torch.linalg.qr(B1.double())
    Q2, _ = torch.linalg.qr(B2.double())
    return torch.linalg.svdvals(Q1.T @ Q2)


def compare_module(name: str, C: torch.Tensor, W: torch.Tensor, B: torch.Tensor, W_res: torch.Tensor,
                   columns: torch.Tensor, scaling: float, record: dict) -> ModuleParity:
    """One module: the framework's (B, W_res) against eigh(C) with the same columns."""
    eigvals, V = torch.linalg.eigh(C)
    V_r = V[:, columns]
    Wd = W.to(V.dtype)
    W_res_ref = Wd - scaling * V_r @ (V_r.T @ Wd)
    chosen = torch.zeros(eigvals.numel(), dtype=torch.bool)
    chosen[columns] = True
    top = float(eigvals[-1])
    gap = float((eigvals[chosen][:, None] - eigvals[~chosen][None, :]).abs().min()) if (~chosen).any() else float("inf")
    Bd = B.double()
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
        smallest_ratio=float(eigvals[chosen].min()) / top if top > 0 else 0.0,
        wt_b_rel=float(torch.linalg.norm(W.double().T @ Bd) / (torch.linalg.matrix_norm(W.double(), 2) * B.shape[1] ** 0.5)),
    )


def check(load: Callable[[], tuple[torch.nn.Module, Any]], records: Sequence[dict], calibration: dict,
          options: dict | None = None, rank: int = 16, alpha: int = 32,
          targets: Sequence[str] = TARGETS, reference_dtype: torch.dtype | None = None,
          cache_identity: dict | None = None) -> list[ModuleParity]:
    """Every target module: the framework's Astra init (method options `options`, calibration settings
    `calibration`) against the straightforward computation on the same calibration samples. `load` returns a
    fresh (model, tokenizer); the reference covariance is accumulated in `reference_dtype` (default: float64 when
    the framework's statistics are float64, else fp32 as the released code)."""
    from astra_repro.calibration import CalibrationSpec
    from astra_repro.calibration.data import build_samples
    from astra_repro.methods.astra import Astra, astra_options, select_columns
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
    weights = {n: m.weight.detach().clone() for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    covariances = straightforward_covariances(model, samples.input_ids, samples.attention_mask, targets, reference_dtype)
    del model
    model, tokenizer = load()
    ctx = InitContext(
        hp=HyperParams(rank=rank, alpha=alpha, dropout=0.0, target_modules=list(targets), learning_rate=0.0),
        options=method_options, tokenizer=tokenizer, seed=0, train_records=records,
        calibration=OmegaConf.create(calibration), cache_identity=dict(cache_identity or {}),
    )
    method = Astra()
    peft_model = method.initialize(model, ctx)
    records_by_layer = method.selections
    results = []
    for name, layer in lora_layers(peft_model).items():
        plain = name.removeprefix("base_model.model.")
        C = covariances[plain]
        d = C.shape[0]
        columns = select_columns(opts["subspace"], d, rank, opts["window_start"], ctx.seed + zlib.crc32(plain.encode()))
        B = layer.lora_B["default"].weight.detach()
        W_res = layer.get_base_layer().weight.detach()
        scaling = float(layer.scaling["default"]) if opts["residual_scaling"] == "alpha_over_r" else 1.0
        results.append(compare_module(plain, C, weights[plain], B, W_res, columns, scaling,
                                      records_by_layer.get(plain, {})))
    return results


def summarize(results: Sequence[ModuleParity]) -> dict[str, dict]:
    """Per layer type: the worst cosine and residual distance, and the column counts."""
    by_type: dict[str, list[ModuleParity]] = defaultdict(list)
    for row in results:
        by_type[row.layer_type].append(row)
    out = {}
    for layer_type, rows in by_type.items():
        worst = min(rows, key=lambda r: r.min_cosine)
        out[layer_type] = {
            "modules": len(rows),
            "min_cosine": worst.min_cosine,
            "worst_module": worst.name,
            "max_residual_rel": max(r.residual_rel for r in rows),
            "null_columns": sum(r.null_columns for r in rows),
            "rounding_columns": sum(r.rounding_columns for r in rows),
            "max_energy_ratio": max(r.energy_ratio for r in rows),
            "min_edge_gap_rel": min(r.edge_gap_rel for r in rows),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2_135m", help="a model config name under configs/model")
    parser.add_argument("--data", default=None, help="training records (jsonl: MetaMathQA/GSM8K/pissa fields); "
                        "default: the built-in synthetic math problems")
    parser.add_argument("--n-samples", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--algorithm", default="fast", choices=["fast", "direct"])
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--alpha", type=int, default=32)
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="an Astra option, e.g. subspace=smallest (repeatable)")
    parser.add_argument("--out", default=None, help="write every module's figures to this JSON file")
    args = parser.parse_args(argv)

    from astra_repro.models import load_model
    from astra_repro.paths import CONFIG_DIR

    model_cfg = OmegaConf.load(CONFIG_DIR / "model" / f"{args.model}.yaml")
    records = load_records(args.data)
    options = dict(option.split("=", 1) for option in args.option)
    calibration = dict(source="task", n_samples=args.n_samples, seq_len=args.seq_len, batch_size=1, seed=42,
                       padding="max_length", path=None, algorithm=args.algorithm)
    results = check(lambda: load_model(model_cfg), records, calibration, options, args.rank, args.alpha,
                    cache_identity={"model": args.model, "data": args.data or "synthetic"})
    summary = summarize(results)
    print(f"{'type':<10} {'modules':>7} {'min cos':>10} {'max resid':>10} {'null':>5} {'round':>6} {'max tr ratio':>13}  worst")
    for layer_type in TARGETS:
        if layer_type in summary:
            row = summary[layer_type]
            print(f"{layer_type:<10} {row['modules']:>7} {row['min_cosine']:>10.6f} {row['max_residual_rel']:>10.2e} "
                  f"{row['null_columns']:>5} {row['rounding_columns']:>6} {row['max_energy_ratio']:>13.6g}  {row['worst_module']}")
    if args.out:
        Path(args.out).write_text(json.dumps({"settings": vars(args), "summary": summary,
                                              "modules": [asdict(r) for r in results]}, indent=1))


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
