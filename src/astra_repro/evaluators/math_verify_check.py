"""HuggingFace's Math-Verify as one verdict function, shared by GSM8K (answer_extraction) and MATH (math_grading).

A module of its own, below both graders, so neither grader imports the other for it (pure function, no model code).
"""

from __future__ import annotations


def math_verify_correct(completion: str, gold: str | int | float) -> bool:
    """True when Math-Verify finds the completion's answer equal to ``gold``; False when it cannot parse one.

    Timeouts are disabled (``parsing_timeout=None``, ``timeout_seconds=None``): Math-Verify's
    timeouts use ``signal.alarm``, which raises outside the main thread (e.g. in eval workers).
    A broken installation (math-verify or its LaTeX parser failing to import) raises instead of scoring every
    sample 0: that would be a silent wrong result.
    """
    from math_verify import parse, verify

    try:
        gold_str = str(gold)
        gold_parsed = parse(gold_str, parsing_timeout=None)
        if not gold_parsed:
            # Bare LaTeX golds (e.g. MATH's "\frac{1}{2}") sometimes need math delimiters to parse.
            gold_parsed = parse(f"${gold_str}$", parsing_timeout=None)
        pred_parsed = parse(completion, parsing_timeout=None)
        if not gold_parsed or not pred_parsed:
            return False
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))
    except ImportError as err:  # e.g. latex2sympy2_extended with an unsupported antlr4 runtime
        raise RuntimeError(f"math-verify is installed but cannot run ({err}); reinstall it: pip install -U math-verify") from err
    except Exception:  # noqa: BLE001 - one unparsable sample must not crash an evaluation
        return False
