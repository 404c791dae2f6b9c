"""Built-in synthetic Python function problems, used only when no real code training data is available.

The offline demo needs *some* instruction -> code data for the code task; these records stand in for
CodeFeedback-Python (pissa-dataset ``type == "python"``) and are always recorded as ``data_source: synthetic``.
They are never a substitute for the real data in a paper-scale run.

Each record is a small HumanEval-shaped problem written by the project's own templates::

    task_id             "Synthetic/<k>" (k = position in the generated list)
    instruction         a natural-language request naming the signature, e.g.
                        "Write a Python function `count_char(text, ch)` that returns how many times `ch` occurs in `text`."
    prompt              signature + docstring (one doctest example), ending in a newline
    entry_point         the function name
    canonical_solution  the body that completes ``prompt`` (<= 8 lines)
    test                ``def check(candidate):`` with 3-5 asserts on concrete inputs
    output              the training target, CodeFeedback-answer style: one sentence, a ```python block with the
                        whole function, one sentence of explanation

20 templates (filtered sums/products, max/min with a default, char counts, word reversal, palindromes,
fizzbuzz-like labels, clamping, running totals/maxima, threshold filters, repeat/join, digit statistics,
triangular-style sums, letter removal, word capitalisation, second largest/smallest, merging sorted lists,
word counts, floor averages, scale-and-shift) draw function and argument names from small pools, constants
from ranges and the wording from a few phrasings, so there are thousands of distinct functions. The expected
values in ``test`` come from a plain-Python reference of each template, evaluated here on the inputs; the
generated source itself is never executed by this module (the unit tests do that, to check the two agree).

Every ``test`` expects at least two different values (candidates whose asserts all expect one value are
skipped), so a function returning a constant never passes.

Determinism: ``generate(split, n, seed)`` draws from ``random.Random`` seeded with a SHA-256 of
``(split, seed)``, never Python's salted ``hash``, and never iterates over a set, so the same arguments give the
same list in every process; a larger ``n`` extends a smaller one (prefix-stable).

Train/test disjointness rule: the *problem text* that decides the split is the function's source (its
signature line plus ``canonical_solution``), not the wording, so two rephrasings of one function can never
straddle the splits. A function belongs to ``test`` iff ``int(sha1(source).hexdigest(), 16) % 10 < 2`` (about 20%),
and to ``train`` otherwise. Each split's stream rejects functions of the other split and functions it already
produced, so disjointness holds for any ``n`` and any pair of seeds, by construction.
"""

from __future__ import annotations

import hashlib
import random
import textwrap
from dataclasses import dataclass
from typing import Any, Callable

from astra_repro.data.sampling import sample_distinct

SPLITS = ("train", "test")
_TEST_BUCKETS = 2  # out of 10 sha1 buckets -> ~20% of the function space is test
MAX_BODY_LINES = 8  # short enough for a ~135M model to learn the answer format in a few dozen steps

_LIST_PARAMS = ["nums", "numbers", "values", "items", "data", "arr"]
_TEXT_PARAMS = ["text", "s", "sentence", "phrase", "line"]
_INT_PARAMS = ["n", "number", "num", "value"]
_WORDS = [
    "apple", "banana", "level", "river", "stone", "cloud", "tiger", "green", "noon", "python", "data", "code",
    "music", "garden", "light", "ocean", "paper", "radar", "sky", "window", "bird", "is", "a", "the", "of",
    "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "hello", "world", "open", "door",
]
_PALINDROMES = ["level", "Radar", "noon", "step on no pets", "Top spot", "racecar", "a", "", "Never odd or even",
                "No lemon no melon", "abba", "Madam"]
_NON_PALINDROMES = ["python", "hello world", "Level up", "abca", "data", "ab", "open door", "Radar gun"]
_LABEL_WORDS = ["Fizz", "Buzz", "Ping", "Pong", "Foo", "Bar", "Zap", "Zip", "Tick", "Tock", "Bing", "Bong"]
_SEPARATORS = [" ", "-", "_", ", ", " | ", "/", "+", ".", ";", " - "]
_VOWELS = "aeiou"


@dataclass(frozen=True)
class _Problem:
    """One template instance; ``reference`` computes what ``body`` computes, in plain Python."""

    entry_point: str
    params: list[tuple[str, str]]  # (name, type hint)
    returns: str
    summary: str  # starts with "returns ", backticks around argument names
    body: list[str]  # solution lines, indented relative to the function body
    reference: Callable[..., Any]
    inputs: list[tuple]
    explanation: str

    @property
    def signature(self) -> str:
        args = ", ".join(f"{name}: {hint}" for name, hint in self.params)
        return f"def {self.entry_point}({args}) -> {self.returns}:"

    @property
    def call(self) -> str:
        return f"{self.entry_point}({', '.join(name for name, _ in self.params)})"

    @property
    def source(self) -> str:
        """The function without docstring: what decides the split and what the training answer shows."""
        return self.signature + "\n" + "".join(f"    {line}\n" for line in self.body)


# --------------------------------------------------------------------------------------------
# Input helpers
# --------------------------------------------------------------------------------------------
def _ints(rng: random.Random, lo: int, hi: int, min_len: int, max_len: int) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(min_len, max_len))]


def _sentence(rng: random.Random, min_words: int = 1, max_words: int = 5) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randint(min_words, max_words))]
    return " ".join(w.capitalize() if rng.random() < 0.2 else w for w in words)


def _sorted_ints(rng: random.Random) -> list[int]:
    return sorted(_ints(rng, -5, 20, 0, 5))


# --------------------------------------------------------------------------------------------
# Templates: rng -> _Problem
# --------------------------------------------------------------------------------------------
def _sum_filtered(rng: random.Random) -> _Problem:
    kind = rng.choice(["divisible", "above", "below"])
    p = rng.choice(_LIST_PARAMS)
    if kind == "divisible":
        k = rng.randint(2, 9)
        name = rng.choice(["sum_multiples", "sum_divisible", "total_multiples"])
        cond_text, cond, qualifying = f"divisible by {k}", f"x % {k} == 0", k * rng.randint(1, 3)
        keep = lambda x: x % k == 0  # noqa: E731
    elif kind == "above":
        k = rng.randint(0, 20)
        name = rng.choice(["sum_above", "sum_greater", "total_above"])
        cond_text, cond, qualifying = f"greater than {k}", f"x > {k}", k + rng.randint(1, 9)
        keep = lambda x: x > k  # noqa: E731
    else:
        k = rng.randint(2, 20)
        name = rng.choice(["sum_below", "sum_smaller", "total_below"])
        cond_text, cond, qualifying = f"smaller than {k}", f"x < {k}", rng.randint(1, k - 1)
        keep = lambda x: x < k  # noqa: E731
    inputs = [(_ints(rng, 0, 30, 0, 6) + [qualifying],)] + [(_ints(rng, 0, 30, 1, 8),) for _ in range(2)] + [([],)]
    return _Problem(
        name, [(p, "list[int]")], "int",
        f"returns the sum of the numbers in `{p}` that are {cond_text}",
        [f"return sum(x for x in {p} if {cond})"],
        lambda nums: sum(x for x in nums if keep(x)),
        inputs,
        f"The generator expression keeps only the numbers {cond_text} and `sum` adds them up, giving 0 when none qualify.",
    )


def _product_filtered(rng: random.Random) -> _Problem:
    p = rng.choice(_LIST_PARAMS)
    if rng.random() < 0.5:
        k = rng.randint(-2, 6)
        name = rng.choice(["product_above", "multiply_above", "product_greater"])
        cond_text, cond, qualifying = f"greater than {k}", f"x > {k}", max(2, k + rng.randint(1, 3))
        keep = lambda x: x > k  # noqa: E731
    else:
        k = rng.randint(0, 9)
        name = rng.choice(["product_except", "product_without", "multiply_except"])
        cond_text, cond, qualifying = f"not equal to {k}", f"x != {k}", rng.choice([x for x in range(2, 10) if x != k])
        keep = lambda x: x != k  # noqa: E731
    inputs = [(_ints(rng, -3, 9, 0, 3) + [qualifying, k],)] + [(_ints(rng, -3, 9, 1, 5),) for _ in range(2)] + [([],)]

    def reference(nums):
        result = 1
        for x in nums:
            if keep(x):
                result *= x
        return result

    return _Problem(
        name, [(p, "list[int]")], "int",
        f"returns the product of the numbers in `{p}` that are {cond_text} (1 if there are none)",
        ["result = 1", f"for x in {p}:", f"    if {cond}:", "        result *= x", "return result"],
        reference,
        inputs,
        f"The loop multiplies only the numbers {cond_text} into `result`, which starts at 1 so an empty selection gives 1.",
    )


def _extreme_or_default(rng: random.Random) -> _Problem:
    largest = rng.random() < 0.5
    use_abs = rng.random() < 0.3
    p, default = rng.choice(_LIST_PARAMS), rng.randint(-9, 9)
    fn, word = ("max", "largest") if largest else ("min", "smallest")
    if use_abs:
        name = rng.choice([f"{fn}_abs", f"{word}_magnitude", f"{word}_abs"])
        what, expr = f"the {word} absolute value among the numbers in `{p}`", f"{fn}(abs(x) for x in {p})"
        pick = (lambda nums: max(abs(x) for x in nums)) if largest else (lambda nums: min(abs(x) for x in nums))
    else:
        name = rng.choice([word, f"{fn}_or_default", "biggest" if largest else "lowest"])
        what, expr = f"the {word} number in `{p}`", f"{fn}({p})"
        pick = max if largest else min
    return _Problem(
        name, [(p, "list[int]")], "int",
        f"returns {what}, or {default} if `{p}` is empty",
        [f"if not {p}:", f"    return {default}", f"return {expr}"],
        lambda nums: pick(nums) if nums else default,
        [(_ints(rng, -20, 20, 1, 6),) for _ in range(3)] + [([],)],
        f"An empty list returns {default} straight away; otherwise `{fn}` finds {what}.",
    )


def _count_char(rng: random.Random) -> _Problem:
    t, ignore_case = rng.choice(_TEXT_PARAMS), rng.random() < 0.4
    case_text = ", ignoring case" if ignore_case else ""
    starter = rng.choice(_WORDS)
    letter = rng.choice(starter)
    texts = [f"{_sentence(rng, 0, 3)} {starter}".strip(), _sentence(rng), _sentence(rng),
             " ".join(w for w in rng.sample(_WORDS, 4) if letter not in w.lower())]
    if rng.random() < 0.3:
        ch = rng.choice(["ch", "char", "letter", "c"])
        name = rng.choice(["count_char", "char_count", "occurrences"])
        body = f"return {t}.lower().count({ch}.lower())" if ignore_case else f"return {t}.count({ch})"
        inputs = [(texts[0], letter)] + [(x, rng.choice(x)) for x in texts[1:3]] + [(texts[3], letter)]
        return _Problem(
            name, [(t, "str"), (ch, "str")], "int",
            f"returns how many times the character `{ch}` occurs in `{t}`{case_text}",
            [body],
            (lambda s, c: s.lower().count(c.lower())) if ignore_case else (lambda s, c: s.count(c)),
            inputs,
            "`str.count` counts the non-overlapping occurrences" + (" after both strings are lower-cased." if ignore_case else "."),
        )
    name = rng.choice(["count_letter", "letter_count", f"count_{letter}"])
    body = f"return {t}.lower().count({letter!r})" if ignore_case else f"return {t}.count({letter!r})"
    return _Problem(
        name, [(t, "str")], "int",
        f"returns how many times the letter '{letter}' occurs in `{t}`{case_text}",
        [body],
        (lambda s: s.lower().count(letter)) if ignore_case else (lambda s: s.count(letter)),
        [(x,) for x in texts],
        f"`str.count` counts the occurrences of '{letter}'" + (" in the lower-cased text." if ignore_case else "."),
    )


def _reverse_words(rng: random.Random) -> _Problem:
    t, sep = rng.choice(_TEXT_PARAMS), rng.choice(_SEPARATORS)
    inputs = [(_sentence(rng, 1, 5),) for _ in range(3)] + [("",)]
    if rng.random() < 0.5:
        return _Problem(
            rng.choice(["reverse_words", "reversed_words", "flip_words"]), [(t, "str")], "str",
            f"returns the words of `{t}` (split on whitespace) in reverse order, joined by '{sep}'",
            [f"return {sep!r}.join(reversed({t}.split()))"],
            lambda s: sep.join(reversed(s.split())),
            inputs,
            f"`split()` breaks the text into words, `reversed` flips their order and `join` puts '{sep}' between them.",
        )
    return _Problem(
        rng.choice(["reverse_each_word", "mirror_words", "flip_letters"]), [(t, "str")], "str",
        f"returns the words of `{t}` (split on whitespace) with the letters of each word reversed, joined by '{sep}'",
        [f"return {sep!r}.join(word[::-1] for word in {t}.split())"],
        lambda s: sep.join(word[::-1] for word in s.split()),
        inputs,
        f"Each word is reversed with the slice `[::-1]` and the words are joined with '{sep}'.",
    )


def _palindrome(rng: random.Random) -> _Problem:
    kind = rng.choice(["text", "text", "number", "list"])
    if kind == "number":
        n = rng.choice(_INT_PARAMS)
        values = [rng.choice([121, 7, 1331, 45654, 9009, 0]), rng.choice([12, 123, 1000, 4321, 90]), rng.randint(0, 999)]
        return _Problem(
            rng.choice(["is_palindromic_number", "number_palindrome", "is_mirror_number"]), [(n, "int")], "bool",
            f"returns `True` if the decimal digits of the non-negative integer `{n}` read the same forwards and backwards",
            [f"digits = str({n})", "return digits == digits[::-1]"],
            lambda v: str(v) == str(v)[::-1],
            [(v,) for v in values],
            "The number is turned into its digit string, which is compared with its reverse.",
        )
    if kind == "list":
        p, min_len = rng.choice(_LIST_PARAMS), rng.randint(0, 4)
        pal, other = _ints(rng, 0, 9, 2, 3), _ints(rng, 0, 9, 2, 5)
        other[-1] = other[0] + 1
        values = [pal + pal[::-1], pal + [rng.randint(0, 9)] + pal[::-1], other, []]
        if min_len:
            summary = f"returns `True` if `{p}` has at least {min_len} elements and is the same when reversed"
            body, ref = [f"return len({p}) >= {min_len} and {p} == {p}[::-1]"], (lambda xs: len(xs) >= min_len and xs == xs[::-1])
        else:
            summary = f"returns `True` if the list `{p}` is the same when reversed"
            body, ref = [f"return {p} == {p}[::-1]"], (lambda xs: xs == xs[::-1])
        return _Problem(
            rng.choice(["is_list_palindrome", "symmetric_list", "is_symmetric"]), [(p, "list[int]")], "bool",
            summary, body, ref, [(v,) for v in values],
            "A list is a palindrome when it equals its reverse `[::-1]`" + (", and the length check comes first." if min_len else "."),
        )
    t = rng.choice(_TEXT_PARAMS)
    ignore_case, ignore_spaces = rng.random() < 0.6, rng.random() < 0.5
    expr = t + (".lower()" if ignore_case else "") + (".replace(' ', '')" if ignore_spaces else "")
    rules = [w for w, on in (("case", ignore_case), ("spaces", ignore_spaces)) if on]
    ignoring = f", ignoring {' and '.join(rules)}" if rules else ""

    def reference(s):
        cleaned = s.lower() if ignore_case else s
        cleaned = cleaned.replace(" ", "") if ignore_spaces else cleaned
        return cleaned == cleaned[::-1]

    return _Problem(
        rng.choice(["is_palindrome", "palindrome", "reads_same_backwards"]), [(t, "str")], "bool",
        f"returns `True` if `{t}` reads the same forwards and backwards{ignoring}",
        [f"cleaned = {expr}", "return cleaned == cleaned[::-1]"],
        reference,
        [(x,) for x in rng.sample([x for x in _PALINDROMES if reference(x)], 2) + rng.sample(_NON_PALINDROMES, 2)],
        "The string is normalised first" + (f" ({' and '.join(rules)} ignored)" if rules else "")
        + " and then compared with its reverse `[::-1]`.",
    )


def _fizzbuzz(rng: random.Random) -> _Problem:
    n = rng.choice(_INT_PARAMS)
    a, b = rng.sample(range(2, 10), 2)
    w1, w2 = rng.sample(_LABEL_WORDS, 2)

    def reference(v):
        word = (w1 if v % a == 0 else "") + (w2 if v % b == 0 else "")
        return word or str(v)

    inputs = [(a * b * rng.randint(1, 3),), (a * rng.randint(1, 9),), (b * rng.randint(1, 9),), (a * b + 1,)]
    return _Problem(
        rng.choice(["fizz_label", "label_number", "fizzbuzz_word", "word_for"]), [(n, "int")], "str",
        f"returns '{w1}' if `{n}` is divisible by {a}, '{w2}' if it is divisible by {b}, '{w1}{w2}' if it is "
        f"divisible by both, and otherwise `{n}` as a string",
        ["word = ''", f"if {n} % {a} == 0:", f"    word += {w1!r}", f"if {n} % {b} == 0:", f"    word += {w2!r}",
         f"return word or str({n})"],
        reference,
        inputs,
        f"The label is built piece by piece, so a multiple of both {a} and {b} gets '{w1}{w2}', and an empty label "
        "falls back to the number itself.",
    )


def _clamp(rng: random.Random) -> _Problem:
    x = rng.choice(["x", "value", "n", "num"])
    name = rng.choice(["clamp", "limit", "bound", "clip_value"])
    lo = rng.randint(-20, 10)
    hi = lo + rng.randint(1, 30)
    inputs = [(lo - rng.randint(1, 10),), (rng.randint(lo, hi),), (hi + rng.randint(1, 10),), (rng.choice([lo, hi]),)]
    return _Problem(
        name, [(x, "int")], "int",
        f"returns `{x}` clamped to the range from {lo} to {hi} inclusive",
        [f"return max({lo}, min({hi}, {x}))"],
        lambda v: max(lo, min(hi, v)),
        inputs,
        f"`min` caps the value at {hi} and `max` raises it to at least {lo}.",
    )


def _running(rng: random.Random) -> _Problem:
    p = rng.choice(_LIST_PARAMS)
    inputs = [(_ints(rng, -5, 15, 1, 6),) for _ in range(3)] + [([],)]
    if rng.random() < 0.7:
        start = rng.randint(0, 20)

        def totals(nums):
            total, result = start, []
            for x in nums:
                total += x
                result.append(total)
            return result

        return _Problem(
            rng.choice(["running_totals", "cumulative_sum", "prefix_sums"]), [(p, "list[int]")], "list[int]",
            f"returns the running totals of `{p}`: a total that starts at {start} and has each number added in turn, "
            "recorded after every addition",
            [f"total = {start}", "result = []", f"for x in {p}:", "    total += x", "    result.append(total)", "return result"],
            totals,
            inputs,
            f"The loop keeps a running `total` that starts at {start} and appends it after adding each number.",
        )

    def maxima(nums):
        result = []
        for x in nums:
            result.append(x if not result else max(result[-1], x))
        return result

    return _Problem(
        rng.choice(["running_max", "prefix_max", "cumulative_max"]), [(p, "list[int]")], "list[int]",
        f"returns a list whose i-th element is the largest of the first i + 1 numbers in `{p}`",
        ["result = []", f"for x in {p}:", "    result.append(x if not result else max(result[-1], x))", "return result"],
        maxima,
        inputs,
        "Each new element is the larger of the current number and the previous running maximum.",
    )


def _filter_threshold(rng: random.Random) -> _Problem:
    p, k = rng.choice(_LIST_PARAMS), rng.randint(-10, 50)
    op, words = rng.choice([(">", "greater than"), (">=", "at least"), ("<", "less than"), ("<=", "at most")])
    high = op.startswith(">")
    name = rng.choice(["keep_above", "filter_above", "values_above"] if high else ["keep_below", "filter_below", "values_below"])
    keep = {">": lambda x: x > k, ">=": lambda x: x >= k, "<": lambda x: x < k, "<=": lambda x: x <= k}[op]
    inputs = [(_ints(rng, k - 15, k + 15, 1, 7) + [k],) for _ in range(3)] + [([],)]
    if rng.random() < 0.5:
        return _Problem(
            name, [(p, "list[int]")], "list[int]",
            f"returns the numbers in `{p}` that are {words} {k}, in their original order",
            [f"return [x for x in {p} if x {op} {k}]"],
            lambda nums: [x for x in nums if keep(x)],
            inputs,
            f"The list comprehension keeps each number that is {words} {k} and preserves the order.",
        )
    return _Problem(
        name, [(p, "list[int]")], "list[int]",
        f"returns the numbers in `{p}` that are {words} {k}, sorted in ascending order",
        [f"return sorted(x for x in {p} if x {op} {k})"],
        lambda nums: sorted(x for x in nums if keep(x)),
        inputs,
        f"The generator keeps the numbers {words} {k} and `sorted` puts them in ascending order.",
    )


def _repeat_join(rng: random.Random) -> _Problem:
    sep = rng.choice(_SEPARATORS)
    if rng.random() < 0.5:
        w, times = rng.choice(["word", "s", "token"]), rng.choice(["times", "n", "count", "k"])
        inputs = [(rng.choice(_WORDS), rng.randint(1, 4)) for _ in range(3)] + [(rng.choice(_WORDS), 0)]
        return _Problem(
            rng.choice(["repeat_word", "repeat_with_sep", "echo"]), [(w, "str"), (times, "int")], "str",
            f"returns `{w}` repeated `{times}` times with '{sep}' between the copies",
            [f"return {sep!r}.join([{w}] * {times})"],
            lambda word, k: sep.join([word] * k),
            inputs,
            f"`[{w}] * {times}` makes the copies and `join` puts '{sep}' between them (zero copies give an empty string).",
        )
    left, right = rng.choice([("[", "]"), ("(", ")"), ("<", ">"), ("{", "}"), ("*", "*"), ("|", "|")])
    p = rng.choice(["words", "parts", "tokens", "pieces"])
    inputs = [([rng.choice(_WORDS) for _ in range(rng.randint(1, 4))],) for _ in range(3)] + [([],)]
    return _Problem(
        rng.choice(["join_words", "wrap_join", "bracket_join"]), [(p, "list[str]")], "str",
        f"returns the strings in `{p}` joined by '{sep}' and wrapped in '{left}' and '{right}'",
        [f"return {left!r} + {sep!r}.join({p}) + {right!r}"],
        lambda parts: left + sep.join(parts) + right,
        inputs,
        f"`join` places '{sep}' between the strings and the result is wrapped in '{left}' and '{right}'.",
    )


def _digits(rng: random.Random) -> _Problem:
    n = rng.choice(_INT_PARAMS)
    kind = rng.choice(["sum", "times", "above", "parity"])
    of_n = f"the decimal digits of the non-negative integer `{n}`"
    if kind == "sum":
        name = rng.choice(["digit_sum", "sum_of_digits", "add_digits"])
        summary, body = f"returns the sum of {of_n}", f"return sum(int(d) for d in str({n}))"
        ref = lambda v: sum(int(d) for d in str(v))  # noqa: E731
        explanation = f"Each character of `str({n})` is a digit; `int` converts it and `sum` adds them."
    elif kind == "times":
        k = rng.randint(2, 9)
        name = rng.choice(["scaled_digit_sum", "digit_sum_times", "weighted_digit_sum"])
        summary, body = f"returns {k} times the sum of {of_n}", f"return {k} * sum(int(d) for d in str({n}))"
        ref = lambda v: k * sum(int(d) for d in str(v))  # noqa: E731
        explanation = f"The digits of `str({n})` are summed and the total is multiplied by {k}."
    elif kind == "above":
        k = rng.randint(0, 8)
        name = rng.choice(["count_big_digits", "digits_above", "count_large_digits"])
        summary = f"returns how many of {of_n} are greater than {k}"
        body = f"return sum(1 for d in str({n}) if int(d) > {k})"
        ref = lambda v: sum(1 for d in str(v) if int(d) > k)  # noqa: E731
        explanation = f"The generator yields 1 for each digit greater than {k} and `sum` counts them."
    else:
        parity = rng.randint(0, 1)
        label = "even" if parity == 0 else "odd"
        name = rng.choice([f"sum_{label}_digits", f"{label}_digit_sum", f"add_{label}_digits"])
        summary = f"returns the sum of the {label} ones among {of_n}"
        body = f"return sum(int(d) for d in str({n}) if int(d) % 2 == {parity})"
        ref = lambda v: sum(int(d) for d in str(v) if int(d) % 2 == parity)  # noqa: E731
        explanation = f"Only digits whose remainder modulo 2 is {parity} ({label} digits) are added."
    inputs = [(rng.randint(1, 9),), (rng.randint(10, 999),), (rng.randint(1000, 999999),), (int("9" * rng.randint(2, 4)),), (0,)]
    return _Problem(name, [(n, "int")], "int", summary, [body], ref, inputs, explanation)


def _triangular(rng: random.Random) -> _Problem:
    n = rng.choice(["n", "count", "k", "limit"])
    inputs = [(0,), (1,), (rng.randint(2, 10),), (rng.randint(11, 40),)]
    if rng.random() < 0.5:
        k = rng.randint(1, 12)
        if k == 1:
            name, body = "triangular", f"return {n} * ({n} + 1) // 2"
            what = f"the sum of the first `{n}` positive integers (the `{n}`-th triangular number)"
        else:
            name = rng.choice(["sum_of_multiples", f"sum_first_multiples_of_{k}", "multiples_total"])
            what, body = f"the sum of the first `{n}` positive multiples of {k}", f"return {k} * {n} * ({n} + 1) // 2"
        return _Problem(
            name, [(n, "int")], "int", f"returns {what}", [body],
            lambda v: k * v * (v + 1) // 2,
            inputs,
            f"It uses the closed form `{body.removeprefix('return ')}` (Gauss's formula) instead of a loop.",
        )
    a = rng.randint(0, 20)
    inputs = [(a - 1,), (a,), (a + rng.randint(1, 10),), (a + rng.randint(11, 30),)]
    return _Problem(
        rng.choice(["range_sum", "sum_from", "sum_up_to"]), [(n, "int")], "int",
        f"returns the sum of all integers from {a} up to and including `{n}` (0 if `{n}` is smaller than {a})",
        [f"return sum(range({a}, {n} + 1))"],
        lambda v: sum(range(a, v + 1)),
        inputs,
        f"`range({a}, {n} + 1)` covers exactly the wanted integers and is empty when `{n}` < {a}, so the sum is 0.",
    )


def _remove_chars(rng: random.Random) -> _Problem:
    t = rng.choice(_TEXT_PARAMS)
    inputs = [(_sentence(rng, 1, 4),) for _ in range(3)] + [("",)]
    kind = rng.choice(["vowels", "letters", "mask"])
    if kind == "vowels":
        return _Problem(
            rng.choice(["remove_vowels", "strip_vowels", "drop_vowels", "without_vowels"]), [(t, "str")], "str",
            f"returns `{t}` with every vowel (a, e, i, o, u, in either case) removed",
            [f"return ''.join(c for c in {t} if c.lower() not in {_VOWELS!r})"],
            lambda s: "".join(c for c in s if c.lower() not in _VOWELS),
            inputs,
            "The generator keeps the characters whose lower-case form is not a vowel and `join` glues them back together.",
        )
    if kind == "letters":
        letters = "".join(sorted(rng.sample("bcdfghklmnprstwy", rng.randint(2, 4))))
        listed = ", ".join(letters)
        return _Problem(
            rng.choice(["remove_letters", "drop_letters", "strip_letters"]), [(t, "str")], "str",
            f"returns `{t}` with every occurrence of the letters {listed} (in either case) removed",
            [f"return ''.join(c for c in {t} if c.lower() not in {letters!r})"],
            lambda s: "".join(c for c in s if c.lower() not in letters),
            inputs,
            f"Characters whose lower-case form is one of {listed} are skipped; the rest are joined in order.",
        )
    mask = rng.choice(["*", "_", "#", "-", "?", "."])
    return _Problem(
        rng.choice(["mask_vowels", "replace_vowels", "hide_vowels"]), [(t, "str")], "str",
        f"returns `{t}` with every vowel (a, e, i, o, u, in either case) replaced by '{mask}'",
        [f"return ''.join({mask!r} if c.lower() in {_VOWELS!r} else c for c in {t})"],
        lambda s: "".join(mask if c.lower() in _VOWELS else c for c in s),
        inputs,
        f"Each vowel becomes '{mask}' and every other character is kept as it is.",
    )


def _case_words(rng: random.Random) -> _Problem:
    t = rng.choice(_TEXT_PARAMS)
    inputs = [(_sentence(rng, 1, 5).lower(),) for _ in range(3)] + [("",)]
    words_of = f"the words of `{t}` (split on whitespace, joined by single spaces)"
    kind = rng.choice(["capitalize", "upper", "letter"])
    if kind == "letter":
        starter = rng.choice(_WORDS)  # one test sentence is sure to contain a matching word
        letter = starter[0]
        inputs[0] = (f"{starter} {inputs[0][0]}",)
        return _Problem(
            rng.choice(["upper_if_starts", "emphasize_letter", "shout_words_with"]), [(t, "str")], "str",
            f"returns {words_of}, with every word that starts with '{letter}' in upper case",
            [f"return ' '.join(w.upper() if w.startswith({letter!r}) else w for w in {t}.split())"],
            lambda s: " ".join(w.upper() if w.startswith(letter) else w for w in s.split()),
            inputs,
            f"Words starting with '{letter}' go through `upper()`, the others are kept, and `join` rebuilds the sentence.",
        )
    k = rng.randint(0, 6)
    method = "capitalize" if kind == "capitalize" else "upper"
    change = "capitalized" if kind == "capitalize" else "in upper case"
    if kind == "capitalize":
        names = ["capitalize_words", "title_words", "capitalize_long_words"]
    else:
        names = ["shout_long_words", "upper_long_words", "emphasize_long_words"]
    if k == 0:
        which, body = "every word", f"return ' '.join(w.{method}() for w in {t}.split())"
    else:
        which = f"every word longer than {k} characters"
        body = f"return ' '.join(w.{method}() if len(w) > {k} else w for w in {t}.split())"
    return _Problem(
        rng.choice(names), [(t, "str")], "str",
        f"returns {words_of}, with {which} {change}",
        [body],
        (lambda s: " ".join(getattr(w, method)() if len(w) > k else w for w in s.split())),
        inputs,
        f"`split()` gives the words, `{method}()` changes {which.replace('every', 'each')}, and `' '.join` rebuilds the text.",
    )


def _second_extreme(rng: random.Random) -> _Problem:
    p, default = rng.choice(_LIST_PARAMS), rng.randint(-10, 10)
    largest = rng.random() < 0.5
    word, pick, index = ("largest", -2, "-2") if largest else ("smallest", 1, "1")
    names = ["second_largest", "runner_up", "second_max"] if largest else ["second_smallest", "second_min", "second_lowest"]

    def reference(nums):
        distinct = sorted(set(nums))
        return default if len(distinct) < 2 else distinct[pick]

    v = rng.randint(-9, 9)
    return _Problem(
        rng.choice(names), [(p, "list[int]")], "int",
        f"returns the second {word} distinct number in `{p}`, or {default} if there are fewer than two distinct numbers",
        [f"distinct = sorted(set({p}))", "if len(distinct) < 2:", f"    return {default}", f"return distinct[{index}]"],
        reference,
        [(_ints(rng, -9, 20, 2, 7),), (_ints(rng, -9, 20, 3, 7),), ([v, v, v],), ([],)],
        f"`set` removes duplicates and `sorted` orders them, so the second {word} sits at index {index}.",
    )


def _merge_sorted(rng: random.Random) -> _Problem:
    a, b = rng.choice([("a", "b"), ("left", "right"), ("first", "second"), ("xs", "ys"), ("list1", "list2")])
    both = f"the sorted lists `{a}` and `{b}`"
    kind = rng.choice(["asc", "desc", "union", "smallest"])
    if kind == "asc":
        name = rng.choice(["merge_sorted", "merge_lists", "combine_sorted"])
        what, body = f"all numbers of {both} in one ascending list", f"return sorted({a} + {b})"
        ref, why = (lambda x, y: sorted(x + y)), "Concatenating and sorting is a short, correct merge."
    elif kind == "desc":
        name = rng.choice(["merge_descending", "merge_reversed", "combine_descending"])
        what, body = f"all numbers of {both} in one descending list", f"return sorted({a} + {b}, reverse=True)"
        ref, why = (lambda x, y: sorted(x + y, reverse=True)), "The lists are concatenated and sorted with `reverse=True`."
    elif kind == "union":
        name = rng.choice(["merge_unique", "sorted_union", "union_sorted"])
        what, body = f"the distinct numbers of {both} in ascending order", f"return sorted(set({a}) | set({b}))"
        ref, why = (lambda x, y: sorted(set(x) | set(y))), "The set union drops duplicates and `sorted` restores ascending order."
    else:
        k = rng.randint(1, 6)
        name = rng.choice(["smallest_merged", "merge_and_take", f"first_{k}_merged"])
        what = f"the {k} smallest numbers of {both} (fewer if they hold fewer), in ascending order"
        body = f"return sorted({a} + {b})[:{k}]"
        ref, why = (lambda x, y: sorted(x + y)[:k]), f"The merged, sorted list is sliced to its first {k} elements."
    return _Problem(
        name, [(a, "list[int]"), (b, "list[int]")], "list[int]", f"returns {what}", [body], ref,
        [(_sorted_ints(rng), _sorted_ints(rng)) for _ in range(3)] + [([], _sorted_ints(rng))],
        why,
    )


def _count_words(rng: random.Random) -> _Problem:
    t = rng.choice(_TEXT_PARAMS)
    inputs = [(_sentence(rng, 1, 6),) for _ in range(3)] + [("",)]
    kind = rng.choice(["longer", "exact", "starts"])
    if kind == "longer":
        k = rng.randint(1, 5)
        inputs[0] = (f"{inputs[0][0]} {rng.choice([w for w in _WORDS if len(w) > k])}",)
        name = rng.choice(["count_long_words", "long_word_count", "words_longer_than"])
        cond_text, cond = f"have more than {k} characters", f"len(w) > {k}"
        keep = lambda w: len(w) > k  # noqa: E731
    elif kind == "exact":
        k = rng.randint(1, 6)
        inputs[0] = (f"{inputs[0][0]} {rng.choice([w for w in _WORDS if len(w) == k])}",)
        name = rng.choice(["count_words_of_length", "words_with_length", f"count_{k}_letter_words"])
        cond_text, cond = f"have exactly {k} characters", f"len(w) == {k}"
        keep = lambda w: len(w) == k  # noqa: E731
    else:
        starter = rng.choice(_WORDS)  # one test sentence is sure to contain a matching word
        letter = starter[0]
        inputs[0] = (f"{inputs[0][0]} {starter}",)
        name = rng.choice(["count_words_starting", "words_starting_with", f"count_{letter}_words"])
        cond_text, cond = f"start with the lower-case letter '{letter}'", f"w.startswith({letter!r})"
        keep = lambda w: w.startswith(letter)  # noqa: E731
    return _Problem(
        name, [(t, "str")], "int",
        f"returns how many words of `{t}` (split on whitespace) {cond_text}",
        [f"return sum(1 for w in {t}.split() if {cond})"],
        lambda s: sum(1 for w in s.split() if keep(w)),
        inputs,
        "The generator yields 1 for every word that matches and `sum` counts them.",
    )


def _average(rng: random.Random) -> _Problem:
    p, default = rng.choice(_LIST_PARAMS), rng.randint(-10, 10)
    return _Problem(
        rng.choice(["floor_average", "mean_rounded_down", "int_average"]), [(p, "list[int]")], "int",
        f"returns the average of `{p}` rounded down to an integer, or {default} if `{p}` is empty",
        [f"if not {p}:", f"    return {default}", f"return sum({p}) // len({p})"],
        lambda nums: sum(nums) // len(nums) if nums else default,
        [(_ints(rng, -10, 30, 1, 6),) for _ in range(3)] + [([],)],
        f"Floor division `//` rounds the average down, and the empty case returns {default} before dividing by zero.",
    )


def _scale_shift(rng: random.Random) -> _Problem:
    p, a, b = rng.choice(_LIST_PARAMS), rng.randint(2, 9), rng.choice([x for x in range(-10, 11) if x])
    shift = f"increased by {b}" if b > 0 else f"decreased by {-b}"
    expr = f"x * {a} + {b}" if b > 0 else f"x * {a} - {-b}"
    return _Problem(
        rng.choice(["scale_and_shift", "transform", "affine_map", "scale_values"]), [(p, "list[int]")], "list[int]",
        f"returns a new list with each number in `{p}` multiplied by {a} and then {shift}",
        [f"return [{expr} for x in {p}]"],
        lambda nums: [x * a + b for x in nums],
        [(_ints(rng, -10, 10, 1, 5),) for _ in range(3)] + [([],)],
        f"The list comprehension applies `{expr}` to every number and leaves the input list unchanged.",
    )


TEMPLATES: dict[str, Callable[[random.Random], _Problem]] = {
    "sum_filtered": _sum_filtered,
    "product_filtered": _product_filtered,
    "extreme_or_default": _extreme_or_default,
    "count_char": _count_char,
    "reverse_words": _reverse_words,
    "palindrome": _palindrome,
    "fizzbuzz": _fizzbuzz,
    "clamp": _clamp,
    "running": _running,
    "filter_threshold": _filter_threshold,
    "repeat_join": _repeat_join,
    "digits": _digits,
    "triangular": _triangular,
    "remove_chars": _remove_chars,
    "case_words": _case_words,
    "second_extreme": _second_extreme,
    "merge_sorted": _merge_sorted,
    "count_words": _count_words,
    "average": _average,
    "scale_shift": _scale_shift,
}
_TEMPLATE_LIST = list(TEMPLATES.values())  # fixed order: part of the deterministic stream


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------
_INSTRUCTIONS = [
    "Write a Python function `{call}` that {summary}.",
    "Implement a Python function `{call}` which {summary}.",
    "Create a function named `{name}` that takes {args} and {summary}.",
    "I need a Python function `{call}` that {summary}. Please write it.",
    "Define `{call}` in Python so that it {summary}.",
]
_INTROS = [
    "Here is a Python function that does this:",
    "Here is an implementation of `{name}`:",
    "The following function solves the task:",
    "You can write `{name}` like this:",
]


def _args_in_words(problem: _Problem) -> str:
    names = [f"`{name}`" for name, _ in problem.params]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _docstring_sentence(summary: str) -> str:
    """'returns the sum of `nums` ...' -> 'Return the sum of nums ...'."""
    return "Return" + summary[len("returns"):].replace("`", "") + "."


def _render(problem: _Problem, index: int, rng: random.Random) -> dict:
    example_args = problem.inputs[0]
    example_call = f"{problem.entry_point}({', '.join(map(repr, example_args))})"
    doc = textwrap.fill(_docstring_sentence(problem.summary), width=100, initial_indent="    \"\"\"", subsequent_indent="    ")
    prompt = (f"{problem.signature}\n{doc}\n    >>> {example_call}\n    {problem.reference(*example_args)!r}\n    \"\"\"\n")
    asserts = "".join(
        f"    assert candidate({', '.join(map(repr, args))}) == {problem.reference(*args)!r}\n" for args in problem.inputs
    )
    fields = {"call": problem.call, "name": problem.entry_point, "args": _args_in_words(problem), "summary": problem.summary}
    instruction = rng.choice(_INSTRUCTIONS).format(**fields)
    intro = rng.choice(_INTROS).format(**fields)
    return {
        "task_id": f"Synthetic/{index}",
        "instruction": instruction,
        "prompt": prompt,
        "entry_point": problem.entry_point,
        "canonical_solution": "".join(f"    {line}\n" for line in problem.body),
        "test": f"def check(candidate):\n{asserts}",
        "output": f"{intro}\n\n```python\n{problem.source}```\n\n{problem.explanation}",
    }


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def split_of(source: str) -> str:
    """``"test"`` or ``"train"``, from a stable sha1 of the function source (see module docstring)."""
    bucket = int(hashlib.sha1(source.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket < _TEST_BUCKETS else "train"


def function_source(record: dict) -> str:
    """The split key of a generated record: its signature line plus ``canonical_solution``."""
    return record["prompt"].split("\n", 1)[0] + "\n" + record["canonical_solution"]


def _test_discriminates(problem: _Problem) -> bool:
    """A check() whose asserts all expect the same value would also pass a function returning a constant."""
    return len({repr(problem.reference(*args)) for args in problem.inputs}) >= 2


def generate(split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct function problems of ``split`` ("train" or "test") as HumanEval-shaped records."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return sample_distinct(
        "astra_repro.synthetic_code", split, n, seed,
        draw=lambda rng: rng.choice(_TEMPLATE_LIST)(rng),
        key=lambda problem: problem.source,
        belongs=lambda problem: split_of(problem.source) == split and _test_discriminates(problem),
        render=_render,
    )
