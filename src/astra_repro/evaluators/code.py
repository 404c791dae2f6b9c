"""HumanEval(+) and MBPP(+): greedy pass@1 as in the reference (protocol §3.3), every sample saved.

Prompt: the pissa-dataset python test instructions verbatim when `prompts_path` is given (they already hold the
Alpaca template); otherwise the Alpaca template around CODE_INSTRUCTION_PREFIX + the problem's prompt (recorded
as `prompt_source: constructed`). Generation: greedy, no stop strings. Post-processing: the reference's
(code_postprocess). Scoring: EvalPlus in a sandboxed subprocess (evalplus_runner) with `solution = prompt +
completion`, which is what EvalPlus does with a `completion` field; without an EvalPlus file, HumanEval falls back
to the original tests in our sandbox (base only) and MBPP is skipped with the fix named.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

from astra_repro.data.prompts import ALPACA_PROMPT
from astra_repro.data.sources import normalize_records, read_json_records, require_text
from astra_repro.errors import ConfigError
from astra_repro.evaluators.base import (
    BATCH_SIZE, EvalResult, EvalTarget, Evaluator, MAX_NEW_TOKENS, MetricSpec, N, PATH, percent_true,
    register_evaluator,
)
from astra_repro.options import Option
from astra_repro.evaluators.code_data import load_code_problems
from astra_repro.evaluators.code_postprocess import postprocess_completion
from astra_repro.evaluators.code_scoring import failure_reason, score_with_human_eval_tests
from astra_repro.evaluators.evalplus_runner import EvalPlusScoringError, score_with_evalplus
from astra_repro.paths import cache_dir

# Our stand-in for the pissa-dataset python test instruction, which we do not have (protocol §3.3).
CODE_INSTRUCTION_PREFIX = "Create a Python script for this problem:\n"
PISSA_INSTRUCTION, PISSA_RESPONSE = "### Instruction:", "### Response:"
EVALPLUS_PIN = "0.3.1"
# evalplus 0.3.1's find_zero oracle `continue`s before recording the pass, so no program passes this task
# (fixed upstream in 26d6d00); kept for parity with the pinned version, and flagged in the info.
EVALPLUS_UNPASSABLE = {"HumanEval/32": "evalplus 0.3.1 find_zero oracle bug: no solution can pass (fixed upstream)"}


def constructed_prompt(problem: dict) -> str:
    return ALPACA_PROMPT.format(instruction=CODE_INSTRUCTION_PREFIX + problem["prompt"])


def read_pissa_prompts(path: str, dataset: str) -> dict[str, str]:
    """task_id -> instruction of the pissa-dataset python test file rows of this benchmark, in file order."""
    prompts = {}
    rows = [row for row in read_json_records(path, f"task.evaluators.{dataset}.prompts_path") if row.get("type") == dataset]
    for row in normalize_records(rows, pissa_prompt_row, f"{path} ({dataset} rows)"):
        instruction = row["instruction"]
        if PISSA_INSTRUCTION not in instruction or PISSA_RESPONSE not in instruction:
            raise ConfigError(
                f"{path}: the {dataset} instruction for {row.get('answer')!r} lacks '{PISSA_INSTRUCTION}' / "
                f"'{PISSA_RESPONSE}', so it is not a full prompt and cannot be fed verbatim: {instruction[:80]!r}"
            )
        prompts[str(row["answer"])] = instruction
    if not prompts:
        raise ConfigError(f"{path} has no rows with type == {dataset!r} (pissa-dataset python test format expected)")
    return prompts


def pissa_prompt_row(row: dict) -> dict:
    """A prompt row holds its task id (`answer`) and its prompt (`instruction`) as text."""
    missing = [f for f in ("instruction", "answer") if f not in row]
    if missing:
        raise ConfigError(f"no '{missing[0]}' field; expected pissa-dataset python test rows (type, instruction, answer)")
    require_text(row, ("instruction", "answer"))
    return row


class CodeEvaluator(Evaluator):
    settings = {
        "path": PATH, "prompts_path": Option(None, kind=str, doc="pissa-dataset python test jsonl (its instructions)"),
        "n": N, "max_new_tokens": MAX_NEW_TOKENS, "batch_size": BATCH_SIZE,
        "workers": Option(None, kind=int, minimum=1, doc="EvalPlus checking processes (null: 2)"),
        "timeout_s": Option(600, kind=float, positive=True, doc="the whole scoring subprocess"),
    }
    """Shared by HumanEval and MBPP; subclasses name the dataset."""

    dataset: ClassVar[str]
    item_id_field = "task_id"
    metrics = (
        MetricSpec("pass@1", "correct", "{benchmark}"),  # the base tests passed
        MetricSpec("pass@1_plus", "correct_plus", "{benchmark}+"),  # base and plus tests (None per item without plus)
        MetricSpec("n_syntax_error", None, "{benchmark} syntax errors", direction="lower"),
        MetricSpec("n_timeout", None, "{benchmark} timeouts", direction="lower"),
    )
    version = f"1+ref-postprocess+evalplus{EVALPLUS_PIN}"

    def select_prompts(self, problems: dict, n: int | None) -> tuple[list[str], list[str], str]:
        """(task ids, prompts, prompt source): the pissa file's tasks in its order when given, else the problems'."""
        prompts_path = self.cfg.get("prompts_path")
        if prompts_path:
            pissa = read_pissa_prompts(str(prompts_path), self.dataset)
            unknown = [t for t in pissa if t not in problems]
            if unknown:
                raise ConfigError(f"{prompts_path}: {self.dataset} task ids not in the problem file: {unknown[:5]}")
            missing = [t for t in problems if t not in pissa]
            if missing:
                warnings.warn(f"{prompts_path} has no prompt for {len(missing)} {self.dataset} tasks (e.g. {missing[0]})")
            task_ids = list(pissa)[:n] if n else list(pissa)
            return task_ids, [pissa[t] for t in task_ids], "pissa_file"
        task_ids = list(problems)[:n] if n else list(problems)
        return task_ids, [constructed_prompt(problems[t]) for t in task_ids], "constructed"

    def score(self, info: dict, problems: dict, task_ids: list[str], completions: list[str]) -> dict:
        solutions = [problems[t]["prompt"] + c for t, c in zip(task_ids, completions)]
        workers = int(self.cfg.get("workers", 2) or 2)
        if info["scorer"] == "evalplus":
            return score_with_evalplus(
                self.dataset, info["problems_file"],
                [{"task_id": t, "solution": s} for t, s in zip(task_ids, solutions)],
                workers=workers, cache_dir=cache_dir() / "evalplus" / "groundtruth",
                timeout_s=float(self.cfg.get("timeout_s", 600)),
            )
        return score_with_human_eval_tests(problems, dict(zip(task_ids, completions)), workers=workers)

    def evaluate(self, target: EvalTarget) -> EvalResult:
        cfg = self.cfg
        problems, info = load_code_problems(self.dataset, cfg.get("path"))
        if problems is None:
            return self.skipped(info)
        task_ids, prompts, prompt_source = self.select_prompts(problems, cfg.get("n"))
        outputs, generation_info = self.generate(
            target, prompts, max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size, stop_strings=[],
        )
        completions = [postprocess_completion(o) for o in outputs]
        info.update(prompt_source=prompt_source, n_eval=len(task_ids), **generation_info)
        try:
            scored = self.score(info, problems, task_ids, completions)
        except EvalPlusScoringError as err:  # keep the generations: they can be rescored
            warnings.warn(str(err))
            scored = {"results": {}, "error": str(err)}
            info["scoring_error"] = str(err)
        plus_available = info["plus_available"]
        predictions = []
        for task_id, prompt, output, completion in zip(task_ids, prompts, outputs, completions):
            problem = problems[task_id]
            solution = problem["prompt"] + completion
            result = scored["results"].get(task_id, {})
            base_status, plus_status = result.get("base_status"), result.get("plus_status")
            correct = base_status == "pass"
            correct_plus = (correct and plus_status == "pass") if plus_available else None
            passed_all = correct and (correct_plus is not False)
            failed_status = base_status if not correct else plus_status
            predictions.append(
                {
                    "evaluator": self.name,
                    "task_id": task_id,
                    "prompt": prompt,
                    "output": output,
                    "completion": completion,
                    "solution": solution,
                    "base_status": base_status,
                    "plus_status": plus_status,
                    "correct": correct,
                    "correct_plus": correct_plus,
                    "failure_reason": None if passed_all or base_status is None
                    else failure_reason(solution, problem["entry_point"], failed_status),
                    "failing_stage": result.get("failing_stage"),
                    "first_failing_input": result.get("first_failing_input"),
                    "error": result.get("error"),
                }
            )
        info.update(
            scorer_seconds=scored.get("seconds_total"), groundtruth=scored.get("groundtruth"),
            isolation=scored.get("isolation"), evalplus_version=scored.get("evalplus_version"),
        )
        known = {t: why for t, why in EVALPLUS_UNPASSABLE.items() if t in task_ids and info["scorer"] == "evalplus"}
        if known:
            info["known_unpassable_tasks"] = known
        if "scoring_error" in info:
            return EvalResult(metrics={}, predictions=predictions, info=info)
        metrics = {
            "pass@1": percent_true(predictions, "correct"),
            "pass@1_plus": percent_true(predictions, "correct_plus") if plus_available else None,
            "n_syntax_error": sum(p["failure_reason"] == "syntax_error" for p in predictions),
            "n_timeout": sum(p["failure_reason"] == "timeout" for p in predictions),
        }
        if not plus_available:
            info.setdefault("plus_unavailable_reason", "no plus tests for this problem set")
        return EvalResult(metrics=metrics, predictions=predictions, info=info)


@register_evaluator
class HumanEval(CodeEvaluator):
    name = "humaneval"
    dataset = "humaneval"
    label = "HumanEval"
    description = "HumanEval / HumanEval+ pass@1, greedy; reference post-processing, EvalPlus in a sandbox"


@register_evaluator
class MBPP(CodeEvaluator):
    name = "mbpp"
    dataset = "mbpp"
    label = "MBPP"
    description = "MBPP / MBPP+ (EvalPlus 378-task subset) pass@1, greedy; reference post-processing, EvalPlus in a sandbox"
