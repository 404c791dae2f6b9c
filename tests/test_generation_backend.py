"""The generation backend: auto picks HF without a GPU, an explicit vLLM that cannot run is a one-line error, and
the vLLM path sends the reference call (fp16, temperature 0, top_p 1, stop strings) to the merged model folder."""

import sys
import types

import pytest
import torch

from astra_repro.models import model_config
from astra_repro.errors import ConfigError
from astra_repro.evaluators import EvalTarget
from astra_repro.evaluators import generation


def test_auto_is_hf_on_this_machine_and_hf_is_always_hf():
    assert generation.resolve_backend("hf", "/some/folder") == "hf"
    if not torch.cuda.is_available():
        assert generation.resolve_backend("auto", "/some/folder") == "hf"
    assert generation.resolve_backend("auto", None) == "hf"  # nothing on disk for vLLM to load


def test_unknown_and_impossible_backends_name_the_fix(monkeypatch):
    with pytest.raises(ConfigError, match="unknown eval.backend 'tgi'; valid: auto, hf, vllm"):
        generation.resolve_backend("tgi", None)
    monkeypatch.setattr(generation.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="vLLM is not installed"):
        generation.resolve_backend("vllm", "/x")


class FakeLLM:
    calls = []

    def __init__(self, model, dtype, tensor_parallel_size):
        FakeLLM.calls.append(("init", model, dtype, tensor_parallel_size))

    def generate(self, prompts, params):
        FakeLLM.calls.append(("generate", list(prompts), params))
        return [types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"out:{p}")]) for p in prompts]


def test_vllm_path_makes_the_reference_call_on_the_folder(monkeypatch):
    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM
    fake.SamplingParams = lambda **kw: kw
    monkeypatch.setitem(sys.modules, "vllm", fake)
    monkeypatch.setattr(generation, "vllm_available", lambda: True)
    monkeypatch.setattr(generation.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(generation, "_VLLM_ENGINES", {})
    FakeLLM.calls.clear()
    target = EvalTarget(model=None, tokenizer=None, path="/runs/x/export/merged", backend="auto")
    outputs, info = generation.generate(target, ["a", "b"], max_new_tokens=7, batch_size=2, stop_strings=["Response"])
    assert outputs == ["out:a", "out:b"] and info["backend"] == "vllm" and info["dtype"] == "float16"
    init, call = FakeLLM.calls
    assert init[1:3] == ("/runs/x/export/merged", "float16")
    assert call[2] == {"temperature": 0.0, "top_p": 1.0, "max_tokens": 7, "stop": ["Response"]}
    generation.generate(target, ["c"], max_new_tokens=7, batch_size=2)
    assert [c[0] for c in FakeLLM.calls] == ["init", "generate", "generate"]  # one engine per folder


def test_hf_backend_needs_the_model_in_memory():
    with pytest.raises(ConfigError, match="needs the model in memory"):
        generation.generate(EvalTarget(None, None, "/x", "hf"), ["a"], max_new_tokens=1, batch_size=1)


@pytest.mark.parametrize("model_name, moved_to_gpu", [("tiny_t5", True), ("tiny_llama", False)])
def test_with_vllm_available_causal_models_go_to_vllm_but_t5_is_scored_on_the_gpu_in_memory(monkeypatch, tmp_path, model_name, moved_to_gpu):

    from astra_repro.models import load_model
    from astra_repro.evaluators.stage import evaluate_stage

    model, tokenizer = load_model(model_config(model_name))
    moved = []
    monkeypatch.setattr(generation, "resolve_backend", lambda requested, path: "vllm")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(model, "cuda", lambda: moved.append(True) or model)
    plan = {"recipe": "demo", "task": {"evaluators": {}}}
    evaluate_stage(plan, EvalTarget(model, tokenizer, "/some/folder", "auto"), tmp_path)
    assert bool(moved) == moved_to_gpu
