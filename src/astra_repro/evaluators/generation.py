"""Greedy generation behind one call, two backends:

* ``hf``   - greedy decoding with the KV cache and stop strings on the in-memory model (the HF equivalent of the
             reference vLLM call with temperature 0); CPU or GPU. `eval.generation` picks how rows are batched:
             ``regroup`` (default; finished rows leave, new prompts join) or ``padded`` (HF ``generate`` on fixed
             left-padded batches), see evaluators/decoding.py.
* ``vllm`` - what the authors ran (``LLM(model, dtype="float16")``, ``SamplingParams(temperature=0, top_p=1,
             max_tokens, stop)``) on the model folder (a run's ``export/merged``); needs vLLM and a GPU.

``eval.backend=auto`` picks vLLM when it is importable, a GPU is present and the target has a folder on disk, and
HF otherwise. Both return the completion with the stop string cut off, so records look the same either way.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm
from transformers import StoppingCriteria, StoppingCriteriaList

from astra_repro.errors import ConfigError
from astra_repro.evaluators import decoding

log = logging.getLogger(__name__)
BACKENDS = ("auto", "hf", "vllm")
GENERATION_PATHS = decoding.PATHS


class StopOnSubstrings(StoppingCriteria):
    """Marks a sequence done once its generated text contains a stop string.

    transformers' built-in `stop_strings` precomputes token-overlap tables over the whole vocabulary and
    costs ~2 s per step on CPU for a 49k vocabulary; decoding the last few new tokens is ~1000x cheaper.
    """

    def __init__(self, tokenizer, stop_strings: Sequence[str], prompt_length: int, lookback_tokens: int = 12):
        self.tokenizer = tokenizer
        self.stop_strings = list(stop_strings)
        self.prompt_length = prompt_length
        self.lookback = lookback_tokens

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        tails = input_ids[:, max(self.prompt_length, input_ids.shape[1] - self.lookback) :]
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        done = [any(stop in text for stop in self.stop_strings) for text in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def truncate_at_stop(text: str, stop_strings: Sequence[str]) -> str:
    """Cut at the earliest stop string, as vLLM does (the stop string itself is not returned)."""
    cut = len(text)
    for stop in stop_strings:
        pos = text.find(stop)
        if pos != -1:
            cut = min(cut, pos)
    return text[:cut]


def generate_greedy(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    stop_strings: Sequence[str] = (),
    desc: str = "generating",
    path: str = "regroup",
) -> tuple[list[str], dict]:
    """Greedy completions (stop string cut off) on the in-memory model, and how they were made: the path that ran
    (`regroup` falls back to `padded`, saying why, for a model it cannot decode as HF would) and its throughput."""
    if path not in GENERATION_PATHS:
        raise ConfigError(f"eval.generation='{path}' is not valid; use one of {', '.join(GENERATION_PATHS)}")
    info: dict = {"generation_path": path}
    if path == "regroup":
        reason = decoding.regroup_unsupported(model)
        if reason is not None:
            log.info("%s: eval.generation=regroup cannot decode %s as HF does; using padded", desc, reason)
            info.update(generation_path="padded", generation_path_reason=f"regroup does not support {reason}")
    if info["generation_path"] == "regroup":
        token_ids, stats = decoding.regroup_greedy(model, tokenizer, prompts, max_new_tokens, batch_size, stop_strings, desc)
        texts = [truncate_at_stop(text, stop_strings) for text in tokenizer.batch_decode(token_ids, skip_special_tokens=True)]
        info.update(stats)
    else:
        start = time.perf_counter()
        texts = padded_greedy(model, tokenizer, prompts, max_new_tokens, batch_size, stop_strings, desc)
        seconds = time.perf_counter() - start
        info.update(seconds=round(seconds, 3), throughput={"samples_per_s": round(len(prompts) / max(seconds, 1e-9), 3)})
    return texts, info


@torch.no_grad()
def padded_greedy(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    stop_strings: Sequence[str] = (),
    desc: str = "generating",
) -> list[str]:
    """HF `generate` on fixed batches, left-padded: the path before issue 20 (`eval.generation=padded`)."""
    model.eval()
    device = next(model.parameters()).device
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    # Longest prompts first: batches hold similar lengths, so less padding; order restored at the end.
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    by_index: dict[int, str] = {}
    try:
        for start in tqdm(range(0, len(order), batch_size), desc=desc, unit="batch", postfix={"batch": batch_size}):
            idx = order[start : start + batch_size]
            enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True).to(device)
            gen = model.generate(
                **enc,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                stopping_criteria=StoppingCriteriaList(
                    [StopOnSubstrings(tokenizer, stop_strings, enc["input_ids"].shape[1])] if stop_strings else []
                ),
                pad_token_id=tokenizer.pad_token_id,
                use_cache=True,
            )
            new_tokens = gen[:, enc["input_ids"].shape[1] :]
            for i, text in zip(idx, tokenizer.batch_decode(new_tokens, skip_special_tokens=True)):
                by_index[i] = truncate_at_stop(text, stop_strings)
    finally:
        tokenizer.padding_side = old_side
    return [by_index[i] for i in range(len(prompts))]


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def resolve_backend(requested: str, model_path: str | None) -> str:
    """The backend that will run: `auto` -> vllm when possible, else hf. An explicit `vllm` that cannot run is an
    error naming the fix, never a silent fallback (the numbers would come from another engine)."""
    if requested not in BACKENDS:
        raise ConfigError(f"unknown eval.backend '{requested}'; valid: {', '.join(BACKENDS)}")
    if requested == "hf":
        return "hf"
    possible = vllm_available() and model_path is not None
    if requested == "auto":
        return "vllm" if possible else "hf"
    if importlib.util.find_spec("vllm") is None:
        raise ConfigError("eval.backend=vllm but vLLM is not installed; pip install vllm (GPU) or set eval.backend=hf")
    if not torch.cuda.is_available():
        raise ConfigError("eval.backend=vllm needs a CUDA GPU; set eval.backend=hf on this machine")
    if model_path is None:
        raise ConfigError("eval.backend=vllm needs the model saved in a folder (e.g. a run's export/merged); set eval.backend=hf")
    return "vllm"


_VLLM_ENGINES: dict[str, Any] = {}


def vllm_generate(model_path: str, prompts: Sequence[str], max_new_tokens: int, stop_strings: Sequence[str]) -> list[str]:
    """The reference call (utils/gen_vllm.py, MATH_inference.py): fp16, temperature 0, top_p 1. One engine per folder
    and process (loading one costs tens of seconds; GSM8K and MATH share it)."""
    from vllm import LLM, SamplingParams

    if model_path not in _VLLM_ENGINES:
        _VLLM_ENGINES[model_path] = LLM(model=model_path, dtype="float16", tensor_parallel_size=max(1, torch.cuda.device_count()))
    params = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=max_new_tokens, stop=list(stop_strings) or None)
    outputs = _VLLM_ENGINES[model_path].generate(list(prompts), params)
    return [out.outputs[0].text for out in outputs]


def generate(
    target,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    stop_strings: Sequence[str] = (),
    desc: str = "generating",
) -> tuple[list[str], dict]:
    """Greedy completions for `prompts` from an `EvalTarget`, and a description of how they were made (backend,
    generation path, dtype, batch size, throughput)."""
    backend = resolve_backend(target.backend, target.path)
    info = {"backend": backend, "decoding": "greedy", "max_new_tokens": max_new_tokens, "stop_strings": list(stop_strings)}
    if backend == "vllm":
        log.info("%s: vLLM (fp16) on %s, %d prompts", desc, target.path, len(prompts))
        outputs = vllm_generate(target.path, prompts, max_new_tokens, stop_strings)
        info["dtype"] = "float16"
    else:
        if target.model is None:
            raise ConfigError(f"{desc}: the HF backend needs the model in memory; load it first (or use eval.backend=vllm)")
        outputs, path_info = generate_greedy(
            target.model, target.tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
            stop_strings=stop_strings, desc=desc, path=target.generation,
        )
        info.update(path_info)
        info["dtype"] = str(next(target.model.parameters()).dtype).replace("torch.", "")
        info["batch_size"] = batch_size
    return outputs, info
