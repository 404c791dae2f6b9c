"""GLUE metrics for the T5-base experiments (protocol §3.5), as pure functions on tensors and lists. The model-facing
evaluator computes decoder-step-0 logits (and, optionally, greedy generations) and calls these.

LoRA-GA's "soft" metric (reproduce/utils.py `compute_metrics`, Outsider565/LoRA-GA; the paper's "normalized
probabilities"), precisely:

    label_ids = p.label_ids[:, 0]                   # first token of each tokenised gold label word (labels are the
                                                    #  plain tokenizer(y) ids: T5 adds no prefix token, pads not -100)
    unique    = np.unique(label_ids)                # over the WHOLE eval set
    flipped   = unique.sum() - label_ids            # binary: the other label's first token
    logits    = p.predictions[0][:, 0, :]           # decoder step 0 (teacher-forced; step 0 sees only the start token)
    accuracy  = mean(logits[i, gold_i] > logits[i, flipped_i])     # strict: a tie counts as wrong

So each example is right iff its gold label's first-token logit is strictly above the other label's. Raw logits are
compared (the same order as softmax probabilities renormalised over the label words). Two quirks of the original:
  * it is binary-only: with MNLI's three labels `flipped` is the sum of the two other ids, an unrelated token;
  * `unique` is taken over the gold labels present, so an eval set holding a single class scores 0.
`soft_predictions` implements the same decision as an argmax over the label words' first-token logits at step 0 that
must be strict: prediction k iff logit_k > every other label's logit, else -1 (a tie; always counted wrong). For
binary tasks `accuracy` then equals the original exactly (`lora_ga_soft_accuracy` is the literal formula, kept for
cross-checks); for MNLI it is the natural 3-way extension (protocol §3.5).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from astra_repro.data.glue_sources import get_task, label_word_token_ids  # noqa: F401 - the soft metric's label tokens

NO_PREDICTION = -1  # a tie between label words (soft) or a generation that is no label word (generated)


def _as_tensor(x: Any, dtype: torch.dtype | None = None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(x)
    return t.to(dtype) if dtype is not None else t


def soft_predictions(logits_step0: Any, label_token_ids: Sequence[int]) -> torch.Tensor:
    """(N,) long: for each row of the (N, vocab) step-0 logits, the label index k whose first-token logit is strictly
    the largest among the label words' first tokens, or -1 on a tie. Binary tasks: exactly LoRA-GA's
    `gold logit > other logit` decision; MNLI: the 3-way argmax."""
    logits = _as_tensor(logits_step0)
    if logits.ndim != 2:
        raise ValueError(f"expected (N, vocab) decoder-step-0 logits, got shape {tuple(logits.shape)}")
    ids = torch.as_tensor(list(label_token_ids), dtype=torch.long, device=logits.device)
    if ids.numel() < 2 or len(set(ids.tolist())) != ids.numel():
        raise ValueError(f"need at least two distinct label token ids, got {ids.tolist()}")
    scores = logits.index_select(1, ids).float()  # (N, K)
    best, arg = scores.max(dim=1)
    ties = (scores == best.unsqueeze(1)).sum(dim=1) > 1
    return torch.where(ties, torch.full_like(arg, NO_PREDICTION), arg).cpu()


def lora_ga_soft_accuracy(logits_step0: Any, gold_first_token_ids: Any) -> float:
    """LoRA-GA's formula verbatim (fraction, not percent): `flipped = sum(unique gold ids) - gold`, strict `>`.
    Meaningful for binary tasks only (see the module docstring); kept to cross-check `soft_predictions`."""
    logits = _as_tensor(logits_step0)
    gold = _as_tensor(gold_first_token_ids, torch.long).to(logits.device)
    flipped = torch.unique(gold).sum() - gold
    rows = torch.arange(len(gold), device=logits.device)
    return float((logits[rows, gold] > logits[rows, flipped]).float().mean())


def parse_generated_label(task: str, text: str) -> int:
    """Label index of a generated string that is exactly a label word (after stripping whitespace), else -1."""
    words = get_task(task).label_words
    text = text.strip()
    return words.index(text) if text in words else NO_PREDICTION


def matthews_corrcoef(preds: Sequence[int], labels: Sequence[int], n_classes: int | None = None) -> float:
    """Matthews correlation in [-1, 1], multi-class (Gorodkin) form, as sklearn computes it; 0 when undefined (a
    constant prediction or a single gold class). A prediction outside 0..n_classes-1 (-1: no prediction) counts as
    wrong: it is replaced by a class other than the gold one ((gold + 1) % n_classes; for binary tasks the other
    class)."""
    preds, labels = [int(p) for p in preds], [int(y) for y in labels]
    if len(preds) != len(labels):
        raise ValueError(f"{len(preds)} predictions for {len(labels)} labels")
    k = n_classes or (max(labels + [p for p in preds if p >= 0] + [1]) + 1)
    preds = [p if 0 <= p < k else (y + 1) % k for p, y in zip(preds, labels)]
    s = len(labels)
    if s == 0:
        return 0.0
    true_counts, pred_counts = [0] * k, [0] * k
    correct = 0
    for p, y in zip(preds, labels):
        true_counts[y] += 1
        pred_counts[p] += 1
        correct += p == y
    cov_ytyp = correct * s - sum(t * p for t, p in zip(true_counts, pred_counts))
    cov_ypyp = s * s - sum(p * p for p in pred_counts)
    cov_ytyt = s * s - sum(t * t for t in true_counts)
    if cov_ypyp == 0 or cov_ytyt == 0:
        return 0.0
    return cov_ytyp / math.sqrt(cov_ypyp * cov_ytyt)


def glue_scores(task: str, preds_soft: Any, preds_generated: Sequence | None, labels: Any) -> dict[str, float]:
    """Percentages:
      accuracy            soft predictions (`soft_predictions`) == gold; the paper's number (ties count as wrong)
      accuracy_generated  generated text is exactly the gold label word (strings, stripped) or, if ints are given,
                          the generated label index == gold; omitted when preds_generated is None
      mcc                 CoLA only: Matthews correlation of the soft predictions, x100 (GLUE's official CoLA metric;
                          the paper reports accuracy for CoLA too)
    """
    spec = get_task(task)
    soft = [int(p) for p in _as_tensor(preds_soft).reshape(-1).tolist()]
    gold = [int(y) for y in _as_tensor(labels).reshape(-1).tolist()]
    if len(soft) != len(gold):
        raise ValueError(f"{len(soft)} soft predictions for {len(gold)} labels")
    if not gold:
        raise ValueError("no examples to score")
    k = len(spec.label_words)
    if any(not 0 <= y < k for y in gold):
        raise ValueError(f"{task} labels must be in 0..{k - 1}")
    scores = {"accuracy": 100.0 * sum(p == y for p, y in zip(soft, gold)) / len(gold)}
    if preds_generated is not None:
        generated = list(preds_generated)
        if len(generated) != len(gold):
            raise ValueError(f"{len(generated)} generations for {len(gold)} labels")
        as_index = [parse_generated_label(task, g) if isinstance(g, str) else int(g) for g in generated]
        scores["accuracy_generated"] = 100.0 * sum(p == y for p, y in zip(as_index, gold)) / len(gold)
    if task == "cola":
        scores["mcc"] = 100.0 * matthews_corrcoef(soft, gold, n_classes=k)
    return scores
