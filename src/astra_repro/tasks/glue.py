"""GLUE (SST-2, CoLA, MRPC, QNLI, MNLI) as LoRA-GA's `reproduce/` code runs it on T5-base (paper Tables 1 and 9;
protocol §3.5): x = "{instruction}{text}\\nresult: ", y = the label word.

On an encoder-decoder model (the paper's T5-base) x is the encoder input and y the decoder target; the targets are
padded with the pad id and NOT masked (LoRA-GA's `ignore_masked_token=False`), unless `mask_label_padding=true`.
On a causal LM (the offline demo: no PyPI package ships T5 weights) the same strings are concatenated: the prompt
is x without its trailing space and the target " {label word}" + EOS, with the prompt masked as in SFT, so the label
word is the prompt's next token (`space_in_target`: with byte-level BPE tokenizers the trailing space of x moves into
the target, " negative", so the label word is one distinct token). Choose the GLUE task with
`task.glue_task=sst2|cola|mrpc|qnli|mnli`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from astra_repro.data import glue_sources
from astra_repro.data.sft import IGNORE_INDEX, SFTCollator
from astra_repro.tasks.base import Task, register_task


def space_in_target(tokenizer, task: str) -> bool:
    """Causal LMs: whether x's trailing space moves into the target (" negative"). Byte-level BPE tokenizers (SmolLM2,
    Llama-3) read a word-initial label word as one distinct token only with its space; a tokenizer whose " word"
    pieces all start with the same space token (character level) keeps LoRA-GA's x as is and the bare word."""
    from astra_repro.errors import ConfigError

    try:
        glue_sources.label_word_token_ids(tokenizer, task, leading_space=True)
        return True
    except ConfigError:
        return False


def causal_prompt(x: str, space_moved: bool) -> str:
    return x.rstrip(" ") if space_moved else x


def glue_pair(task: str, example: dict) -> dict:
    """{"instruction": x, "output": y, "label": int}: what training, calibration and records use."""
    return {
        "instruction": glue_sources.format_glue_input(task, example),
        "output": glue_sources.label_word(task, example["label"]),
        "label": example["label"],
    }


def seq2seq_features(tokenizer, records: Sequence[dict], max_length: int) -> list[dict]:
    """LoRA-GA's SeqToSeqEncode: x and y each tokenised and truncated at max_length (padding comes in the collator)."""
    return [
        {
            "input_ids": tokenizer(r["instruction"], truncation=True, max_length=max_length)["input_ids"],
            "labels": tokenizer(r["output"], truncation=True, max_length=max_length)["input_ids"],
        }
        for r in records
    ]


def causal_features(tokenizer, records: Sequence[dict], max_length: int, space_moved: bool) -> list[dict]:
    features = []
    for r in records:
        source = causal_prompt(r["instruction"], space_moved)
        target = (" " if space_moved else "") + r["output"] + tokenizer.eos_token
        source_ids = tokenizer(source, truncation=True, max_length=max_length)["input_ids"]
        input_ids = tokenizer(source + target, truncation=True, max_length=max_length)["input_ids"]
        n_masked = min(len(source_ids), len(input_ids))
        features.append({"input_ids": input_ids, "labels": [IGNORE_INDEX] * n_masked + input_ids[n_masked:]})
    return features


@dataclass
class Seq2SeqCollator:
    """Batch-longest padding of x and y. Label padding is the pad id (LoRA-GA: the loss also covers pads) or -100
    with `mask_label_padding`; `decoder_attention_mask` marks the real target tokens, as LoRA-GA passes it."""

    pad_token_id: int
    mask_label_padding: bool = False

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        def pad(rows: list[list[int]], value: int) -> tuple[torch.Tensor, torch.Tensor]:
            width = max(len(r) for r in rows)
            ids = torch.full((len(rows), width), value, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, r in enumerate(rows):
                ids[i, : len(r)] = torch.tensor(r)
                mask[i, : len(r)] = 1
            return ids, mask

        input_ids, attention_mask = pad([f["input_ids"] for f in features], self.pad_token_id)
        label_pad = IGNORE_INDEX if self.mask_label_padding else self.pad_token_id
        labels, decoder_attention_mask = pad([f["labels"] for f in features], label_pad)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels,
                "decoder_attention_mask": decoder_attention_mask}


@register_task
class GlueTask(Task):
    name = "glue"
    description = "GLUE SST-2/CoLA/MRPC/QNLI/MNLI, LoRA-GA's label-word format; T5-base (paper) or a causal LM (demo)"
    model_kinds = ("seq2seq", "causal_lm")

    @property
    def glue_task(self) -> str:
        return glue_sources.get_task(self.cfg.glue_task).name

    @property
    def variant(self) -> str:
        return self.glue_task

    def load_training_records(self) -> tuple[list[dict], dict]:
        examples, info = glue_sources.load_glue_split(self.glue_task, "train", self.cfg.data)
        return [glue_pair(self.glue_task, ex) for ex in examples], info

    def training_features(self, tokenizer: Any, records: Sequence[dict], max_length: int) -> list[dict]:
        if self.model_kind == "seq2seq":
            return seq2seq_features(tokenizer, records, max_length)
        return causal_features(tokenizer, records, max_length, space_in_target(tokenizer, self.glue_task))

    def collator(self, tokenizer: Any):
        if self.model_kind == "seq2seq":
            return Seq2SeqCollator(tokenizer.pad_token_id, bool(self.cfg.get("mask_label_padding", False)))
        return SFTCollator(tokenizer.pad_token_id)
