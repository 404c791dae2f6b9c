"""The reference post-processing of generated code (LyoAI/Astra utils/code_process.py, protocol §3.3), step for
step, quirks included, so that our HumanEval/MBPP numbers are computed on the same text as the paper's."""

from __future__ import annotations

PYTHON_FENCE = "```python"
FENCE_END = "\n```"
MAIN_GUARD_PROBE = '__name__ == "__main__"'  # what the reference tests for ...
MAIN_GUARD_LINE = 'if __name__ == "__main__":'  # ... and what it then cuts at
EXAMPLE_USAGE = "# Example usage"
ASSERT = "assert"


def postprocess_completion(raw: str) -> str:
    """The text EvalPlus scores (as `completion`: it prepends the problem prompt itself).

    In the reference's order: drop "\\r"; if a ```python fence is present keep the text from it, strip, remove
    every "```python" marker, and cut at the first "\\n```" (strip only when that closing fence exists); cut at
    `if __name__ == "__main__":`; cut at "# Example usage"; cut at the first "assert" anywhere, even inside a
    word such as "assertion" (reference quirk, kept). Each cut is followed by a strip, as in the reference.

    The `__main__` quirk: the reference tests for `__name__ == "__main__"` but cuts at the longer
    `if __name__ == "__main__":`; when only the former occurs (`if __name__ == '__main__' :`, a `while` or an
    `and`) its `str.index` raises ValueError and aborts the whole post-processing script, so none of the
    paper's samples can have taken that path. Here that case leaves the text unchanged at this step (the only
    choice that neither invents a cut nor aborts); the later cuts still apply.
    """
    completion = raw.replace("\r", "")
    if PYTHON_FENCE in completion:
        completion = completion[completion.index(PYTHON_FENCE):].strip()
        completion = completion.replace(PYTHON_FENCE, "")
        if FENCE_END in completion:
            completion = completion[: completion.index(FENCE_END)].strip()
    if MAIN_GUARD_PROBE in completion and MAIN_GUARD_LINE in completion:
        completion = completion[: completion.index(MAIN_GUARD_LINE)].strip()
    if EXAMPLE_USAGE in completion:
        completion = completion[: completion.index(EXAMPLE_USAGE)].strip()
    if ASSERT in completion:
        completion = completion[: completion.index(ASSERT)].strip()
    return completion
