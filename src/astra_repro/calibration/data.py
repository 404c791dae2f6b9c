"""Calibration samples, drawn and tokenised the way the reference code does (protocol §1.1).

task source:   random.Random(seed).sample(range(len(records)), N) over the *whole* record list; text from
               `calibration_text`; truncate/pad to seq_len with EOS as the pad id; drop the last position.
wikitext2:     N sampled lines joined with "\\n\\n", tokenised once, cut into consecutive seq_len blocks
               (usually far fewer than N), first seq_len - 1 tokens of each, no padding, no mask.

Encoder-decoder models (T5 on GLUE; OUR assumption, the authors never released a T5 calibration):
task source:   the same seeded sample of records; each record is an (x, y) pair - record["instruction"] is the exact
               encoder input text x, record["output"] the exact target text y (a seq2seq task formats its records so,
               e.g. GLUE's "{instruction}{sentence}\\nresult: " -> "positive"). x and y are tokenised separately with
               truncation at seq_len and no padding, like LoRA-GA's SeqToSeqEncode at batch size 1 (the tokenizer adds
               its EOS; nothing is dropped). `seq2seq_forward` says what the decoder sees: "teacher_forced" = the
               shifted target [start] + y[:-1] (one row per target token), "source_only" = the start token alone.
               The causal-only settings (prompt, padding, padding_side) do not apply; batches > 1 pad each stream to
               the batch's longest and those pads are never rows of the statistics.
wikitext2:     blocks as above go to the encoder; only "source_only" is defined (there is no target text).
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from astra_repro.calibration.spec import CalibrationSpec
from astra_repro.data.prompts import calibration_text
from astra_repro.errors import ConfigError
from astra_repro.paths import hub_offline

log = logging.getLogger(__name__)


@dataclass
class CalibrationSamples:
    """Tokenised samples ready for batching. `row_mask` marks the positions whose activations enter the
    statistics; `attention_mask` is what the model sees (None = no mask, as in the wikitext2 path)."""

    input_ids: list[list[int]]
    attention_mask: list[list[int]] | None
    row_mask: list[list[int]]
    fingerprint: str  # sha256 of the sampled texts: the cache key covers the data actually used
    padding_side: str
    n_pool: int  # records (task) or lines (wikitext2) the samples were drawn from
    # Encoder-decoder models only: what the decoder is fed per sample, and which of its positions count.
    decoder_input_ids: list[list[int]] | None = None
    decoder_row_mask: list[list[int]] | None = None

    @property
    def is_seq2seq(self) -> bool:
        return self.decoder_input_ids is not None

    def __len__(self) -> int:
        return len(self.input_ids)


def sample_indices(n_records: int, spec: CalibrationSpec) -> list[int]:
    if spec.n_samples > n_records:
        raise ConfigError(
            f"calibration asks for {spec.n_samples} samples but only {n_records} records exist; "
            "lower calibration.n_samples"
        )
    # Same stream as the reference's `random.seed(42); random.sample(...)`.
    return random.Random(spec.seed).sample(range(n_records), spec.n_samples)


def load_wikitext2_lines(path: str | Path | None = None) -> list[str]:
    """WikiText-2 (raw) train rows as the HF dataset gives them: non-blank rows end in "\\n", blank rows are "".

    A local file (raw text, one row per line, CRLF or LF) is read when `path` is given; otherwise the HF dataset
    is downloaded, which needs the hub.
    """
    if path:
        file = Path(path).expanduser()
        if not file.exists():
            raise ConfigError(f"wikitext2 calibration file '{file}' does not exist; fix calibration.path=/file")
        text = file.read_text(encoding="utf-8")
        return [line.rstrip("\r\n") + "\n" if line.strip() else "" for line in text.splitlines()]
    if hub_offline():
        raise ConfigError(
            "wikitext2 calibration needs the hub, which is offline; give a local raw text file with calibration.path=/file"
        )
    try:
        import datasets

        return list(datasets.load_dataset("wikitext", "wikitext-2-raw-v1", split="train")["text"])
    except Exception as err:  # noqa: BLE001 - any download failure has the same fix
        raise ConfigError(
            f"could not load wikitext-2-raw-v1 ({type(err).__name__}); give a local raw text file with calibration.path=/file"
        ) from None


def build_samples(
    tokenizer: Any,
    records: Sequence[dict],
    spec: CalibrationSpec,
    decoder_start_token_id: int | None = None,
) -> CalibrationSamples:
    """Calibration samples for a causal LM, or for an encoder-decoder when `decoder_start_token_id` is given
    (the model's `config.decoder_start_token_id`; T5: the pad id)."""
    if decoder_start_token_id is not None:
        if spec.source == "wikitext2":
            return _wikitext2_seq2seq_samples(tokenizer, load_wikitext2_lines(spec.path), spec, decoder_start_token_id)
        return _seq2seq_samples(tokenizer, records, spec, decoder_start_token_id)
    if spec.source == "wikitext2":
        return _wikitext2_samples(tokenizer, load_wikitext2_lines(spec.path), spec)
    return _task_samples(tokenizer, records, spec)


def padding_side(tokenizer: Any, spec: CalibrationSpec) -> str:
    return getattr(tokenizer, "padding_side", "right") if spec.padding_side == "tokenizer" else spec.padding_side


def _task_samples(tokenizer: Any, records: Sequence[dict], spec: CalibrationSpec) -> CalibrationSamples:
    eos_id = tokenizer.eos_token_id
    if eos_id is None:
        raise ConfigError("calibration pads with the EOS token, but the tokenizer has none; use a tokenizer with eos_token")
    side = padding_side(tokenizer, spec)
    texts = []
    for index in sample_indices(len(records), spec):
        record = records[index]
        texts.append(calibration_text(record["instruction"], record["output"], spec.prompt, tokenizer.eos_token or ""))
    input_ids, attention_mask = [], []
    for text in texts:
        # Tokenise unpadded and pad by hand with EOS: identical to `padding="max_length"` with pad_token_id = eos
        # (the reference's setting) without mutating the caller's tokenizer.
        ids = list(tokenizer(text, truncation=True, max_length=spec.seq_len)["input_ids"])
        mask = [1] * len(ids)
        if spec.padding == "max_length" and len(ids) < spec.seq_len:
            pad = spec.seq_len - len(ids)
            if side == "left":
                ids, mask = [eos_id] * pad + ids, [0] * pad + mask
            else:
                ids, mask = ids + [eos_id] * pad, mask + [0] * pad
        # The reference feeds input_ids[:-1] (its labels are the shifted ids): seq_len - 1 positions.
        input_ids.append(ids[:-1])
        attention_mask.append(mask[:-1])
    if spec.include_padding:
        row_mask = [[1] * len(ids) for ids in input_ids]
    else:
        row_mask = [list(mask) for mask in attention_mask]
    return CalibrationSamples(input_ids, attention_mask, row_mask, _fingerprint(texts), side, len(records))


def _wikitext2_samples(tokenizer: Any, lines: Sequence[str], spec: CalibrationSpec) -> CalibrationSamples:
    chosen = [lines[i] for i in sample_indices(len(lines), spec)]
    text = "\n\n".join(chosen)
    ids = list(tokenizer(text)["input_ids"])
    n_blocks = len(ids) // spec.seq_len
    if n_blocks == 0:
        raise ConfigError(
            f"wikitext2 calibration text has {len(ids)} tokens, fewer than one block of {spec.seq_len}; "
            "raise calibration.n_samples"
        )
    blocks = [ids[i * spec.seq_len : (i + 1) * spec.seq_len][:-1] for i in range(n_blocks)]
    log.info("wikitext2 calibration: %d lines -> %d tokens -> %d blocks of %d", len(chosen), len(ids), n_blocks, spec.seq_len - 1)
    row_mask = [[1] * len(block) for block in blocks]
    return CalibrationSamples(blocks, None, row_mask, _fingerprint([text]), padding_side(tokenizer, spec), len(lines))


def _seq2seq_samples(tokenizer: Any, records: Sequence[dict], spec: CalibrationSpec, start_id: int) -> CalibrationSamples:
    sources, targets = [], []
    for index in sample_indices(len(records), spec):
        record = records[index]
        sources.append(record["instruction"])
        targets.append(record["output"])
    input_ids = [list(tokenizer(x, truncation=True, max_length=spec.seq_len)["input_ids"]) for x in sources]
    if spec.seq2seq_forward == "teacher_forced":
        labels = [list(tokenizer(text_target=y, truncation=True, max_length=spec.seq_len)["input_ids"]) for y in targets]
        # Teacher forcing as the model's own shift_right(labels): decoder input t is the start token, then y_{t-1}.
        decoder = [[start_id] + y[:-1] if y else [start_id] for y in labels]
    else:
        decoder = [[start_id] for _ in sources]
    return CalibrationSamples(
        input_ids=input_ids,
        attention_mask=[[1] * len(ids) for ids in input_ids],
        row_mask=[[1] * len(ids) for ids in input_ids],
        fingerprint=_fingerprint([*sources, "\x01", *targets]),
        padding_side="right",
        n_pool=len(records),
        decoder_input_ids=decoder,
        decoder_row_mask=[[1] * len(d) for d in decoder],
    )


def _wikitext2_seq2seq_samples(tokenizer: Any, lines: Sequence[str], spec: CalibrationSpec, start_id: int) -> CalibrationSamples:
    if spec.seq2seq_forward != "source_only":
        raise ConfigError(
            "wikitext2 calibration has no target text to teacher-force into a seq2seq decoder; "
            "set calibration.seq2seq_forward=source_only"
        )
    samples = _wikitext2_samples(tokenizer, lines, spec)
    samples.decoder_input_ids = [[start_id] for _ in samples.input_ids]
    samples.decoder_row_mask = [[1] for _ in samples.input_ids]
    return samples


def iterate_model_batches(samples: CalibrationSamples, batch_size: int, pad_id: int):
    """Yield (model keyword arguments, {stream: row mask}) per batch, for a causal LM ("source" only: the
    `iterate_batches` tensors) or an encoder-decoder ("source" = encoder positions, "target" = decoder positions;
    each stream right-padded with pad_id to the batch's longest, pads masked and never rows)."""
    if not samples.is_seq2seq:
        for input_ids, attention_mask, row_mask in iterate_batches(samples, batch_size, pad_id):
            yield {"input_ids": input_ids, "attention_mask": attention_mask}, {"source": row_mask}
        return
    for start in range(0, len(samples), batch_size):
        stop = min(start + batch_size, len(samples))
        input_ids, attention_mask, source_rows = _pad_stream(
            samples.input_ids[start:stop], samples.attention_mask[start:stop], samples.row_mask[start:stop], pad_id
        )
        decoder_ids = samples.decoder_input_ids[start:stop]
        decoder_input_ids, decoder_attention_mask, target_rows = _pad_stream(
            decoder_ids, [[1] * len(d) for d in decoder_ids], samples.decoder_row_mask[start:stop], pad_id
        )
        inputs = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "decoder_input_ids": decoder_input_ids,
            "decoder_attention_mask": decoder_attention_mask,
        }
        yield inputs, {"source": source_rows, "target": target_rows}


def _pad_stream(ids: Sequence[list[int]], masks: Sequence[list[int]], rows: Sequence[list[int]], pad_id: int):
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    row_mask = torch.zeros((len(ids), width), dtype=torch.bool)
    for i, seq in enumerate(ids):
        n = len(seq)
        input_ids[i, :n] = torch.tensor(seq, dtype=torch.long)
        attention_mask[i, :n] = torch.tensor(masks[i], dtype=torch.long)
        row_mask[i, :n] = torch.tensor(rows[i], dtype=torch.bool)
    return input_ids, attention_mask, row_mask


def iterate_batches(samples: CalibrationSamples, batch_size: int, pad_id: int):
    """Yield (input_ids, attention_mask or None, row_mask) tensors. Samples of unequal length (padding="none")
    are right-padded to the batch's longest; those pads are never rows of the statistics."""
    for start in range(0, len(samples), batch_size):
        stop = min(start + batch_size, len(samples))
        ids = samples.input_ids[start:stop]
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
        row_mask = torch.zeros((len(ids), width), dtype=torch.bool)
        needs_mask = samples.attention_mask is not None or any(len(x) < width for x in ids)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long) if needs_mask else None
        for i, seq in enumerate(ids):
            n = len(seq)
            input_ids[i, :n] = torch.tensor(seq, dtype=torch.long)
            row_mask[i, :n] = torch.tensor(samples.row_mask[start + i], dtype=torch.bool)
            if attention_mask is not None:
                mask = samples.attention_mask[start + i] if samples.attention_mask is not None else [1] * n
                attention_mask[i, :n] = torch.tensor(mask, dtype=torch.long)
        yield input_ids, attention_mask, row_mask


def _fingerprint(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()
