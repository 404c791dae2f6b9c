"""How lenient are the reference-parity scorers? Wrong answers built from the real gold answers, counted where
each scorer accepts them.

For every test item and every kind of wrong (or oddly written) answer below, the completion
"...\\nThe answer is: <answer>" is scored by:
  GSM8K (1319 items): the reference extraction + grader (answer_extraction.py, protocol §3.1) and math-verify;
  MATH (5000 items): reference util.is_equiv (bug kept), the fixed is_equiv, and math-verify (math_grading.py).
An item counts for a row only when the row applies to its gold (e.g. numeric golds only) and the answer differs
from the gold; the tables give those counts and how many of them each scorer accepts.

    python scripts/scorer_leniency.py                 # all items, 2 worker processes
    python scripts/scorer_leniency.py --limit 200     # a quick look
Prints markdown tables and writes JSON to --out (default results/bench/scorer_leniency.json).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import platform
import re
import sys
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from importlib.metadata import version
from pathlib import Path
from typing import Callable

from astra_repro.evaluators import answer_extraction as ax
from astra_repro.evaluators import math_grading as mg
from astra_repro.paths import PROJECT_ROOT

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
GSM8K_TEST = SHARED_DATA / "gsm8k" / "test.jsonl"
MATH_TEST = SHARED_DATA / "math" / "test.jsonl"


@dataclass(frozen=True)
class WrongAnswer:
    name: str
    description: str
    build: Callable  # gold -> the answer string, or None when the row does not apply to this gold


def completion(answer: str) -> str:
    return f"Some reasoning.\nThe answer is: {answer}"


def decimal_text(value: Decimal) -> str:
    """A plain decimal numeral, no exponent, no trailing zeros: 1800, 0.18, 18.009."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# --------------------------------------------------------------------------------------------
# GSM8K: integer golds
# --------------------------------------------------------------------------------------------
def _unless_zero(build: Callable[[int], str]) -> Callable[[int], str | None]:
    return lambda gold: build(gold) if gold != 0 else None  # ×100 and /100 of 0 are 0, not wrong


GSM8K_WRONG = [
    WrongAnswer("x100", "gold × 100 (18 → 1800)", _unless_zero(lambda g: str(g * 100))),
    WrongAnswer("div100", "gold / 100 (1800 → 18, 18 → 0.18)", _unless_zero(lambda g: decimal_text(Decimal(g) / 100))),
    WrongAnswer("plus1", "gold + 1", lambda g: str(g + 1)),
    WrongAnswer("plus0.4", "gold + 0.4 (rounds to gold)", lambda g: decimal_text(Decimal(g) + Decimal("0.4"))),
    WrongAnswer("plus0.5", "gold + 0.5 (banker's rounding: to gold when gold is even)",
                lambda g: decimal_text(Decimal(g) + Decimal("0.5"))),
    WrongAnswer("comma_truncation", "gold × 1000 + 1 with thousands commas (1234 → 1,234,001)",
                lambda g: f"{g * 1000 + 1:,}" if g > 0 else None),
    WrongAnswer("decimal_comma", "gold / 10 with a decimal comma (18 → 1,8)",
                lambda g: f"{g // 10},{g % 10}" if g >= 10 and g % 10 else None),
    WrongAnswer("first_number", "first number after the marker wins ('18 + 1 = 19' for 18)",
                lambda g: f"{g} + 1 = {g + 1}"),
]


def score_gsm8k_item(gold: int) -> dict:
    verdicts = {}
    for row in GSM8K_WRONG:
        answer = row.build(gold)
        if answer is None:
            continue
        text = completion(answer)
        verdicts[row.name] = {
            "reference": ax.gsm8k_reference_correct(ax.extract_gsm8k_reference(text), gold),
            "math_verify": ax.math_verify_correct(text, gold),
        }
    return verdicts


# --------------------------------------------------------------------------------------------
# MATH: LaTeX golds
# --------------------------------------------------------------------------------------------
_THOUSANDS = re.compile(r"-?\d{1,3}(,\d{3})+(\.\d*)?")
_INTEGER_LIST = re.compile(r"-?\d+(,\d+)+")  # an inner minus would make "6-2" an expression


def gold_number(gold: str) -> Decimal | None:
    """The gold as a number when it is a plain one after Hendrycks normalisation ("\\$32,\\!348" → 32348);
    a comma that does not separate thousands makes a list ("1,3"), not a number."""
    stripped = mg.strip_string(gold)
    if "," in stripped and not _THOUSANDS.fullmatch(stripped):
        return None
    try:
        value = Decimal(stripped.replace(",", ""))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def joined_list(gold: str) -> str | None:
    """A list of integers ("1,3", "45^\\circ, 135^\\circ") written as one number (13, 45135)."""
    stripped = mg.strip_string(gold)
    if not _INTEGER_LIST.fullmatch(stripped) or _THOUSANDS.fullmatch(stripped):
        return None
    return stripped.replace(",", "")


def _numeric(build: Callable[[Decimal], Decimal | str], nonzero: bool = True) -> Callable[[str], str | None]:
    """A row for numeric golds only; the builder gets the value and returns a number or a string."""

    def build_answer(gold: str) -> str | None:
        value = gold_number(gold)
        if value is None or (nonzero and value == 0):
            return None
        answer = build(value)
        return decimal_text(answer) if isinstance(answer, Decimal) else answer

    return build_answer


def _unless_gold_is(answer: str, *same_as: str) -> Callable[[str], str | None]:
    """A fixed wrong answer, skipped for golds that normalise to one of its equivalent forms."""

    def build_answer(gold: str) -> str | None:
        return None if mg.strip_string(gold) in same_as else answer

    return build_answer


_FRACTION = re.compile(r"^(-?)\\frac\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}\{([^{}]*(?:\{[^{}]*\}[^{}]*)*)\}$")
_DIGIT_FRACTION = re.compile(r"^\\frac\{(\d+)\}\{(\d+)\}$")


def slash_form(gold: str) -> str | None:
    """\\frac{A}{B} with a side that is not an integer, written A/B: a correct answer that breaks strip_string."""
    match = _FRACTION.match(mg.strip_string(gold))
    if match is None or (match.group(2).isdigit() and match.group(3).isdigit()):
        return None
    sign, numerator, denominator = match.groups()
    if re.search(r"[+\-\s]", numerator):
        numerator = f"({numerator})"
    if not re.fullmatch(r"\d+|[a-zA-Z]|\\[a-zA-Z]+", denominator):
        denominator = f"({denominator})"
    return f"{sign}{numerator}/{denominator}"


def brace_shifted_fraction(gold: str) -> str | None:
    """\\frac{12}{5} → \\frac{1}{25}: a different number that reads the same once braces are dropped."""
    match = _DIGIT_FRACTION.match(mg.strip_string(gold))
    if match is None:
        return None
    numerator, denominator = match.groups()
    digits = numerator + denominator
    for cut in range(1, len(digits)):
        shifted_numerator, shifted_denominator = digits[:cut], digits[cut:]
        if cut != len(numerator) and int(shifted_denominator) != 0 and (
            Decimal(int(shifted_numerator)) / int(shifted_denominator) != Decimal(int(numerator)) / int(denominator)
        ):
            return f"\\frac{{{shifted_numerator}}}{{{shifted_denominator}}}"
    return None


def flipped_interval(gold: str) -> str | None:
    """(3,4] → [3,4): open and closed ends swapped (also a point (a,b) written [a,b])."""
    stripped = mg.strip_string(gold)
    if len(stripped) < 3 or stripped[0] not in "([" or stripped[-1] not in ")]" or "," not in stripped:
        return None
    flip = {"(": "[", "[": "(", ")": "]", "]": ")"}
    return flip[stripped[0]] + stripped[1:-1] + flip[stripped[-1]]


def hedged(gold: str) -> str:
    """"5\\text{ or }0": two answers; everything from "\\text{ " on is dropped as units, so the first one decides."""
    alternative = "1" if gold_number(gold) == 0 else "0"
    return f"{gold}\\text{{ or }}{alternative}"


MATH_WRONG = [
    WrongAnswer("x/2", "x/2 (strip_string raises ValueError)", _unless_gold_is("x/2", "\\frac{x}{2}")),
    WrongAnswer("pi/2", "\\pi/2 (strip_string raises ValueError)", _unless_gold_is("\\pi/2", "\\frac{\\pi}{2}")),
    WrongAnswer("sqrt3/2", "\\sqrt{3}/2 (strip_string raises ValueError)",
                _unless_gold_is("\\sqrt{3}/2", "\\frac{\\sqrt{3}}{2}")),
    WrongAnswer("two_text", "3\\text{ cm and }4\\text{ cm} (two '\\text{ ': AssertionError)",
                _unless_gold_is("3\\text{ cm and }4\\text{ cm}")),
    WrongAnswer("trailing_sqrt", "2\\sqrt, a cut-off answer (IndexError)", _unless_gold_is("2\\sqrt")),
    WrongAnswer("x100", "numeric gold × 100", _numeric(lambda v: v * 100)),
    WrongAnswer("div100", "numeric gold / 100", _numeric(lambda v: v / 100)),
    WrongAnswer("plus1", "numeric gold + 1", _numeric(lambda v: v + 1, nonzero=False)),
    WrongAnswer("rel5e-5", "numeric gold × (1 + 5e-5) (inside rel_tol 1e-4)", _numeric(lambda v: v * Decimal("1.00005"))),
    WrongAnswer("rel5e-4", "numeric gold × (1 + 5e-4) as a number", _numeric(lambda v: v * Decimal("1.0005"))),
    WrongAnswer("rel5e-4_parens", "numeric gold × (1 + 5e-4) in parentheses: '(18.009)' (sympy N, rel_tol 1e-3)",
                _numeric(lambda v: f"({decimal_text(v * Decimal('1.0005'))})")),
    WrongAnswer("plus1_parens", "numeric gold + 1 in parentheses: '(19)'",
                _numeric(lambda v: f"({decimal_text(v + 1)})", nonzero=False)),
    WrongAnswer("joined_list", "a list of integers read as one number: 13 for '1,3' (commas are dropped)",
                joined_list),
    WrongAnswer("brace_shift", "\\frac{12}{5} for \\frac{1}{25} (braces are dropped before comparing)",
                brace_shifted_fraction),
    WrongAnswer("interval_flip", "interval/tuple with its brackets swapped: [3,4) for (3,4]", flipped_interval),
    WrongAnswer("hedged", "a hedge, gold\\text{ or }0: the second option is read as units", hedged),
    WrongAnswer("slash_form_correct", "CORRECT answer \\frac{\\pi}{2} written \\pi/2 (gold has a non-integer side)",
                slash_form),
]


def score_math_item(gold: str) -> dict:
    verdicts = {}
    for row in MATH_WRONG:
        answer = row.build(gold)
        if answer is None or answer == gold:
            continue
        text = completion(answer)
        judgement = mg.judge_math(mg.extract_math_answer_reference(text), gold)
        verdicts[row.name] = {
            "reference": judgement.reference,
            "fixed": judgement.fixed,
            "math_verify": mg.math_verify_latex_correct(text, gold),
            "exception_path": judgement.exception_path,
            "example": (gold, answer),
        }
    return verdicts


# --------------------------------------------------------------------------------------------
# Counting and reporting
# --------------------------------------------------------------------------------------------
def tally(rows: list[WrongAnswer], per_item: list[dict], columns: dict[str, str]) -> list[dict]:
    out = []
    for row in rows:
        verdicts = [item[row.name] for item in per_item if row.name in item]
        counts = {key: sum(v[key] for v in verdicts) for key in columns}
        example = next((v.get("example") for v in verdicts if v.get("reference")), None)
        out.append({"name": row.name, "description": row.description, "applicable": len(verdicts), **counts,
                    **({"example_gold_answer": example} if example else {})})
    return out


def markdown(title: str, table: list[dict], columns: dict[str, str]) -> str:
    header = "| wrong answer | items | " + " | ".join(columns.values()) + " |"
    lines = [f"### {title}", "", header, "|---|---:|" + "---:|" * len(columns)]
    for row in table:
        n = row["applicable"]
        cells = [f"{row[key]} ({100 * row[key] / n:.1f}%)" if n else "–" for key in columns]
        lines.append(f"| {row['description']} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="score only the first N items of each set")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results" / "bench" / "scorer_leniency.json")
    args = parser.parse_args(argv)

    gsm8k_golds = [ax.gsm8k_gold(r["answer"]) for r in read_jsonl(GSM8K_TEST)][: args.limit]
    math_golds = [mg.math_gold(r) for r in read_jsonl(MATH_TEST)][: args.limit]
    started = time.time()
    with multiprocessing.Pool(args.workers) as pool:
        gsm8k_items = pool.map(score_gsm8k_item, gsm8k_golds, chunksize=20)
        math_items = pool.map(score_math_item, math_golds, chunksize=20)
    seconds = time.time() - started

    gsm8k_columns = {"reference": "accepted: reference", "math_verify": "accepted: math-verify"}
    math_columns = {"reference": "accepted: reference", "fixed": "accepted: fixed", "math_verify": "accepted: math-verify",
                    "exception_path": "via exception path"}
    report = {
        "command": "python scripts/scorer_leniency.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "seconds": round(seconds, 1),
        "environment": {
            "python": platform.python_version(),
            **{pkg: version(pkg) for pkg in ("sympy", "math-verify", "antlr4-python3-runtime")},
            "sympy_parse_latex_works": mg.latex_parser_available(),
            "math_grading_version": mg.MATH_GRADING_VERSION,
            "gsm8k_extraction_version": ax.EXTRACTION_VERSION,
        },
        "gsm8k": {"file": str(GSM8K_TEST), "n_items": len(gsm8k_golds),
                  "rows": tally(GSM8K_WRONG, gsm8k_items, gsm8k_columns)},
        "math": {"file": str(MATH_TEST), "n_items": len(math_golds),
                 "rows": tally(MATH_WRONG, math_items, math_columns)},
    }
    print(markdown(f"GSM8K ({len(gsm8k_golds)} items)", report["gsm8k"]["rows"], gsm8k_columns))
    print()
    print(markdown(f"MATH ({len(math_golds)} items)", report["math"]["rows"], math_columns))
    print(f"\n{seconds:.0f} s with {args.workers} workers; sympy parse_latex works: {mg.latex_parser_available()}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
