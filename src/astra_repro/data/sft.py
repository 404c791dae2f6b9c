"""Supervised fine-tuning features with the reference label masking (protocol §2.2).

The prompt (source) and the full text are tokenised separately, each truncated to `max_length`;
labels copy the input ids with the first len(source_ids) positions set to -100, so the loss covers only
the response and the EOS written as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from astra_repro.data.prompts import training_source, training_target

IGNORE_INDEX = -100


def tokenize_example(tokenizer, instruction: str, output: str, max_length: int) -> dict:
    source = training_source(instruction)
    full = source + training_target(output, tokenizer.eos_token)
    source_ids = tokenizer(source, truncation=True, max_length=max_length)["input_ids"]
    input_ids = tokenizer(full, truncation=True, max_length=max_length)["input_ids"]
    labels = list(input_ids)
    n_masked = min(len(source_ids), len(labels))
    labels[:n_masked] = [IGNORE_INDEX] * n_masked
    return {"input_ids": input_ids, "labels": labels}


def tokenize_records(tokenizer, records: Sequence[dict], max_length: int) -> list[dict]:
    return [tokenize_example(tokenizer, r["instruction"], r["output"], max_length) for r in records]


@dataclass
class SFTCollator:
    """Right-pads input ids with pad_id and labels with -100; attention_mask = input_ids != pad_id
    (as in the reference; with pad == eos this also masks the trailing real EOS, which is harmless)."""

    pad_token_id: int

    def __call__(self, features: Sequence[dict]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        for i, f in enumerate(features):
            input_ids[i, : len(f["input_ids"])] = torch.tensor(f["input_ids"])
            labels[i, : len(f["labels"])] = torch.tensor(f["labels"])
        return {"input_ids": input_ids, "labels": labels, "attention_mask": input_ids.ne(self.pad_token_id).long()}
