"""Answer extraction and grading for GSM8K-style math evaluation (pure functions, no model code).

Three graders sit side by side so that a run can report all of them:

* **Strict reference** (`extract_gsm8k_reference` + `gsm8k_reference_correct`): parity with the
  authors' evaluation (LyoAI/Astra ``utils/gsm8k_inference.py`` and ``utils/grader.py``, which are the
  same as CorDA's; protocol §3.1). Every oddity of the reference is kept on purpose and marked
  "reference quirk" so that our numbers are comparable with the paper's.
* **Flexible** (`gsm8k_flexible_extract`): lm-eval-style; the number after the last answer marker,
  else the last number in the text. Useful for small models that never learn the exact marker.
* **math_verify** (`math_verify_correct`, from `math_verify_check.py`): HuggingFace's Math-Verify parser/verifier.

`math_equal` covers only the numeric and plain-string parts of the reference grader; the sympy
branch (needed for MATH, not for GSM8K's integer golds) is deliberately left out.
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction

from astra_repro.evaluators.math_grading import reference_math_equal
from astra_repro.evaluators.math_verify_check import math_verify_correct  # noqa: F401 - the third grader, named here

# Bump when any extraction/grading rule changes, so cached scores are not silently mixed.
EXTRACTION_VERSION = "gsm8k-ref-1"

REFERENCE_MARKER = "The answer is: "
# The reference's number pattern: optional sign, digits, at most ONE of . , / then digits.
_REFERENCE_NUMBER = re.compile(r"[\-+]?\d*[\.,/]?\d+")


# --------------------------------------------------------------------------------------------
# Gold answers
# --------------------------------------------------------------------------------------------
def gsm8k_gold(answer: str) -> int:
    """Gold integer of a GSM8K ``answer`` field: the text after ``'#### '``, commas removed."""
    parts = answer.split("#### ")
    if len(parts) < 2:
        raise ValueError(f"GSM8K answer has no '#### ' marker: {answer[-80:]!r}")
    # Same as the reference: the piece right after the FIRST marker.
    return int(parts[1].replace(",", ""))


# --------------------------------------------------------------------------------------------
# Strict reference extraction (protocol §3.1)
# --------------------------------------------------------------------------------------------
def _reference_is_number(s: str) -> bool:
    """The reference's ``is_number``: float() works, or s is a single unicode numeric character."""
    try:
        float(s)
        return True
    except ValueError:
        pass
    try:
        unicodedata.numeric(s)
        return True
    except (TypeError, ValueError):
        return False


def extract_gsm8k_reference(completion: str, require_marker: bool = True) -> int | None:
    """The reference ``extract_answer_number``: an int, or None when no answer can be read.

    Steps (each a reference quirk kept for parity):

    1. Split on ``'The answer is: '`` (colon and space required) and keep the LAST piece, stripped.
       Reference quirk: if the marker is absent the reference returns None (it does NOT fall back
       to the whole text; checked against LyoAI/Astra @7c77e962 and CorDA). ``require_marker=False``
       is a non-reference variant that reads the whole text instead.
    2. Take the FIRST match of ``[\\-+]?\\d*[\\.,/]?\\d+`` in that piece.
    3. ``a/b`` is evaluated as a fraction; commas are stripped; the value goes through Python's
       ``round()`` to an int.

    The result is an ``int`` (the reference returns ``round(...)``), which also satisfies ``float``.
    """
    pieces = completion.split(REFERENCE_MARKER)
    if len(pieces) > 1:
        text = pieces[-1].strip()
    elif require_marker:
        return None  # reference quirk: no marker -> no answer, even if the text ends in a number
    else:
        text = completion.strip()

    match = _REFERENCE_NUMBER.search(text)
    if match is None:
        return None
    token = match.group()

    if "/" in token:
        numerator, denominator = token.split("/")
        # Reference quirk: "/4", "-/4" (empty or sign-only numerator) -> no answer.
        if not (_reference_is_number(numerator) and _reference_is_number(denominator)):
            return None
        try:
            if denominator == "0":
                # Reference quirk: "x/0" is read as x (only the literal "0"; "00" would crash it).
                return round(float(numerator))
            # The reference uses the PyPI `fraction` package; for the integer/integer strings this
            # regex can produce, stdlib Fraction gives the same value.
            value = Fraction(int(numerator), int(denominator))
            return round(float(value))
        except (ZeroDivisionError, OverflowError, ValueError):
            return None  # the reference would crash here ("5/00", huge values); we call it no answer

    # Reference quirk: only ONE separator is matched, so "1,234,567" reads as 1234 and the
    # European "1,5" as 15; commas are then simply deleted.
    value = float(token.replace(",", ""))
    if math.isinf(value):
        return None  # the reference's own guard (only +inf is checked there; -inf cannot round either)
    # Reference quirk: round() to int, so "3.7" -> 4, and it is banker's rounding ("2.5" -> 2).
    return round(value)


# --------------------------------------------------------------------------------------------
# Reference grader (numeric + string parts)
# --------------------------------------------------------------------------------------------
def math_equal(prediction, reference, include_percentage: bool = True, rel_tol: float = 1e-4) -> bool:
    """The reference ``grader.math_equal`` without its sympy branch (GSM8K's golds are integers): numbers equal
    within ``rel_tol`` to ``reference`` or, when ``include_percentage``, to ``reference / 100`` or ``* 100``
    (reference quirk: 1800 counts as correct for gold 18); else strings compared without ``{ } ( )`` and
    ``[a, b]`` / ``(a, b)`` element by element. One implementation serves GSM8K and MATH (math_grading)."""
    return reference_math_equal(prediction, reference, include_percentage, rel_tol=rel_tol, symbolic=False)


def gsm8k_reference_correct(pred, gold) -> bool:
    """The reference's per-item check: ``float(pred) == float(gold) or math_equal(pred, gold)``."""
    if pred is None:
        return False
    try:
        if float(pred) == float(gold):
            return True
    except (TypeError, ValueError):
        pass  # e.g. a non-numeric string from another extractor: let math_equal decide
    return math_equal(pred, gold)


# --------------------------------------------------------------------------------------------
# Flexible extraction (lm-eval style)
# --------------------------------------------------------------------------------------------
# A number: optional minus (not when it is a binary minus like "5-3"), digits with optional
# thousands groups, optional decimals. Fractions are not recognised ("1/2" gives "1" and "2").
_FLEX_NUMBER = re.compile(r"(?<!\d)-?\d+(?:,\d{3})*(?:\.\d+)?")
_FLEX_MARKER = re.compile(r"the answer is|####", re.IGNORECASE)


def gsm8k_flexible_extract(completion: str) -> str | None:
    """The first number after the last "The answer is" / "####" marker, else the last number.

    Commas are removed and the number is returned as a string ("1,234.50" -> "1234.50"); None when
    the text holds no number. Unlike the strict reference, there is no rounding and no marker is
    required: "... so she has 18 apples." gives "18" here and None there.
    """
    markers = list(_FLEX_MARKER.finditer(completion))
    if markers:
        after = _FLEX_NUMBER.search(completion, markers[-1].end())
        if after is not None:
            return after.group().replace(",", "")
    numbers = _FLEX_NUMBER.findall(completion)
    return numbers[-1].replace(",", "") if numbers else None
