"""MATH: the reference prompt, stop strings, extraction and `util.is_equiv` grading (protocol §3.2), reported next
to the same grading with its exception-path bug fixed and a math-verify check, with every sample saved."""

from __future__ import annotations

from omegaconf import DictConfig

from astra_repro.data import synthetic_math
from astra_repro.data.prompts import MATH_STOP_STRINGS, math_eval_prompt
from astra_repro.data.sources import (
    CALC_ANNOTATION, hub_reachable, normalize_records, read_json_records, require_text, warn_synthetic,
)
from astra_repro.errors import ConfigError
from astra_repro.evaluators import math_grading as mg
from astra_repro.evaluators.base import (
    BATCH_SIZE, EvalResult, EvalTarget, Evaluator, MAX_NEW_TOKENS, MetricSpec, N, PATH, percent_true,
    register_evaluator,
)
from astra_repro.options import Option

# Record formats, told apart by their keys (checked in this order: MATH-500 also has a `solution`).
FORMAT_FIELDS = {
    "pissa": ("query", "answer"),  # PiSSA eval set: the full Alpaca prompt and the final answer
    "metamath": ("instruction", "output"),  # MetaMath MATH_test.jsonl, the file the reference reads
    "math500": ("problem", "answer"),  # PRM800K MATH-500
    "hendrycks": ("problem", "solution"),  # hendrycks/competition_math
}
PISSA_INSTRUCTION, PISSA_RESPONSE = "### Instruction:", "### Response:"


def detect_format(record: dict) -> str:
    for name, fields in FORMAT_FIELDS.items():
        if all(f in record for f in fields):
            return name
    expected = ", ".join(f"{'/'.join(fields)} ({name})" for name, fields in FORMAT_FIELDS.items())
    raise ConfigError(f"unrecognised MATH eval record with keys {sorted(record)}; expected {expected}")


def _pissa_question(query: str) -> str:
    """The problem inside a PiSSA query; the query must hold the Alpaca template, since it is used verbatim."""
    if PISSA_INSTRUCTION not in query or PISSA_RESPONSE not in query:
        raise ConfigError(
            f"PiSSA-format MATH query lacks '{PISSA_INSTRUCTION}' / '{PISSA_RESPONSE}', so it is not a full prompt: "
            f"{query[:80]!r}"
        )
    return query.split(PISSA_INSTRUCTION, 1)[1].split(PISSA_RESPONSE, 1)[0].strip()


def normalize_math_eval_record(record: dict, fmt: str) -> dict:
    """{"question", "prompt", "gold"}: every format reduced to what the evaluator needs (gold may be None)."""
    if detect_format(record) != fmt:
        expected = "/".join(FORMAT_FIELDS[fmt])
        raise ConfigError(f"MATH eval file mixes formats: expected {fmt} fields {expected}, got keys {sorted(record)}")
    require_text(record, FORMAT_FIELDS[fmt])
    if fmt == "pissa":
        return {"question": _pissa_question(record["query"]), "prompt": record["query"], "gold": mg.math_gold(record)}
    question = record["instruction"] if fmt == "metamath" else record["problem"]
    return {"question": question, "prompt": math_eval_prompt(question), "gold": mg.math_gold(record)}


def synthetic_math_problems(n: int, seed: int) -> list[dict]:
    """The synthetic arithmetic test problems in Hendrycks format, the answer boxed at the end of the solution."""
    problems = []
    for p in synthetic_math.generate("test", n, seed=seed):
        body, _, final = p["answer"].rpartition("####")
        solution = f"{CALC_ANNOTATION.sub('', body).rstrip()}\nThe answer is $\\boxed{{{final.strip()}}}$."
        problems.append({"problem": p["question"], "solution": solution})
    return problems


def load_math_eval(cfg: DictConfig, n: int | None, setting: str = "task.evaluators.math.path") -> tuple[list[dict], dict]:
    """MATH test problems: local file -> hub -> synthetic arithmetic stand-in (warned and recorded)."""
    if cfg.get("path"):
        raw = read_json_records(cfg.path, setting)
        info = {"data_source": "local", "data_path": str(cfg.path)}
    elif cfg.get("hub") and hub_reachable():
        from datasets import load_dataset

        # hendrycks/competition_math is gone from the hub; EleutherAI/hendrycks_math holds the same 5000 test
        # problems as one config per subject, concatenated here in the config's order.
        subsets = list(cfg.hub.get("configs") or [None])
        raw = [r for name in subsets for r in load_dataset(cfg.hub.id, name, split=cfg.hub.split)]
        info = {"data_source": "hub", "data_path": cfg.hub.id}
    else:
        warn_synthetic("MATH evaluation", kind="arithmetic problems (MATH-format stand-in)")
        seed = cfg.synthetic_seed + 1000
        raw = synthetic_math_problems(n or 500, seed)
        info = {"data_source": "synthetic", "data_path": f"synthetic_math(test, seed={seed})"}
    if not raw:
        raise ConfigError(f"MATH eval data '{info['data_path']}' holds no records")
    if n is not None:
        raw = raw[:n]
    fmt = normalize_records(raw[:1], detect_format, info["data_path"])[0]
    records = normalize_records(raw, lambda record: normalize_math_eval_record(record, fmt), info["data_path"])
    if all(r["gold"] is None for r in records):  # every output would be scored wrong
        raise ConfigError(f"{info['data_path']}: no record has a gold answer (a \\boxed{{..}} in its {FORMAT_FIELDS[fmt][1]}); "
                          f"point {setting} at a MATH test file")
    info.update(n_eval=len(records), format=fmt)
    return records, info


@register_evaluator
class HendrycksMath(Evaluator):
    name = "math"
    settings = {
        "path": PATH, "hub": Option(None, doc="{id, split, configs}: the hub dataset when no path"),
        "synthetic_seed": Option(0, kind=int, minimum=0), "n": N, "max_new_tokens": MAX_NEW_TOKENS,
        "batch_size": BATCH_SIZE,
    }
    version = f"1+{mg.MATH_GRADING_VERSION}"
    description = "MATH pass@1, greedy; reference is_equiv (bug kept) + fixed + math-verify"
    label = "MATH"
    item_id_field = "question"
    metrics = (
        MetricSpec("accuracy", "correct", "{benchmark}"),
        MetricSpec("accuracy_fixed", "correct_fixed", "{benchmark} (is_equiv fixed)"),
        MetricSpec("accuracy_math_verify", "correct_math_verify", "{benchmark} (math-verify)"),
        MetricSpec("n_no_answer", None, "{benchmark} no answer", direction="lower"),
        MetricSpec("n_exception_path", None, "{benchmark} on is_equiv's exception path", direction="lower"),
        MetricSpec("n_exception_path_correct", None, "{benchmark} correct on is_equiv's exception path", direction="lower"),
    )

    def evaluate(self, target: EvalTarget) -> EvalResult:
        cfg = self.cfg
        records, info = load_math_eval(cfg, cfg.n, setting=f"task.evaluators.{self.name}.path")
        prompts = [r["prompt"] for r in records]
        outputs, generation_info = self.generate(
            target, prompts, max_new_tokens=cfg.max_new_tokens,
            batch_size=cfg.batch_size, stop_strings=MATH_STOP_STRINGS,
        )
        predictions = []
        for record, output in zip(records, outputs):
            gold = record["gold"]
            extracted = mg.extract_math_answer_reference(output)
            # The reference scores a completion without the marker wrong before is_equiv is reached.
            no_answer = mg.MathJudgement(reference=False, fixed=False, exception_path=False)
            judgement = mg.judge_math(extracted, gold) if extracted is not None else no_answer
            predictions.append(
                {
                    "evaluator": self.name,
                    "question": record["question"],
                    "prompt": record["prompt"],
                    "output": output,
                    "gold": gold,
                    "extracted": extracted,
                    "correct": judgement.reference,
                    "correct_fixed": judgement.fixed,
                    "correct_math_verify": mg.math_verify_latex_correct(output, gold),
                    "exception_path": judgement.exception_path,
                }
            )
        exception_path = [p for p in predictions if p["exception_path"]]
        metrics = {
            "accuracy": percent_true(predictions, "correct"),
            "accuracy_fixed": percent_true(predictions, "correct_fixed"),
            "accuracy_math_verify": percent_true(predictions, "correct_math_verify"),
            "n_exception_path": len(exception_path),
            "n_exception_path_correct": sum(p["correct"] for p in exception_path),
            "n_no_answer": sum(p["extracted"] is None for p in predictions),
        }
        # Whether LaTeX reached sympy: it changes the reference verdicts, and the authors' setup had no parser.
        info.update(generation_info, sympy_parse_latex=mg.latex_parser_available())
        return EvalResult(metrics=metrics, predictions=predictions, info=info)
