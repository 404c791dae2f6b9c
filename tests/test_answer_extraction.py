"""Answer extraction and grading: reference parity (protocol §3.1), flexible extraction, math_verify."""

import threading

import pytest

from astra_repro.evaluators.answer_extraction import (
    EXTRACTION_VERSION,
    extract_gsm8k_reference,
    gsm8k_flexible_extract,
    gsm8k_gold,
    gsm8k_reference_correct,
    math_equal,
    math_verify_correct,
)


def test_version_constant():
    assert EXTRACTION_VERSION == "gsm8k-ref-1"


# --- gold -------------------------------------------------------------------------------------
def test_gsm8k_gold():
    assert gsm8k_gold("She has 3 + 4 = <<3+4=7>>7.\n#### 7") == 7
    assert gsm8k_gold("big\n#### 1,234") == 1234
    assert gsm8k_gold("#### -5") == -5


def test_gsm8k_gold_without_marker_raises():
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("The answer is 7")


# --- strict reference extraction --------------------------------------------------------------
@pytest.mark.parametrize(
    "completion, expected",
    [
        ("3 + 4 = 7. The answer is: 7", 7),
        ("The answer is: 18", 18),
        ("The answer is: $18", 18),  # non-digits before the number are skipped
        ("The answer is: 18.", 18),  # trailing period is not part of the number
        ("The answer is: 3.7", 4),  # reference quirk: rounded to int
        ("The answer is: 3.2", 3),
        ("The answer is: 2.5", 2),  # reference quirk: banker's rounding
        ("The answer is: 3/4", 1),  # fraction -> 0.75 -> 1
        ("The answer is: 6/4", 2),  # 1.5 -> 2
        ("The answer is: 1/4", 0),
        ("The answer is: 5/0", 5),  # reference quirk: "x/0" reads as x
        ("The answer is: /4", None),  # empty numerator
        ("The answer is: 1,234", 1234),  # commas stripped
        ("The answer is: 1,234,567", 1234),  # reference quirk: one separator only
        ("The answer is: -7", -7),
        ("The answer is: +7", 7),
        ("The answer is: 12 apples and 5 pears", 12),  # FIRST number after the marker
        ("The answer is: 5 The answer is: 9", 9),  # LAST marker wins
        ("The answer is: none", None),
        ("The answer is 18", None),  # marker needs the colon
        ("She has 18 apples.", None),  # reference quirk: no marker -> no answer
        ("The answer is: " + "9" * 400, None),  # inf guard
        ("", None),
    ],
)
def test_extract_gsm8k_reference(completion, expected):
    got = extract_gsm8k_reference(completion)
    assert got == expected
    if expected is not None:
        assert isinstance(got, int)


def test_extract_reference_without_marker_variant_takes_first_number_of_whole_text():
    text = "First 3 apples, then 5 more, so 8."
    assert extract_gsm8k_reference(text) is None
    assert extract_gsm8k_reference(text, require_marker=False) == 3
    # with the marker present the option changes nothing
    assert extract_gsm8k_reference("x 3. The answer is: 8", require_marker=False) == 8


# --- math_equal -------------------------------------------------------------------------------
def test_math_equal_numeric_and_percentage():
    assert math_equal(18, 18)
    assert math_equal("18", 18.0)
    assert math_equal("1,234", 1234)
    assert math_equal(1800, 18)  # reference * 100
    assert math_equal(0.18, 18)  # reference / 100
    assert not math_equal(1800, 18, include_percentage=False)
    assert not math_equal(19, 18)
    assert math_equal(18.001, 18)  # within rel_tol 1e-4
    assert not math_equal(18.01, 18)
    assert math_equal(18.01, 18, rel_tol=1e-3)


def test_math_equal_strings():
    assert math_equal(" x+1 ", "x+1")
    assert math_equal("{5}", "5")  # braces and parentheses are dropped before comparing
    assert math_equal("\\frac{1}{2}", "\\frac12")
    assert math_equal("(1, 2)", "(1,2)")
    assert math_equal("[1, 2.0]", "[1,2]")  # element-wise numeric
    assert not math_equal("x+1", "x+2")
    assert not math_equal("", "5")
    assert not math_equal(None, "5")


def test_gsm8k_reference_correct():
    assert gsm8k_reference_correct(18, 18)
    assert gsm8k_reference_correct(1800, 18)  # reference quirk via math_equal percentage
    assert not gsm8k_reference_correct(17, 18)
    assert not gsm8k_reference_correct(None, 18)
    assert gsm8k_reference_correct("18.0", 18)
    # end to end: extraction then grading
    assert gsm8k_reference_correct(extract_gsm8k_reference("The answer is: 17.6"), 18)
    assert not gsm8k_reference_correct(extract_gsm8k_reference("She has 18."), 18)


# --- flexible extraction ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "completion, expected",
    [
        ("She has 3 + 15 = 18 apples.", "18"),  # last number, no marker needed
        ("The answer is 18. Check: 3 * 6 = 18, done in 2 steps", "18"),  # number after the marker
        ("#### 1,234", "1234"),
        ("work 5 then #### 42\nextra 7", "42"),
        ("The answer is: -7", "-7"),
        ("5-3 = 2 so it is 5-3", "3"),  # binary minus is not a sign
        ("costs $12.50 in total", "12.50"),
        ("So 4 and 9. The answer is unknown.", "9"),  # no number after marker -> last number
        ("no digits here", None),
    ],
)
def test_gsm8k_flexible_extract(completion, expected):
    assert gsm8k_flexible_extract(completion) == expected


def test_flexible_and_strict_differ():
    text = "Tom has 3 * 6 = 18 apples."
    assert extract_gsm8k_reference(text) is None
    assert gsm8k_flexible_extract(text) == "18"
    assert gsm8k_reference_correct(gsm8k_flexible_extract(text), 18)
    # strict takes the FIRST number after the marker, flexible too, but strict rounds
    assert extract_gsm8k_reference("The answer is: 17.6") == 18
    assert gsm8k_flexible_extract("The answer is: 17.6") == "17.6"


# --- math_verify ------------------------------------------------------------------------------
def test_math_verify_correct():
    assert math_verify_correct("The answer is: 18", 18)
    assert math_verify_correct("So the total is \\boxed{18}.", "18")
    assert not math_verify_correct("\\boxed{17}", 18)
    assert not math_verify_correct("no number here", 18)
    assert math_verify_correct("x = 1/2", "\\frac{1}{2}")


def test_math_verify_works_outside_main_thread():
    """Timeouts are disabled, so no signal.alarm: must work in a worker thread."""
    results = []
    t = threading.Thread(target=lambda: results.append(math_verify_correct("The answer is: 18", 18)))
    t.start()
    t.join(timeout=60)
    assert results == [True]


def test_math_verify_broken_install_raises_instead_of_scoring_zero(monkeypatch):
    import math_verify

    def broken_parse(*args, **kwargs):
        raise ImportError("Unsupported ANTLR version")

    monkeypatch.setattr(math_verify, "parse", broken_parse)
    with pytest.raises(RuntimeError, match="math-verify"):
        math_verify_correct("The answer is: 18", 18)
