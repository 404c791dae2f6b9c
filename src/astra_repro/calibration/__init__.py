"""The calibration stage: per-layer activation statistics for every data-driven init (Astra, CorDA, ...).

    spec = CalibrationSpec.from_config(cfg.calibration, cfg.method, where="output")
    covariances = collect_covariances(model, tokenizer, records, spec, target_modules, cache_identity)

Runs in one process, before any distributed training, on the plain (un-adapted) model. Results are cached on
disk under `cache_dir()/calibration/`, keyed by everything that changes them (see `cache.py`).

Causal LMs get `model(input_ids, attention_mask)`. Encoder-decoders (T5) get the source x in the encoder and, per
`spec.seq2seq_forward`, the teacher-forced target y or only the start token in the decoder (see data.py); each
layer's rows are masked with the mask of the sequence it runs over (`models.activation_stream`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from astra_repro.calibration.cache import (
    cache_path,
    calibration_cache_key,
    calibration_key_payload,
    load_cached,
    save_cached,
)
from astra_repro.calibration.data import build_samples, iterate_model_batches, load_wikitext2_lines
from astra_repro.calibration.spec import CalibrationSpec
from astra_repro.calibration.statistics import (
    ActivationRecorder,
    CovarianceAccumulator,
    LayerStatistics,
    Spectrum,
    StopForward,
    effective_rank,
    eigen_decompose,
    find_target_linears,
    spectrum,
    uses_fast_algorithm,
)
from astra_repro import runs
from astra_repro.errors import ConfigError
from astra_repro.models import activation_stream, is_seq2seq
from astra_repro.profiling import StageMeter

log = logging.getLogger(__name__)


def collect_covariances(
    model: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[dict],
    spec: CalibrationSpec,
    target_modules: Sequence[str],
    cache_identity: Mapping | None = None,
    report: dict | None = None,
) -> dict[str, torch.Tensor]:
    """Module name (as in the plain model, e.g. "model.layers.0.self_attn.q_proj") -> fp32 CPU covariance of that
    layer's outputs (spec.where="output") or inputs ("input"), computed as the reference does (see statistics.py).

    `records` are dicts with "instruction" and "output" (ignored for source="wikitext2"); for an encoder-decoder
    they are the (encoder input x, target y) texts exactly as the task trains on them. `target_modules` are
    PEFT-style names (suffixes like "q_proj" or full module names). A second call with the same key loads the cache.
    Materialises every d_out x d_out matrix: an init should use `collect_statistics` + `spectrum` layer by layer.
    """
    statistics = collect_statistics(model, tokenizer, records, spec, target_modules, cache_identity, report)
    layers = find_target_linears(model, target_modules)
    return {name: statistics.pop(name).covariance(layers[name].weight) for name in list(statistics)}


def collect_statistics(
    model: torch.nn.Module,
    tokenizer: Any,
    records: Sequence[dict],
    spec: CalibrationSpec,
    target_modules: Sequence[str],
    cache_identity: Mapping | None = None,
    report: dict | None = None,
) -> dict[str, LayerStatistics]:
    """Module name -> LayerStatistics (see statistics.py): what `collect_covariances` returns, kept on the input
    side for layers with more outputs than inputs under the fast algorithm. `report`, when given, receives
    report["calibration"] = seconds, samples/s, extra peak memory, whether the cache answered, the cache file."""
    layers = find_target_linears(model, target_modules)
    if not layers:
        raise ConfigError(f"no nn.Linear in the model matches target_modules {list(target_modules)}; fix model.target_modules")
    first_param = next(model.parameters())
    accumulate_dtype = {"model": first_param.dtype, "float32": torch.float32, "float64": torch.float64}[spec.accumulate_dtype]

    seq2seq = is_seq2seq(model)
    start_id = None
    if seq2seq:
        start_id = getattr(model.config, "decoder_start_token_id", None)
        if start_id is None:
            raise ConfigError("this encoder-decoder model has no config.decoder_start_token_id; set it (T5: the pad id)")
    samples = build_samples(tokenizer, records, spec, decoder_start_token_id=start_id)
    extra = {
        "accumulate_dtype": str(accumulate_dtype),
        "padding_side": samples.padding_side,
        "samples_sha256": samples.fingerprint,
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "vocab_size": len(tokenizer),
            "bos": tokenizer.bos_token_id,
            "eos": tokenizer.eos_token_id,
        },
    }
    if seq2seq:
        extra["seq2seq"] = {"decoder_start_token_id": start_id, "pad": tokenizer.pad_token_id}
    payload = calibration_key_payload(spec, layers, cache_identity, samples.n_pool, extra)
    key = calibration_cache_key(spec, layers, cache_identity, samples.n_pool, extra)
    meter = StageMeter(first_param.device)
    # Two runs that need the same statistics compute them once: the second waits here, then loads the cache.
    with runs.FolderLock(cache_path(key).parent, "calibration cache", wait=True, name=f".{key}.lock"):
        return _collect_or_load(model, tokenizer, samples, spec, layers, key, payload, meter, accumulate_dtype,
                                seq2seq, start_id, report)


def _collect_or_load(model, tokenizer, samples, spec, layers, key, payload, meter, accumulate_dtype, seq2seq, start_id,
                     report):
    with meter:
        cached = load_cached(key)
    if cached is not None:
        if set(cached) != set(layers):
            raise RuntimeError(f"calibration cache {key} holds other layers than the targets; delete it")
        if report is not None:
            report["calibration"] = {"cached": True, "cache_file": str(cache_path(key)), **meter.as_record("calibration")}
        return cached

    if seq2seq:
        n_src = sum(len(x) for x in samples.input_ids)
        n_tgt = sum(len(x) for x in samples.decoder_input_ids)
        log.info(
            "calibration (seq2seq, %s - our assumption): %s source, %d samples, %d encoder + %d decoder positions, "
            "batch %d, normalize=%s, center=%s, accumulate in %s, hook on %ss of %d layers "
            "(prompt/padding settings apply to causal LMs only)",
            spec.seq2seq_forward, spec.source, len(samples), n_src, n_tgt, spec.batch_size, spec.normalize,
            spec.center, str(accumulate_dtype).replace("torch.", ""), spec.where, len(layers),
        )
    else:
        log.info(
            "calibration: %s source, %d samples x %d positions, batch %d, padding %s (side: %s), include_padding=%s, "
            "normalize=%s, center=%s, accumulate in %s, hook on %ss of %d layers",
            spec.source, len(samples), spec.rows_per_sample, spec.batch_size, spec.padding, samples.padding_side,
            spec.include_padding, spec.normalize, spec.center, str(accumulate_dtype).replace("torch.", ""), spec.where,
            len(layers),
        )
    streams = {name: activation_stream(model, name) for name in layers}
    with meter:
        recorder = ActivationRecorder(layers, spec, accumulate_dtype, streams)
        try:
            run_calibration_pass(model, recorder, samples, spec, tokenizer, start_id)
            statistics = recorder.statistics()
        except FloatingPointError as err:
            raise ConfigError(
                f"{err}; the model gives inf/NaN on the calibration data (fp16 overflow? load the model in "
                "float32 or bfloat16: model.dtype=...)"
            ) from None
        except ValueError as err:
            if "no calibration rows" not in str(err):
                raise
            raise ConfigError(
                f"calibration: {err}: the layer never ran in the forward pass or every position was masked out; "
                "check model.target_modules, or set calibration.include_padding=true"
            ) from None
        save_cached(key, statistics, payload)
    kinds = Counter(stats.kind for stats in statistics.values())
    log.info(
        "calibration: %d samples in %.1f s (%.2f samples/s), +%.2f GB peak; %s",
        len(samples), meter.seconds, len(samples) / max(meter.seconds, 1e-9), meter.extra_peak_gb,
        ", ".join(f"{n} layers {kind}" for kind, n in sorted(kinds.items())),
    )
    if report is not None:
        report["calibration"] = {
            "cached": False,
            "cache_file": str(cache_path(key)),
            "algorithm": "fast" if uses_fast_algorithm(spec, accumulate_dtype) else "direct",
            "samples": len(samples),
            "samples_per_s": round(len(samples) / max(meter.seconds, 1e-9), 3),
            "statistics_kinds": dict(kinds),
            "forward_cut_after": recorder.stop_after,
            **meter.as_record("calibration"),
        }
    return statistics


def run_calibration_pass(model, recorder: ActivationRecorder, samples, spec: CalibrationSpec, tokenizer, start_id) -> None:
    """One forward pass over every sample with the recorder's hooks on, in eval mode, with a progress bar
    (samples/s and ETA). The pass stops after the last target layer once the first batch has shown that every
    target runs exactly once per forward (the LM head's logits are never needed)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if is_seq2seq(model):
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else start_id
    else:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    progress = tqdm(total=len(samples), desc="calibration", unit="sample", leave=False, dynamic_ncols=True)
    try:
        with torch.no_grad():
            for index, (inputs, row_masks) in enumerate(iterate_model_batches(samples, spec.batch_size, pad_id)):
                recorder.row_masks = {stream: mask.to(device) for stream, mask in row_masks.items()}
                try:
                    model(**{k: None if v is None else v.to(device) for k, v in inputs.items()}, use_cache=False)
                except StopForward:
                    pass
                if index == 0:  # the cut changes no statistic, on either algorithm
                    order = recorder.call_order
                    if len(order) == len(set(order)) == len(recorder.accumulators):
                        recorder.stop_after = order[-1]
                progress.update(int(inputs["input_ids"].shape[0]))
    finally:
        progress.close()
        recorder.remove()
        model.train(was_training)


__all__ = [
    "CalibrationSpec",
    "CovarianceAccumulator",
    "LayerStatistics",
    "Spectrum",
    "calibration_cache_key",
    "calibration_key_payload",
    "collect_covariances",
    "collect_statistics",
    "effective_rank",
    "eigen_decompose",
    "find_target_linears",
    "load_wikitext2_lines",
    "spectrum",
]
