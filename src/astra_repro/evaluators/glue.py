"""GLUE dev-set scoring as LoRA-GA does it (protocol §3.5), plus the plain score beside it.

- `accuracy` (the paper's number): LoRA-GA's "soft" comparison of the label words' first-token logits at the first
  decoder step (seq2seq) or at the prompt's next-token position (causal LM); a 3-way argmax for MNLI
  (`glue_metrics.soft_predictions`).
- `accuracy_generated`: greedy generation of a few tokens, correct when it is exactly the gold label word.
- `mcc` for CoLA (GLUE's official CoLA metric; the paper's CoLA column is accuracy).
Every sample keeps its label-word logits, the soft and generated predictions and the generated text.
"""

from __future__ import annotations


import torch
from tqdm.auto import tqdm

from astra_repro.data import glue_sources
from astra_repro.evaluators.base import (
    BATCH_SIZE, EvalResult, EvalTarget, Evaluator, MAX_NEW_TOKENS, MetricSpec, N, register_evaluator,
)
from astra_repro.options import Option
from astra_repro.evaluators.glue_metrics import (
    NO_PREDICTION, glue_scores, label_word_token_ids, parse_generated_label, soft_predictions,
)
from astra_repro.models import is_seq2seq
from astra_repro.tasks.glue import causal_prompt, glue_pair, space_in_target


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def seq2seq_step0_logits_and_generations(model, tokenizer, prompts, batch_size, max_new_tokens, max_length):
    logits, texts = [], []
    start = model.config.decoder_start_token_id
    for i in tqdm(range(0, len(prompts), batch_size), desc="glue", unit="batch", leave=False):
        enc = tokenizer(prompts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(_device(model))
        decoder_input_ids = torch.full((enc["input_ids"].shape[0], 1), start, dtype=torch.long, device=enc["input_ids"].device)
        logits.append(model(**enc, decoder_input_ids=decoder_input_ids).logits[:, 0, :].float().cpu())
        generated = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        texts += tokenizer.batch_decode(generated, skip_special_tokens=True)
    return torch.cat(logits), texts


@torch.no_grad()
def causal_next_token_logits(model, tokenizer, prompts, batch_size, max_length):
    """Logits of the token after each prompt (left padding, so the last position is the prompt's end).

    Prompts are batched by length (less padding: SST-2's sentences run from 2 to 60 tokens) and returned in the
    prompts' order; only the last position goes through the LM head (`logits_to_keep=1`: ~1/5 of a 135M model's
    compute is the 49k-word head)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        lengths = [len(ids) for ids in tokenizer(list(prompts), truncation=True, max_length=max_length)["input_ids"]]
        order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
        rows: list = [None] * len(prompts)
        for i in tqdm(range(0, len(order), batch_size), desc="glue", unit="batch", leave=False):
            chunk = order[i : i + batch_size]
            enc = tokenizer([prompts[k] for k in chunk], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(_device(model))
            logits = model(**enc, logits_to_keep=1).logits[:, -1, :].float().cpu()
            for k, row in zip(chunk, logits):
                rows[k] = row
        return torch.stack(rows)
    finally:
        tokenizer.padding_side = side


@register_evaluator
class Glue(Evaluator):
    name = "glue_dev"
    settings = {
        "glue_task": Option(None, kind=str, doc="${task.glue_task}"), "data": Option(None, doc="${task.data}"),
        "n": N, "batch_size": BATCH_SIZE, "max_new_tokens": MAX_NEW_TOKENS,
        "max_length": Option(128, kind=int, minimum=2),
        "generated_label": Option(True, kind=bool, doc="also generate the label word and score it exactly "
                                  "(accuracy_generated); false: the soft score only, ~40% of the scoring time"),
    }
    version = "2+lora-ga-soft"  # 2: length-sorted batches, last-position logits only (same scores up to fp order)
    description = "GLUE dev accuracy: LoRA-GA's soft label-word logit comparison, generated-label accuracy, CoLA MCC"
    label = "GLUE dev"
    item_id_field = "prompt"
    metrics = (
        MetricSpec("accuracy", "correct", "{benchmark}"),  # the soft label-word accuracy, the paper's number
        MetricSpec("accuracy_generated", None, "{benchmark} (generated label)"),
        MetricSpec("mcc", None, "{benchmark} MCC"),  # CoLA only
    )

    def evaluate(self, target: EvalTarget) -> EvalResult:
        cfg = self.cfg
        task = glue_sources.get_task(cfg.glue_task).name
        examples, info = glue_sources.load_glue_split(task, "validation", cfg.data)
        n = cfg.get("n")
        examples = examples[:n] if n else examples
        pairs = [glue_pair(task, ex) for ex in examples]
        labels = [p["label"] for p in pairs]
        batch_size = int(cfg.batch_size)
        max_new_tokens = int(cfg.get("max_new_tokens", 5))
        max_length = int(cfg.get("max_length", 128))
        model, tokenizer = target.model, target.tokenizer
        model.eval()
        if is_seq2seq(model):
            prompts = [p["instruction"] for p in pairs]
            label_ids = label_word_token_ids(tokenizer, task)
            logits, generated = seq2seq_step0_logits_and_generations(model, tokenizer, prompts, batch_size, max_new_tokens, max_length)
            info.update(backend="hf", model_kind="seq2seq")
        else:
            space_moved = space_in_target(tokenizer, task)
            prompts = [causal_prompt(p["instruction"], space_moved) for p in pairs]
            label_ids = label_word_token_ids(tokenizer, task, leading_space=space_moved)
            logits = causal_next_token_logits(model, tokenizer, prompts, batch_size, max_length)
            generated, generation_info = None, {"generated_label": False}
            if cfg.get("generated_label", True):
                generated, generation_info = self.generate(target, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, stop_strings=["\n"])
            info.update(generation_info, model_kind="causal_lm", space_in_target=space_moved)
        soft = soft_predictions(logits, label_ids).tolist()
        label_logits = logits[:, label_ids].tolist()
        generated_labels = None if generated is None else [parse_generated_label(task, g) for g in generated]
        metrics = glue_scores(task, soft, generated_labels, labels)
        if generated is None:  # the soft score only: no generated text, no generated prediction
            generated, generated_labels = [None] * len(prompts), [NO_PREDICTION] * len(prompts)
        words = glue_sources.get_task(task).label_words
        predictions = [
            {
                "evaluator": self.name, "prompt": prompt, "gold": words[y], "label_logits": dict(zip(words, row)),
                "pred_soft": words[s] if s >= 0 else None, "generated": g,
                "pred_generated": words[k] if k >= 0 else None,
                "correct": s == y,
            }
            for prompt, y, s, g, k, row in zip(prompts, labels, soft, generated, generated_labels, label_logits)
        ]
        info.update(glue_task=task, n_eval=len(pairs), label_token_ids=dict(zip(words, label_ids)), max_new_tokens=max_new_tokens)
        return EvalResult(metrics=metrics, predictions=predictions, info=info)
