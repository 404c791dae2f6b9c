"""GSM8K: the reference prompt, stop strings and answer extraction (protocol §3.1), reported next to a
math-verify check and a flexible extraction, with every sample saved."""

from __future__ import annotations

from astra_repro.data.prompts import MATH_STOP_STRINGS, math_eval_prompt
from astra_repro.data.sources import load_gsm8k_eval, normalize_records
from astra_repro.errors import ConfigError
from astra_repro.evaluators import answer_extraction as ax
from astra_repro.evaluators.base import (
    BATCH_SIZE, EvalResult, EvalTarget, Evaluator, MAX_NEW_TOKENS, MetricSpec, N, PATH, percent_true,
    register_evaluator,
)
from astra_repro.options import Option


def gold_value(answer: str) -> str:
    if "####" in answer:
        return str(ax.gsm8k_gold(answer))
    return answer.strip().replace(",", "")


def checked_gold(answer: str) -> str:
    """The gold number of one answer; an answer without one would be scored wrong for every output, silently."""
    try:
        gold = gold_value(answer)
        float(gold)
    except ValueError:
        raise ConfigError(f"answer {answer[-60:]!r} has no gold number (GSM8K's '#### N' or a plain number); "
                          "fix or remove that record") from None
    return gold


@register_evaluator
class GSM8K(Evaluator):
    name = "gsm8k"
    settings = {
        "path": PATH, "hub": Option(None, doc="{id, config, split}: the hub dataset when no path"),
        "synthetic_seed": Option(0, kind=int, minimum=0), "n": N, "max_new_tokens": MAX_NEW_TOKENS,
        "batch_size": BATCH_SIZE,
    }
    version = f"1+{ax.EXTRACTION_VERSION}"
    description = "GSM8K pass@1, greedy; reference extraction (strict) + flexible + math-verify"
    label = "GSM8K"
    item_id_field = "question"
    metrics = (
        MetricSpec("accuracy", "correct", "{benchmark}"),
        MetricSpec("accuracy_flexible", "correct_flexible", "{benchmark} (flexible)"),
        MetricSpec("accuracy_math_verify", "correct_math_verify", "{benchmark} (math-verify)"),
    )

    def evaluate(self, target: EvalTarget) -> EvalResult:
        cfg = self.cfg
        n = cfg.n
        records, info = load_gsm8k_eval(cfg, n, synthetic_seed=cfg.synthetic_seed, setting=f"task.evaluators.{self.name}.path")
        golds = normalize_records([r["answer"] for r in records], checked_gold, info["data_path"])  # before generating
        prompts = [math_eval_prompt(r["question"]) for r in records]
        max_new_tokens = cfg.max_new_tokens
        outputs, generation_info = self.generate(
            target, prompts, max_new_tokens=max_new_tokens, batch_size=cfg.batch_size,
            stop_strings=MATH_STOP_STRINGS,
        )
        predictions = []
        for record, gold, prompt, output in zip(records, golds, prompts, outputs):
            strict = ax.extract_gsm8k_reference(output)
            flexible = ax.gsm8k_flexible_extract(output)
            predictions.append(
                {
                    "evaluator": self.name,
                    "question": record["question"],
                    "prompt": prompt,
                    "output": output,
                    "gold": gold,
                    "extracted": strict,
                    "correct": ax.gsm8k_reference_correct(strict, gold),
                    "extracted_flexible": flexible,
                    "correct_flexible": flexible is not None and ax.gsm8k_reference_correct(flexible, gold),
                    "correct_math_verify": ax.math_verify_correct(output, gold),
                }
            )
        metrics = {
            "accuracy": percent_true(predictions, "correct"),
            "accuracy_flexible": percent_true(predictions, "correct_flexible"),
            "accuracy_math_verify": percent_true(predictions, "correct_math_verify"),
        }
        info.update(generation_info)
        return EvalResult(metrics=metrics, predictions=predictions, info=info)
