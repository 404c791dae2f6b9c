"""Forgetting: how much worse the trained model predicts general text than the untouched base model did.

What PEFT's method comparison does (huggingface/peft `method_comparison/MetaMathQA/run.py`,
`calculate_mean_per_token_loss` and its call sites in `train()`, at 5d602fdb), and what is followed here:

- the text: the first 100 rows of a general-text sample (PEFT: `HuggingFaceFW/finewiki`, `data.py:get_wiki_small`;
  here a local WikiText-2 raw file, one row per line), each tokenized with the model's tokenizer (special tokens as
  the tokenizer adds them) and cut to 768 tokens (`truncation=True, max_length=768`);
- the loss: per-token cross-entropy of each row's tokens, predicting token t+1 from the logits at t (the causal
  shift added by PR #3419; PR #2925, which introduced the metric, compared logits at t with token t), over the
  row's real tokens only (padding excluded, fixed for left padding in PR #2986);
- the weighting: every token of every row counts once (`losses.extend(token_losses)` then `.mean()`), i.e. the
  token-weighted mean over all rows, NOT the mean of per-row means ("so that the mean is not skewed by sequence
  length of sample");
- `forgetting = ce_after - ce_before` (lower is better).

Where this deliberately differs:

- "before" is the UNTOUCHED BASE model, loaded from the `base_model` config, not PEFT's `model.disable_adapter()`
  (PR #3419). For residual inits (PiSSA, MiLoRA, CorDA, Astra) the disabled adapter leaves the residual
  W - B0 A0, not the pretrained W, so PEFT's "before" is the loss of a model nobody trained or shipped. PR #3419's
  own description says "Even better would be to calculate the loss before applying PEFT at all".
- The text is WikiText-2 (the file named by `path`), not finewiki: its rows are paragraphs and section headings
  (" = Robert Boulter = "), not whole articles, so 100 rows are ~10k tokens (SmolLM2's tokenizer) where PEFT's
  reach up to 76.8k, and absolute CE values are not comparable with PEFT's; only differences within one setup are.
  Empty (whitespace-only) lines are skipped, as HF's wikitext rows "" would otherwise be rows with no token to
  score (finewiki rows are never empty); CRLF line ends are normalised to "\\n", HF's row format.
- Masking uses labels: input ids with padding (attention mask 0) set to -100, shifted once here; the model is
  called without labels, because HF's built-in loss would average over the batch (and shift again if we did too).
  Padding is on the right (the tokenizer's setting here); with the attention mask and right padding every real
  token sees exactly the context it would see alone. Rows are batched longest first to pad less.

Per item (one prediction per row, `row` = its index among the rows, `line` = its line in the file): `n_tokens`,
`ce_before`, `ce_after` (the row's own token mean) and `forgetting` (their difference). The metric is the
token-weighted mean, so sum(n_tokens x ce) / sum(n_tokens), not the mean of the rows' `forgetting`; significance
code must pair rows by `row` and weight by `n_tokens` (report/significance.py, which takes 0/1 items, refuses it).

Settings (a task's `evaluators.forgetting` block):

    forgetting:
      path: ../shared/data/wikitext2    # a raw text file, or a folder holding exactly one file; null: skipped
      base_model: ${model}              # the untouched base: a model config mapping (configs/model/*.yaml `model:`)
      n: 100                            # first n non-empty rows
      max_length: 768                   # tokens per row, special tokens included
      batch_size: 4
      dtype: null                       # the base's dtype for "before"; null: base_model.dtype

"before" is computed once per (base model, file content, n, max_length, dtype) and cached as JSON under
`cache_dir()/forgetting/<key>.json`, per row, so every run of a study shares it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from astra_repro.errors import ConfigError
from astra_repro.evaluators.base import EvalResult, EvalTarget, Evaluator, MetricSpec, PATH, register_evaluator
from astra_repro.options import Option
from astra_repro.models import is_seq2seq, load_model, load_pretrained, model_kind, torch_dtype
from astra_repro.paths import PROJECT_ROOT, cache_dir, file_digest

log = logging.getLogger("astra_repro")

CACHE_FORMAT = 1  # bump when what a cached "before" holds or how it is computed changes
DEFAULTS = {"n": 100, "max_length": 768, "batch_size": 4}


# ----------------------------------------------------------------------------------------------- the loss itself
@dataclass(frozen=True)
class RowLosses:
    """Per row: the summed cross-entropy of its predicted tokens and how many there are (a row of k tokens predicts
    k - 1 of them: its first token has no context)."""

    sums: list[float]
    counts: list[int]

    @property
    def n_tokens(self) -> int:
        return sum(self.counts)

    @property
    def mean(self) -> float:
        """Token-weighted mean over all rows (PEFT's weighting); summed in row order, so equal inputs give
        bit-equal means whether they were computed now or read from the cache."""
        return sum(self.sums) / max(self.n_tokens, 1)

    def row_means(self) -> list[float | None]:
        return [s / c if c else None for s, c in zip(self.sums, self.counts)]


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def row_token_losses(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int,
                     desc: str = "forgetting") -> RowLosses:
    """Summed next-token cross-entropy and predicted-token count of every text, each cut to `max_length` tokens.
    Rows are batched longest first (less padding; the results are per row, returned in the texts' order)."""
    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "right"
    encoded = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
    sums: list[float] = [0.0] * len(texts)
    counts: list[int] = [0] * len(texts)
    bar = tqdm(total=len(order), desc=desc, unit="row")
    try:
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors="pt").to(_device(model))
            # labels: the input ids with padding masked; the model gets no labels, so this is the only shift
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            logits, targets = logits[:, :-1, :].float(), labels[:, 1:]
            losses = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="none",
            ).view(targets.shape)
            valid = targets != -100
            for i, row_sum, row_count in zip(rows, losses.double().mul(valid).sum(dim=1).tolist(), valid.sum(dim=1).tolist()):
                sums[i], counts[i] = row_sum, row_count
            bar.update(len(rows))
    finally:
        bar.close()
        tokenizer.padding_side = side
        model.train(was_training)
    return RowLosses(sums, counts)


def mean_token_ce(model, tokenizer, texts: Sequence[str], max_length: int, batch_size: int) -> tuple[float, int]:
    """Mean per-token cross-entropy over all tokens of all texts (token-weighted, as PEFT) and the token count."""
    rows = row_token_losses(model, tokenizer, texts, max_length, batch_size)
    return rows.mean, rows.n_tokens


# ------------------------------------------------------------------------------------------------------ the text
def resolve_text_file(path: str | os.PathLike | None) -> tuple[Path | None, str | None]:
    """The text file `path` names (a file, or a folder holding exactly one file; a relative path is tried against
    the working directory, then the project root), or None and why not."""
    if path is None or str(path).strip() in {"", "None", "null"}:
        return None, "no text file (set task.evaluators.forgetting.path=/path/to/wiki.test.raw)"
    given = Path(str(path)).expanduser()
    candidates = [given] if given.is_absolute() else [given, PROJECT_ROOT / given]
    found = next((c for c in candidates if c.exists()), None)
    if found is None:
        return None, f"text file {path} not found (set task.evaluators.forgetting.path to a WikiText-2 raw file)"
    if found.is_dir():
        files = sorted(f for f in found.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            return None, f"folder {found} holds no text file"
        if len(files) > 1:
            raise ConfigError(f"forgetting: folder {found} holds {len(files)} files "
                              f"({', '.join(f.name for f in files)}); set path to one of them")
        found = files[0]
    return found.resolve(), None


def read_rows(path: Path, n: int) -> list[tuple[int, str]]:
    """The first `n` non-empty lines as (1-based line number, text with its line end as "\\n")."""
    rows = []
    with open(path, encoding="utf-8", newline="") as handle:
        for line_no, line in enumerate(handle, 1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            rows.append((line_no, text + "\n"))
            if len(rows) == n:
                break
    return rows


# --------------------------------------------------------------------------------------------- the base's cache
def base_identity(model_cfg: DictConfig | dict) -> dict:
    """What names the base model's weights: its whole config (source, hub id or package, a tiny model's seed and
    sizes), with a local `path` made absolute. Not `model_location`, which would convert an embedded model."""
    plain = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    if plain.get("path"):
        plain["path"] = str(Path(str(plain["path"])).expanduser().resolve())
    return plain


def before_cache_key(identity: dict, sha256: str, n: int, max_length: int, dtype: str) -> str:
    payload = {"format": CACHE_FORMAT, "model": identity, "text_sha256": sha256, "n": int(n),
               "max_length": int(max_length), "dtype": dtype}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def before_cache_path(key: str) -> Path:
    return cache_dir() / "forgetting" / f"{key}.json"


def _load_before(path: Path) -> RowLosses | None:
    try:
        blob = json.loads(path.read_text())
        if blob.get("format") != CACHE_FORMAT:
            return None
        return RowLosses([float(s) for s in blob["sums"]], [int(c) for c in blob["counts"]])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:  # a broken cache file is recomputed, never fatal
        log.warning("forgetting: ignoring unreadable cache %s (%s); recomputing", path, err)
        return None


def _save_before(path: Path, rows: RowLosses, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # tmp + rename: a killed run leaves no half file
    tmp.write_text(json.dumps({"format": CACHE_FORMAT, **payload, "sums": rows.sums, "counts": rows.counts}))
    os.replace(tmp, path)


def base_row_losses(model_cfg: DictConfig, dtype: str, texts: Sequence[str], max_length: int, batch_size: int,
                    device: torch.device | str, key: str) -> tuple[RowLosses, bool]:
    """The untouched base model's per-row losses, from the cache or computed (and cached); True when cached."""
    path = before_cache_path(key)
    cached = _load_before(path)
    if cached is not None and len(cached.counts) == len(texts):
        return cached, True
    model, tokenizer = load_model(model_cfg, dtype)
    model.to(device)
    rows = row_token_losses(model, tokenizer, texts, max_length, batch_size, desc="forgetting: untouched base (once)")
    del model
    _save_before(path, rows, {"model": base_identity(model_cfg), "n_rows": len(texts), "max_length": max_length,
                              "dtype": dtype})
    return rows, False


# ------------------------------------------------------------------------------------------------- the evaluator
@register_evaluator
class Forgetting(Evaluator):
    name = "forgetting"
    settings = {
        "path": PATH, "base_model": Option(None, doc="the untouched base model's config (${model})"),
        "n": Option(100, kind=int, minimum=1), "max_length": Option(768, kind=int, minimum=2),
        "batch_size": Option(4, kind=int, minimum=1), "dtype": Option(None, kind=str),
    }
    version = "1+peft-3419-untouched-base"
    description = "forgetting: mean per-token CE on WikiText-2 rows, trained model minus untouched base (PEFT's metric)"
    label = "Forgetting"
    item_id_field = "row"
    metrics = (
        # per item: the row's own CE difference; the metric is the token-weighted one, so not the row mean
        MetricSpec("forgetting", "forgetting", "{benchmark} (CE after - before)", direction="lower"),
        MetricSpec("ce_after", None, "{benchmark}: CE after", direction="lower"),
        MetricSpec("ce_before", None, "{benchmark}: CE before (base)", direction="lower"),
    )

    def setting(self, key: str) -> Any:
        value = self.cfg.get(key)
        return DEFAULTS.get(key) if value is None else value

    def evaluate(self, target: EvalTarget) -> EvalResult:
        path, why_not = resolve_text_file(self.cfg.get("path"))
        if path is None:
            return self.skipped({"skipped": f"{self.name}: {why_not}", "data_source": None, "data_path": None})
        base_cfg = self.cfg.get("base_model")
        if base_cfg is None:
            raise ConfigError("forgetting: set task.evaluators.forgetting.base_model (e.g. base_model: ${model}): "
                              "'before' is measured on the untouched base model, loaded from that config")
        if model_kind(base_cfg) != "causal_lm":
            return self.skipped({"skipped": f"{self.name}: causal LMs only (model.kind={model_kind(base_cfg)})",
                                 "data_source": None, "data_path": str(path)})
        n, max_length, batch_size = int(self.setting("n")), int(self.setting("max_length")), int(self.setting("batch_size"))
        dtype = str(self.cfg.get("dtype") or base_cfg.dtype)
        rows = read_rows(path, n)
        if not rows:
            return self.skipped({"skipped": f"{self.name}: {path} has no non-empty line", "data_source": None,
                                 "data_path": str(path)})
        texts = [text for _, text in rows]
        sha256 = file_digest(path)

        model, tokenizer = target.model, target.tokenizer
        if model is None:  # only a folder is known: load it as the base is loaded
            model, tokenizer = load_pretrained(str(target.path), "causal_lm", torch_dtype(dtype))
        if is_seq2seq(model):
            return self.skipped({"skipped": f"{self.name}: causal LMs only", "data_source": None, "data_path": str(path)})

        identity = base_identity(base_cfg)
        key = before_cache_key(identity, sha256, len(texts), max_length, dtype)
        before, cached = base_row_losses(base_cfg, dtype, texts, max_length, batch_size, _device(model), key)
        after = row_token_losses(model, tokenizer, texts, max_length, batch_size, desc="forgetting: trained model")
        if after.counts != before.counts:
            raise ConfigError("forgetting: the trained model's tokenizer splits the text differently from the base's "
                              f"({after.n_tokens} vs {before.n_tokens} tokens): the two losses are not comparable")

        ce_before, ce_after = before.mean, after.mean
        predictions = []
        for i, ((line_no, _), b, a, count) in enumerate(zip(rows, before.row_means(), after.row_means(), after.counts)):
            predictions.append({"row": i, "line": line_no, "n_tokens": count, "ce_before": b, "ce_after": a,
                                "forgetting": None if a is None or b is None else a - b})
        metrics = {"forgetting": ce_after - ce_before, "ce_after": ce_after, "ce_before": ce_before,
                   "n_rows": len(texts), "n_tokens": after.n_tokens}
        info = {
            "data_source": "local", "data_path": str(path), "sha256": sha256, "n_rows": len(texts),
            "max_length": max_length, "rows": "first n non-empty lines, CRLF -> \\n",
            "weighting": "token-weighted mean over all rows (PEFT method_comparison)",
            "before": "untouched base model (base_model config), not the adapter-disabled model",
            "before_cached": cached, "before_cache": str(before_cache_path(key)), "base_model": identity,
            "dtype_before": dtype, "dtype_after": str(next(model.parameters()).dtype).removeprefix("torch."),
        }
        return EvalResult(metrics=metrics, predictions=predictions, info=info)
