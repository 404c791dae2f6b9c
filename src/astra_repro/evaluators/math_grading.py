"""MATH answer extraction and grading, ported from the authors' code for score parity (protocol §3.2).

Sources (LyoAI/Astra): ``utils/util.py`` (Hendrycks ``strip_string`` and ``is_equiv``), ``utils/grader.py``
(``math_equal`` with its sympy branch) and ``utils/MATH_inference.py`` (gold and prediction extraction).
Behaviour is kept verbatim, including where the helpers raise, because ``is_equiv`` turns those exceptions
into verdicts. Three departures, none of which changes a verdict on the 5000 MATH test golds:

* sympy is not handed strings longer than ``SYMPY_MAX_CHARS``: ``simplify`` / ``N`` on a long model output
  can run for minutes (the reference's own ``timeout`` option is off in its MATH script);
* sympy is not handed strings holding ``__`` or quotes, and parses with Python's dangerous builtins
  (``exec``, ``eval``, ``open``, ``__import__``, ...) removed: ``parse_expr`` is ``eval``, and the reference
  evaluates model text with it (``parse_expr('__import__("os").getpid()')`` runs). This narrows, it does not
  close, that hole: only score outputs of models you would run anyway. The one verdict it can change: a quoted
  number (``'5'``), which the reference may accept through ``N``;
* ``parse_latex`` is tried only when it works (it needs antlr4 4.11; see `latex_parser_available`); when it
  does not, the reference's bare ``except`` falls through to ``parse_expr`` on every call, which is what
  skipping it does, only faster.

Pure functions, no model code.
"""

from __future__ import annotations

import builtins
import functools
import types
from math import isclose
from typing import NamedTuple

from astra_repro.evaluators.math_verify_check import math_verify_correct

# Bump when any extraction/grading rule changes, so cached scores are not silently mixed.
MATH_GRADING_VERSION = "math-ref-1"

ANSWER_MARKER = "The answer is: "
SYMPY_MAX_CHARS = 200
_UNSAFE_BUILTINS = {
    "__import__", "__build_class__", "breakpoint", "compile", "delattr", "dir", "eval", "exec", "getattr",
    "globals", "hasattr", "input", "locals", "open", "print", "setattr", "vars", "chr", "aiter", "anext",
}


# --------------------------------------------------------------------------------------------
# Gold answers and predictions (MATH_inference.py, util.py)
# --------------------------------------------------------------------------------------------
def last_boxed_only_string(string: str) -> str | None:
    """The last ``\\boxed{...}`` (else ``\\fbox{...}``) with its braces balanced; None when absent or unclosed."""
    idx = string.rfind("\\boxed")
    if idx < 0:
        idx = string.rfind("\\fbox")
        if idx < 0:
            return None
    depth = 0
    for i in range(idx, len(string)):
        if string[i] == "{":
            depth += 1
        elif string[i] == "}":
            depth -= 1
            if depth == 0:
                return string[idx : i + 1]
    return None


def remove_boxed(s: str | None) -> str | None:
    """Content of ``\\boxed{...}``; None for anything else (``\\fbox{..}``, ``\\boxed 5``, None), as the reference."""
    left = "\\boxed{"
    if s is None or not s.startswith(left) or not s.endswith("}"):
        return None
    return s[len(left) : -1]


def extract_math_answer_reference(completion: str) -> str | None:
    """Text after the LAST ``'The answer is: '``, cut at the first ``'.\\n'``, stripped, minus ONE trailing '.'.

    None when the marker is absent: the reference counts such a completion wrong ("invalid output").
    """
    pieces = completion.split(ANSWER_MARKER)
    if len(pieces) < 2:
        return None
    answer = pieces[-1].split(".\n")[0].strip()
    if answer.endswith("."):
        answer = answer[:-1]
    return answer.strip()


def math_gold(record: dict) -> str | None:
    """Gold answer of a MATH record: ``answer`` when present (MATH-500, PiSSA), else the last boxed answer of
    ``output`` (MetaMath) or ``solution`` (Hendrycks). None when that has no ``\\boxed{..}`` (scored wrong)."""
    if "answer" in record:
        return record["answer"]
    solution = record["output"] if "output" in record else record["solution"]
    return remove_boxed(last_boxed_only_string(solution))


def math_verify_latex_correct(completion: str, gold: str | None) -> bool:
    """Math-Verify's verdict, with gold and final answer shown to it as LaTeX math (``$...$``).

    Math-Verify only reads LaTeX inside math delimiters, and MATH golds and MetaMath-style answers
    ("The answer is: \\frac{1}{2}") have none: called on the raw texts it misreads 66 of the 500 MATH-500
    golds given as their own answer ("3\\sqrt{13}" read as 3). Delimited, it reads all 500. The final answer is
    the reference extraction; a completion without the marker is passed unchanged (Math-Verify may still find a
    boxed or delimited answer in it).
    """
    if gold is None:
        return False
    extracted = extract_math_answer_reference(completion)
    if extracted is not None and "$" not in extracted.replace("\\$", ""):  # "\\$" is an escaped dollar sign
        completion = f"{ANSWER_MARKER}${extracted}$"
    return math_verify_correct(completion, f"${gold}$")


# --------------------------------------------------------------------------------------------
# Hendrycks normalisation (util.py), raising exactly where the reference raises
# --------------------------------------------------------------------------------------------
def fix_fracs(string: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1b`` -> ``\\frac{1}{b}``. IndexError on a trailing ``\\frac``."""
    substrs = string.split("\\frac")
    new_str = substrs[0]
    for substr in substrs[1:]:
        new_str += "\\frac"
        if substr[0] == "{":  # IndexError when "\\frac" ends the string (reference behaviour)
            new_str += substr
            continue
        if len(substr) < 2:
            return string
        a, b, rest = substr[0], substr[1], substr[2:]
        new_str += "{" + a + "}{" + b + "}" + rest if b != "{" else "{" + a + "}" + b + rest
    return new_str


def fix_a_slash_b(string: str) -> str:
    """``"3/4"`` -> ``\\frac{3}{4}``. Reference quirk: only AssertionError is caught, so one '/' between
    sides that are not both integers (``x/2``, ``\\pi/2``) raises ValueError."""
    parts = string.split("/")
    if len(parts) != 2:
        return string
    a, b = int(parts[0]), int(parts[1])  # ValueError escapes, as in the reference
    if string != f"{a}/{b}":
        return string
    return "\\frac{" + str(a) + "}{" + str(b) + "}"


def remove_right_units(string: str) -> str:
    """Drop what follows ``"\\text{ "`` (units). AssertionError when it occurs more than once (reference)."""
    if "\\text{ " not in string:
        return string
    splits = string.split("\\text{ ")
    assert len(splits) == 2
    return splits[0]


def fix_sqrt(string: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}``. IndexError on a trailing ``\\sqrt`` (reference behaviour)."""
    splits = string.split("\\sqrt")
    new_string = splits[0]
    for split in splits[1:]:
        if split[0] != "{":
            new_string += "\\sqrt{" + split[0] + "}" + split[1:]
        else:
            new_string += "\\sqrt" + split
    return new_string


def strip_string(string: str) -> str:
    """Hendrycks' answer normalisation, step for step as the reference."""
    string = string.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    string = string.replace("tfrac", "frac").replace("dfrac", "frac")
    string = string.replace("\\left", "").replace("\\right", "")
    string = string.replace("^{\\circ}", "").replace("^\\circ", "")
    string = string.replace("\\$", "")
    string = remove_right_units(string)
    string = string.replace("\\%", "")  # the reference's second replace("\%") is the same string
    string = string.replace(" .", " 0.").replace("{.", "{0.")
    if not string:
        return string
    if string[0] == ".":
        string = "0" + string
    # "k = 5" -> "5" when the left side is at most 2 characters
    sides = string.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        string = sides[1]
    string = fix_sqrt(string)
    string = string.replace(" ", "")
    string = fix_fracs(string)
    if string == "0.5":
        string = "\\frac{1}{2}"
    return fix_a_slash_b(string)


# --------------------------------------------------------------------------------------------
# grader.math_equal with its sympy branch
# --------------------------------------------------------------------------------------------
@functools.cache
def latex_parser_available() -> bool:
    """Whether sympy's ``parse_latex`` works here (it needs antlr4-python3-runtime 4.11; hydra pins 4.9.3).

    The authors' requirements list no antlr either, so there it failed too and every string went to
    ``parse_expr``: LaTeX answers (``\\frac{1}{2}``) then never compare symbolically, only as strings.
    """
    try:
        from sympy.parsing.latex import parse_latex

        parse_latex("x")
        return True
    except Exception:  # noqa: BLE001 - ImportError for a missing/wrong antlr, anything else means unusable too
        return False


@functools.cache
def _sympy_globals() -> dict:
    """The namespace ``parse_expr`` builds by default (sympy + builtin functions), less the unsafe builtins."""
    from sympy import Max, Min

    namespace: dict = {}
    exec("from sympy import *", namespace)  # noqa: S102 - exactly what parse_expr does itself
    for name, obj in vars(builtins).items():
        if isinstance(obj, types.BuiltinFunctionType) and name not in _UNSAFE_BUILTINS:
            namespace[name] = obj
    namespace["max"], namespace["min"] = Max, Min
    return namespace


def _sympy_may_read(s: str) -> bool:
    """Short, and free of dunders and string literals: the guards of the module docstring."""
    return len(s) <= SYMPY_MAX_CHARS and "__" not in s and "'" not in s and '"' not in s


def _parse(s: str):
    """The reference ``_parse``: parse_latex, else parse_expr, else the string itself."""
    if latex_parser_available():
        from sympy.parsing.latex import parse_latex

        try:
            return parse_latex(s)
        except Exception:  # noqa: BLE001 - the reference's bare except
            pass
    from sympy.parsing.sympy_parser import parse_expr

    try:
        return parse_expr(s, global_dict=_sympy_globals())
    except Exception:  # noqa: BLE001
        return s


def _numeric_value(x):
    """``sympy.N(x)``; a string is parsed the way ``N`` would (``sympify(rational=True)``), in the safe namespace."""
    from sympy import N
    from sympy.parsing.sympy_parser import convert_xor, parse_expr, rationalize, standard_transformations

    if isinstance(x, str):
        transformations = standard_transformations + (rationalize, convert_xor)
        x = parse_expr(x.replace("\n", ""), transformations=transformations, global_dict=_sympy_globals())
    return N(x)


def symbolic_equal(a: str, b: str) -> bool:
    """grader.symbolic_equal: ``simplify(a - b) == 0``, else ``N(a)`` and ``N(b)`` within rel_tol 1e-3."""
    if not (_sympy_may_read(a) and _sympy_may_read(b)):
        return False
    from sympy import simplify

    a, b = _parse(a), _parse(b)
    try:
        if simplify(a - b) == 0:
            return True
    except Exception:  # noqa: BLE001 - the reference's bare except
        pass
    try:
        if isclose(_numeric_value(a), _numeric_value(b), rel_tol=1e-3):
            return True
    except Exception:  # noqa: BLE001
        pass
    return False


def _as_float(x) -> float | None:
    """The reference ``is_digit`` + conversion: float of str(x) without commas, else None."""
    try:
        return float(str(x).replace(",", ""))
    except ValueError:
        return None


def reference_math_equal(
    prediction, reference, include_percentage: bool = True, is_close: bool = True, rel_tol: float = 1e-4,
    symbolic: bool = True,
) -> bool:
    """grader.math_equal (``timeout=False``, as the MATH script calls it); GSM8K's grader is the same function
    with ``symbolic=False`` (answer_extraction.math_equal).

    1. Both numeric (commas ignored): equal to the reference, or (``include_percentage``) to reference/100 or
       reference×100, within ``rel_tol`` (exactly when not ``is_close``). No other test then.
    2. Strings equal after dropping ``{ } ( )`` (and outer brackets of a bracketed prediction).
    3. ``[a, b]`` vs ``[c, d]`` (or both in parentheses): element by element, recursively.
    4. `symbolic_equal`, unless ``symbolic`` is False.
    """
    pred_value, ref_value = _as_float(prediction), _as_float(reference)
    if pred_value is not None and ref_value is not None:
        candidates = [ref_value / 100, ref_value, ref_value * 100] if include_percentage else [ref_value]
        if is_close:
            return any(isclose(c, pred_value, rel_tol=rel_tol) for c in candidates)
        return any(c == pred_value for c in candidates)

    if not prediction and prediction not in [0, False]:
        return False

    reference, prediction = str(reference).strip(), str(prediction).strip()
    pred_str, ref_str = prediction, reference
    if (prediction.startswith("[") and prediction.endswith("]") and not reference.startswith("(")) or (
        prediction.startswith("(") and prediction.endswith(")") and not reference.startswith("[")
    ):
        pred_str, ref_str = pred_str.strip("[]()"), ref_str.strip("[]()")
    for bracket in "{}()":
        pred_str, ref_str = pred_str.replace(bracket, ""), ref_str.replace(bracket, "")
    if pred_str == ref_str:
        return True

    def both_wrapped_in(opening: str, closing: str) -> bool:
        return all(s.startswith(opening) and s.endswith(closing) for s in (prediction, reference))

    if both_wrapped_in("[", "]") or both_wrapped_in("(", ")"):
        pred_parts, ref_parts = prediction[1:-1].split(","), reference[1:-1].split(",")
        if len(pred_parts) == len(ref_parts) and all(
            reference_math_equal(p, r, include_percentage, is_close, rel_tol, symbolic)
            for p, r in zip(pred_parts, ref_parts)
        ):
            return True

    return symbolic and symbolic_equal(prediction, reference)


# --------------------------------------------------------------------------------------------
# util.is_equiv: reference (with its bug) and fixed
# --------------------------------------------------------------------------------------------
class MathJudgement(NamedTuple):
    reference: bool  # util.is_equiv verbatim: the paper-parity verdict
    fixed: bool  # the same, with the exception branch fixed to str1 == str2
    exception_path: bool  # strip_string raised, so the verdict came from the except branch


def judge_math(pred: str | None, gold: str | None) -> MathJudgement:
    """Both verdicts of util.is_equiv with one pass of the (possibly slow) sympy comparison."""
    if pred is None or gold is None:
        both_none = pred is None and gold is None  # the reference prints a warning and says equal
        return MathJudgement(both_none, both_none, False)
    try:
        stripped_pred, stripped_gold = strip_string(pred), strip_string(gold)
        verdict = reference_math_equal(stripped_pred, stripped_gold) or stripped_pred == stripped_gold
    except Exception:  # noqa: BLE001 - the reference's `except Exception`
        # Reference bug: math_equal(str1, str1) compares the prediction with itself, True for any non-empty
        # prediction. The commented-out line above it in the reference, `return str1 == str2`, is the fix.
        return MathJudgement(reference_math_equal(pred, pred) or pred == gold, pred == gold, True)
    return MathJudgement(verdict, verdict, False)


def is_equiv_reference(pred: str | None, gold: str | None) -> tuple[bool, bool]:
    """util.is_equiv verbatim, bug included: (verdict, whether it went through the exception path)."""
    judgement = judge_math(pred, gold)
    return judgement.reference, judgement.exception_path


def is_equiv_fixed(pred: str | None, gold: str | None) -> bool:
    """util.is_equiv with its exception branch fixed to plain string equality."""
    return judge_math(pred, gold).fixed
