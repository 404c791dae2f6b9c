"""Greedy decoding on the in-memory HF model, two paths (`eval.generation`):

* ``regroup`` (default) - our own greedy loop over HF's KV cache. Finished rows (EOS, a stop string or the token
  cap) leave the batch, and when half the rows have left, the next prompts are prefilled and joined to the running
  batch: steps are not spent on finished rows, and the batch stays full. Prompts are prefilled in chunks of similar
  length (sorted longest first), so the prefill computes little padding; the template's head that every prompt
  starts with is computed once; and the cache appends into spare room instead of copying itself every step
  (`torch.cat` was a third of a CPU decoding step at 50 rows).
* ``padded`` - HF ``generate`` on fixed batches with left padding (the path before issue 20): a batch runs until
  its longest row ends, finished rows computing pad tokens all along.

Both are greedy argmax over the same logits, with the same stop strings, EOS set and token cap, so both give what
unpadded batch-1 decoding gives, up to fp32 near-ties (padding changes reduction lengths, hence the last bits of a
logit; tests/test_generation_speed.py measures how often that flips a token on real prompts).
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from tqdm.auto import tqdm
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

PATHS = ("regroup", "padded")

# generation_config fields that add a logits processor to HF's greedy decoding; `regroup` implements none of them,
# so a model that sets one is decoded by `padded` (HF applies them) rather than silently without them.
_PROCESSOR_FIELDS = {
    "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0, "bad_words_ids": None,
    "suppress_tokens": None, "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
    "min_length": 0, "min_new_tokens": None, "sequence_bias": None, "exponential_decay_length_penalty": None,
}


def regroup_unsupported(model) -> str | None:
    """Why `regroup` cannot decode this model exactly as HF greedy `generate` would, or None."""
    if getattr(model.config, "is_encoder_decoder", False):
        return "an encoder-decoder model"
    if any(type(layer) is not DynamicLayer for layer in DynamicCache(config=model.config).layers):
        return "a model with sliding-window or other non-full-attention cache layers"
    config = getattr(model, "generation_config", None)
    for name, neutral in _PROCESSOR_FIELDS.items():
        value = getattr(config, name, neutral)
        if value is not None and value != neutral and value != []:
            return f"generation_config.{name}={value!r}"
    return None


def eos_token_ids(model, tokenizer) -> set[int]:
    """The ids HF greedy `generate` stops on: the generation config's, else the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = tokenizer.eos_token_id
    return set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None}


class StopStringWatch:
    """Has a row's generated text reached a stop string? Decodes only its last few tokens (cheap), as the padded
    path's `StopOnSubstrings` does."""

    def __init__(self, tokenizer, stop_strings: Sequence[str], lookback_tokens: int = 12):
        self.tokenizer = tokenizer
        self.stop_strings = list(stop_strings)
        self.lookback = lookback_tokens

    def hit(self, rows_tokens: list[list[int]]) -> list[bool]:
        if not self.stop_strings:
            return [False] * len(rows_tokens)
        texts = self.tokenizer.batch_decode([t[-self.lookback :] for t in rows_tokens], skip_special_tokens=True)
        return [any(stop in text for stop in self.stop_strings) for text in texts]


def cache_keyword(model) -> str:
    """The forward argument that takes the KV cache: `cache` (transformers >= 5.2x), `past_key_values` before."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(type(base).forward).parameters else "past_key_values"


class SlackLayer(DynamicLayer):
    """A KV-cache layer that appends into spare room at the end of a larger buffer instead of concatenating.

    `keys`/`values` stay plain tensors (views of the buffer), so whatever reads or replaces them (HF's batch
    selection, `Batch.keep`, `join`) works unchanged; a replaced tensor is moved into a fresh buffer on the next
    append, which costs what one `torch.cat` did."""

    slack = 64  # spare columns per buffer: one reallocation every 64 steps

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._buffers: tuple[torch.Tensor, torch.Tensor] | None = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        old = self.keys.shape[-2] if self.keys.numel() else 0
        new = old + key_states.shape[-2]
        buffers = self._buffers
        ours = buffers is not None and self.keys.data_ptr() == buffers[0].data_ptr() and \
            self.values.data_ptr() == buffers[1].data_ptr() and self.keys.shape[0] == buffers[0].shape[0]
        if not ours or buffers[0].shape[2] < new:
            shape = (*key_states.shape[:2], new + self.slack, key_states.shape[3])
            buffers = (key_states.new_empty(shape), value_states.new_empty(shape))
            if old:
                buffers[0][:, :, :old] = self.keys
                buffers[1][:, :, :old] = self.values
            self._buffers = buffers
        buffers[0][:, :, old:new] = key_states
        buffers[1][:, :, old:new] = value_states
        self.keys, self.values = buffers[0][:, :, :new], buffers[1][:, :, :new]
        return self.keys, self.values

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        """Take buffers whose first `length` columns hold the cache; the rest is room for the next appends."""
        self.is_initialized = True
        self._buffers = (keys, values)
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]


def common_prefix(encoded: Sequence[Sequence[int]], min_tokens: int) -> list[int]:
    """The token ids every prompt starts with (the prompt template's head), at most each prompt's length - 1 (the
    last token's logits come from the per-prompt forward); [] if shorter than `min_tokens` (0: never shared) or
    fewer than 2 prompts."""
    if len(encoded) < 2 or min_tokens <= 0:
        return []
    prefix = list(os.path.commonprefix([list(ids) for ids in encoded]))
    prefix = prefix[: min(len(ids) for ids in encoded) - 1]
    return prefix if len(prefix) >= min_tokens else []


def new_cache(model) -> DynamicCache:
    cache = DynamicCache(config=model.config)
    cache.layers = [SlackLayer() for _ in cache.layers]
    return cache


@dataclass
class Batch:
    """The running rows: their KV cache, attention mask over the cache, each row's tokens so far, and which rows
    are done (a done row stays until enough rows are done to make removing them worth a copy of the cache)."""

    cache: DynamicCache
    mask: torch.Tensor  # [rows, cache length], 0 on left padding
    last: torch.Tensor  # [rows] the token to feed next
    prompt_index: list[int]
    generated: list[list[int]] = field(default_factory=list)
    done: list[bool] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.prompt_index)

    @property
    def live(self) -> int:
        return len(self) - sum(self.done)

    def drop_done(self) -> None:
        rows = [i for i, done in enumerate(self.done) if not done]
        if len(rows) == len(self):
            return
        index = torch.tensor(rows, dtype=torch.long, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask = self.mask[index]
        self.last = self.last[index]
        self.prompt_index = [self.prompt_index[i] for i in rows]
        self.generated = [self.generated[i] for i in rows]
        self.done = [False] * len(rows)
        self.trim_left()

    def trim_left(self) -> None:
        """Drop cache columns that are padding in every row (left behind by rows that have left)."""
        live = self.mask.any(dim=0).nonzero()
        first = int(live[0]) if len(live) else 0
        if first > 0:
            self.mask = self.mask[:, first:]
            for layer in self.cache.layers:
                layer.keys = layer.keys[:, :, first:]
                layer.values = layer.values[:, :, first:]


def join(*batches: Batch | None) -> Batch:
    """One batch from several (done rows dropped), each right-aligned in one new cache as long as the longest (the
    shorter ones' left columns masked): one copy of every cache, however many batches."""
    batches = [b for b in batches if b is not None]
    for batch in batches:
        batch.drop_done()
    live = [b for b in batches if len(b)] or batches[:1]
    if len(live) == 1:
        return live[0]
    width = max(b.mask.shape[1] for b in live)
    rows = sum(len(b) for b in live)
    cache = live[0].cache
    for index, layer in enumerate(cache.layers):
        parts = [b.cache.layers[index] for b in live]
        # Spare columns at the end, so that the next decoding steps append in place.
        keys = parts[0].keys.new_zeros(rows, parts[0].keys.shape[1], width + SlackLayer.slack, parts[0].keys.shape[3])
        values = torch.zeros_like(keys)
        at = 0
        for batch, part in zip(live, parts):
            length = part.keys.shape[2]
            keys[at : at + len(batch), :, width - length : width] = part.keys
            values[at : at + len(batch), :, width - length : width] = part.values
            at += len(batch)
        layer.adopt(keys, values, width)
    mask = torch.cat([torch.cat([b.mask.new_zeros(len(b), width - b.mask.shape[1]), b.mask], dim=1) for b in live])
    return Batch(
        cache=cache, mask=mask, last=torch.cat([b.last for b in live]),
        prompt_index=[i for b in live for i in b.prompt_index], generated=[t for b in live for t in b.generated],
        done=[d for b in live for d in b.done],
    )


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids as HF `generate` derives them from a left-padded mask (padding gets 1, never read)."""
    positions = mask.long().cumsum(-1) - 1
    return positions.masked_fill(mask == 0, 1)


def prefill_chunks(lengths: list[int], token_budget: int) -> list[int]:
    """How many of the (longest-first) prompts go into each prefill forward: as many as fit `token_budget` padded
    tokens, at least one. Small chunks of similar length compute little padding; the GEMMs stay large."""
    sizes, start = [], 0
    while start < len(lengths):
        size = 1
        while start + size < len(lengths) and (size + 1) * lengths[start] <= token_budget:
            size += 1
        sizes.append(size)
        start += size
    return sizes


def decode_step(model, last: torch.Tensor, mask: torch.Tensor, cache: DynamicCache, cache_kw: str):
    """One greedy step for every row: feed each row's last token, return the mask grown by its column and each
    row's next token. (scripts/bench_decode_floor.py times exactly this.)"""
    mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
    logits = model(input_ids=last[:, None], attention_mask=mask, position_ids=mask.sum(-1, keepdim=True) - 1,
                   use_cache=True, logits_to_keep=1, **{cache_kw: cache}).logits[:, -1]
    return mask, logits.argmax(-1)


@torch.no_grad()
def regroup_greedy(
    model,
    tokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int,
    stop_strings: Sequence[str] = (),
    desc: str = "generating",
    prefill_tokens: int = 1024,
    shared_prefix_min_tokens: int = 8,
) -> tuple[list[list[int]], dict]:
    """Greedy new-token ids for every prompt (in prompt order), and throughput figures.

    The prompts' common head (the template: 24 of GSM8K's ~96 tokens, 32 of HumanEval's ~141) is computed once and
    its cache copied into every row (`shared_prefix_min_tokens`, 0 = off); a row's cache then reads
    [head | padding | rest of its prompt], the padding masked."""
    model.eval()
    device = next(model.parameters()).device
    eos = eos_token_ids(model, tokenizer)
    cache_kw = cache_keyword(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    watch = StopStringWatch(tokenizer, stop_strings)
    encoded = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    # Longest first: prompts that join together have similar lengths (little padding); results keep prompt order.
    queue = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    refill_at = batch_size // 2  # join new prompts once half the rows have left
    outputs: dict[int, list[int]] = {}
    running: Batch | None = None
    counts = {"fills": 0, "decode_steps": 0, "prefill_forwards": 0, "prefill_tokens": 0, "prefill_padding": 0}
    seconds = {"prefill": 0.0, "decode": 0.0}
    start = time.perf_counter()
    bar = tqdm(total=len(prompts), desc=desc, unit="sample")

    head = common_prefix(encoded, shared_prefix_min_tokens)
    counts["shared_prefix_tokens"] = len(head)
    head_cache = None
    if head:
        started = time.perf_counter()
        head_cache = new_cache(model)
        model(input_ids=torch.tensor([head], device=device), position_ids=torch.arange(len(head), device=device)[None],
              use_cache=True, logits_to_keep=1, **{cache_kw: head_cache})
        counts["prefill_forwards"] += 1
        counts["prefill_tokens"] += len(head)
        seconds["prefill"] += time.perf_counter() - started

    def prefill_one(indices: list[int]) -> Batch:
        rests = [encoded[i][len(head) :] for i in indices]
        width = max(map(len, rests))
        ids = torch.tensor([[pad] * (width - len(rest)) + rest for rest in rests], device=device)
        mask = torch.tensor([[1] * len(head) + [0] * (width - len(rest)) + [1] * len(rest) for rest in rests], device=device)
        cache = new_cache(model)
        if head_cache is not None:  # every row starts from the shared head's keys and values
            for layer, shared in zip(cache.layers, head_cache.layers):
                layer.update(shared.keys.expand(len(indices), -1, -1, -1), shared.values.expand(len(indices), -1, -1, -1))
        logits = model(input_ids=ids, attention_mask=mask, position_ids=_positions(mask)[:, len(head) :], use_cache=True,
                       logits_to_keep=1, **{cache_kw: cache}).logits[:, -1]
        real = int(mask[:, len(head) :].sum())
        counts["prefill_forwards"] += 1
        counts["prefill_tokens"] += real
        counts["prefill_padding"] += ids.numel() - real
        last = logits.argmax(-1)
        return Batch(cache=cache, mask=mask, last=last, prompt_index=list(indices),
                     generated=[[token] for token in last.tolist()], done=[False] * len(indices))

    def prefill(indices: list[int]) -> Batch:
        started = time.perf_counter()
        counts["fills"] += 1
        chunks, at = [], 0
        for size in prefill_chunks([len(encoded[i]) - len(head) for i in indices], prefill_tokens):
            chunks.append(prefill_one(indices[at : at + size]))
            at += size
        batch = join(*chunks)
        seconds["prefill"] += time.perf_counter() - started
        return batch

    def retire(batch: Batch) -> None:
        """Mark the rows that just finished; drop done rows once they are an eighth of the batch."""
        live = [row for row, done in enumerate(batch.done) if not done]
        hits = watch.hit([batch.generated[row] for row in live])
        for row, hit in zip(live, hits):
            tokens = batch.generated[row]
            if tokens[-1] in eos or hit or len(tokens) >= max_new_tokens:
                batch.done[row] = True
                outputs[batch.prompt_index[row]] = tokens
                bar.update(1)
        if len(batch) - batch.live >= max(1, len(batch) // 8):
            batch.drop_done()

    try:
        while queue or (running is not None and running.live):
            if queue and (running is None or running.live <= refill_at):
                take = batch_size - (running.live if running is not None else 0)
                new = prefill(queue[:take])
                del queue[:take]
                retire(new)
                running = join(running, new)
                continue
            started = time.perf_counter()
            running.mask, running.last = decode_step(model, running.last, running.mask, running.cache, cache_kw)
            for tokens, token, done in zip(running.generated, running.last.tolist(), running.done):
                if not done:
                    tokens.append(token)
            counts["decode_steps"] += 1
            seconds["decode"] += time.perf_counter() - started
            retire(running)
            bar.set_postfix(rows=running.live, refresh=False)
    finally:
        bar.close()
    total = time.perf_counter() - start
    new_tokens = sum(len(t) for t in outputs.values())
    # Timings under `seconds` / `throughput` (they differ run to run); the counts are deterministic.
    stats = {"seconds": round(total, 3), "new_tokens": new_tokens, **counts, "throughput": {
        "samples_per_s": round(len(prompts) / max(total, 1e-9), 3), "tokens_per_s": round(new_tokens / max(total, 1e-9), 2),
        "prefill_s": round(seconds["prefill"], 3), "decode_s": round(seconds["decode"], 3)}}
    return [outputs[i] for i in range(len(prompts))], stats
