"""Built-in synthetic GSM8K-style word problems, used only when no real math data is available.

Each record is ``{"question": str, "answer": str}`` in GSM8K format: one worked line per step, each
with a calculator annotation (``3 * 4 = <<3*4=12>>12``), then a final line ``#### N``. Problems have
1-3 steps over small non-negative integers (every intermediate and final value is < 1000, divisions
are exact), drawn from 12 templates (buying, sharing, adding/removing, rates, change, comparisons,
wages, rows, groups, halves, differences) with varied names and objects. The wording is short and
regular so that a ~135M instruct model can pick the format up in a few dozen steps.

Determinism: ``generate(split, n, seed)`` draws from ``random.Random`` seeded with a SHA-256 of
``(split, seed)``, never Python's salted ``hash``, so the same arguments give the same list in every
process; a larger ``n`` extends a smaller one (prefix-stable).

Train/test disjointness rule: a question belongs to the ``test`` split iff
``int(sha1(question_text).hexdigest(), 16) % 10 < 2`` (about 20% of all possible questions), and to
``train`` otherwise. Each split's stream rejects questions of the other split, and duplicates within
a split. Disjointness therefore holds for any ``n`` and any pair of seeds, by construction.
"""

from __future__ import annotations

import hashlib
import random
from typing import Callable

from astra_repro.data.sampling import sample_distinct

SPLITS = ("train", "test")
_TEST_BUCKETS = 2  # out of 10 sha1 buckets -> ~20% of the question space is test
MAX_VALUE = 1000  # every number shown in a solution is < MAX_VALUE

# (name, subject pronoun, possessive pronoun)
_NAMES = [
    ("Tom", "he", "his"), ("Anna", "she", "her"), ("Ben", "he", "his"), ("Lily", "she", "her"),
    ("Sam", "he", "his"), ("Mia", "she", "her"), ("Jack", "he", "his"), ("Emma", "she", "her"),
    ("Leo", "he", "his"), ("Zoe", "she", "her"), ("Max", "he", "his"), ("Ella", "she", "her"),
    ("Noah", "he", "his"), ("Grace", "she", "her"), ("Omar", "he", "his"), ("Sara", "she", "her"),
]
_OBJECTS = [
    "apples", "pencils", "stickers", "marbles", "cookies", "books", "cards", "shells",
    "stamps", "candies", "balloons", "beads", "oranges", "crayons", "eggs", "toy cars",
]
_CONTAINERS = [("box", "boxes"), ("bag", "bags"), ("pack", "packs"), ("jar", "jars"), ("basket", "baskets")]
# (daily activity, unit, past participle): "Tom reads 12 pages every day." / "has already read"
_ACTIVITIES = [
    ("reads", "pages", "read"), ("walks", "kilometers", "walked"), ("saves", "dollars", "saved"),
    ("bakes", "cookies", "baked"), ("swims", "laps", "swum"),
    ("practices the piano for", "minutes", "practiced"), ("writes", "lines of poetry", "written"),
]
_PLANTS = ["tulips", "carrots", "roses", "tomato plants", "sunflowers", "cabbages"]
_PURCHASES = ["a book", "lunch", "a toy", "a ticket", "new shoes", "a gift"]
_GROUP_ITEMS = ["pencils", "apples", "sheets of paper", "markers", "cookies", "balloons"]


# --------------------------------------------------------------------------------------------
# Arithmetic steps
# --------------------------------------------------------------------------------------------
def _apply(a: int, op: str, b: int) -> int:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0 or a % b:
            raise AssertionError(f"inexact division {a}/{b}")  # a template bug, never data-driven
        return a // b
    raise AssertionError(f"unknown operator {op}")


def _calc(a: int, op: str, b: int) -> tuple[str, int]:
    """``"a op b = <<a op b=v>>v"`` (GSM8K calculator annotation) and v."""
    value = _apply(a, op, b)
    if not 0 <= value < MAX_VALUE:
        raise AssertionError(f"{a}{op}{b}={value} out of range")  # keep templates honest
    return f"{a} {op} {b} = <<{a}{op}{b}={value}>>{value}", value


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


# --------------------------------------------------------------------------------------------
# Templates: rng -> (question, solution lines, final value)
# --------------------------------------------------------------------------------------------
Problem = tuple[str, list[str], int]


def _buy_boxes(rng: random.Random) -> Problem:
    (name, he, _), obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    box, boxes = rng.choice(_CONTAINERS)
    a, b = rng.randint(2, 9), rng.randint(2, 12)
    expr, total = _calc(a, "*", b)
    q = f"{name} buys {a} {boxes} of {obj}. Each {box} has {b} {obj}."
    lines = [f"{name} buys {expr} {obj}."]
    if rng.random() < 0.5:
        c = rng.randint(1, 30)
        q += f" {_cap(he)} already had {c} {obj}."
        expr, total = _calc(total, "+", c)
        lines.append(f"Now {he} has {expr} {obj}.")
    return q + f" How many {obj} does {name} have now?", lines, total


def _share(rng: random.Random) -> Problem:
    (name, he, _), obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    k, each = rng.randint(2, 6), rng.randint(2, 12)
    rest = k * each
    if rng.random() < 0.5:
        q = f"{name} has {rest} {obj}. {_cap(he)} shares them equally among {k} friends."
        expr, value = _calc(rest, "/", k)
        lines = [f"Each friend gets {expr} {obj}."]
    else:
        c = rng.randint(1, 10)
        q = f"{name} has {rest + c} {obj}. {_cap(he)} keeps {c} and shares the rest equally among {k} friends."
        expr1, rest = _calc(rest + c, "-", c)
        expr2, value = _calc(rest, "/", k)
        lines = [f"{_cap(he)} shares {expr1} {obj}.", f"Each friend gets {expr2} {obj}."]
    return q + f" How many {obj} does each friend get?", lines, value


def _add_remove(rng: random.Random) -> Problem:
    (name, he, _), (name2, _, _), (name3, _, _) = rng.sample(_NAMES, 3)
    obj = rng.choice(_OBJECTS)
    a, b = rng.randint(5, 60), rng.randint(2, 40)
    c = rng.randint(1, a + b)
    q = f"{name} has {a} {obj}. {_cap(he)} gets {b} more from {name2}. Then {he} gives {c} to {name3}."
    expr, value = _calc(a, "+", b)
    lines = [f"After getting more, {name} has {expr} {obj}."]
    expr, value = _calc(value, "-", c)
    lines.append(f"After giving some away, {he} has {expr} {obj}.")
    if rng.random() < 0.5:
        d = rng.randint(1, 25)
        q += f" Later {he} finds {d} more."
        expr, value = _calc(value, "+", d)
        lines.append(f"After finding more, {he} has {expr} {obj}.")
    return q + f" How many {obj} does {name} have now?", lines, value


def _rate_days(rng: random.Random) -> Problem:
    (name, he, _), (verb, unit, done) = rng.choice(_NAMES), rng.choice(_ACTIVITIES)
    a, days = rng.randint(2, 25), rng.randint(2, 10)
    expr, value = _calc(a, "*", days)
    lines = [f"In {days} days that is {expr} {unit}."]
    if rng.random() < 0.5:
        q = f"{name} {verb} {a} {unit} every day. How many {unit} is that in {days} days?"
    else:
        c = rng.randint(5, 50)
        q = (
            f"{name} has already {done} {c} {unit}. Now {he} {verb} {a} {unit} every day for {days} days. "
            f"How many {unit} will {name} have {done} in total?"
        )
        expr, value = _calc(value, "+", c)
        lines.append(f"In total that is {expr} {unit}.")
    return q, lines, value


def _change(rng: random.Random) -> Problem:
    (name, he, _), obj = rng.choice(_NAMES), rng.choice(_OBJECTS)
    a, price = rng.randint(2, 10), rng.randint(1, 9)
    expr, cost = _calc(a, "*", price)
    bill = rng.choice([b for b in (10, 20, 50, 100) if b >= cost])
    q = (
        f"{name} buys {a} {obj} that cost {price} dollars each. {_cap(he)} pays with a {bill} dollar bill. "
        f"How many dollars of change does {he} get?"
    )
    lines = [f"The {obj} cost {expr} dollars."]
    expr, value = _calc(bill, "-", cost)
    lines.append(f"The change is {expr} dollars.")
    return q, lines, value


def _more_than(rng: random.Random) -> Problem:
    (name, _, _), (name2, _, _) = rng.sample(_NAMES, 2)
    obj = rng.choice(_OBJECTS)
    a, b = rng.randint(3, 80), rng.randint(2, 40)
    q = f"{name} has {a} {obj}. {name2} has {b} more {obj} than {name}. How many {obj} do they have together?"
    expr, other = _calc(a, "+", b)
    lines = [f"{name2} has {expr} {obj}."]
    expr, value = _calc(a, "+", other)
    lines.append(f"Together they have {expr} {obj}.")
    return q, lines, value


def _times_as_many(rng: random.Random) -> Problem:
    (name, _, _), (name2, _, _) = rng.sample(_NAMES, 2)
    obj = rng.choice(_OBJECTS)
    a, k = rng.randint(2, 30), rng.randint(2, 6)
    q = (
        f"{name} has {a} {obj}. {name2} has {k} times as many {obj} as {name}. "
        f"How many more {obj} does {name2} have than {name}?"
    )
    expr, other = _calc(a, "*", k)
    lines = [f"{name2} has {expr} {obj}."]
    expr, value = _calc(other, "-", a)
    lines.append(f"{name2} has {expr} more {obj}.")
    return q, lines, value


def _wages(rng: random.Random) -> Problem:
    (name, he, _), item = rng.choice(_NAMES), rng.choice(_PURCHASES)
    rate = rng.randint(5, 15)
    lines: list[str] = []
    if rng.random() < 0.5:
        hours = rng.randint(2, 8)
        q = f"{name} earns {rate} dollars per hour. {_cap(he)} works {hours} hours."
    else:
        h1, h2 = rng.randint(2, 6), rng.randint(2, 6)
        q = f"{name} earns {rate} dollars per hour. {_cap(he)} works {h1} hours on Monday and {h2} hours on Tuesday."
        expr, hours = _calc(h1, "+", h2)
        lines.append(f"{_cap(he)} works {expr} hours.")
    expr, earned = _calc(rate, "*", hours)
    lines.append(f"{_cap(he)} earns {expr} dollars.")
    spent = rng.randint(1, earned)
    q += f" Then {he} spends {spent} dollars on {item}. How many dollars does {he} have left?"
    expr, value = _calc(earned, "-", spent)
    lines.append(f"{_cap(he)} has {expr} dollars left.")
    return q, lines, value


def _rows(rng: random.Random) -> Problem:
    (name, _, _), plant = rng.choice(_NAMES), rng.choice(_PLANTS)
    rows, per_row = rng.randint(2, 12), rng.randint(3, 15)
    expr, total = _calc(rows, "*", per_row)
    picked = rng.randint(1, total)
    q = (
        f"{name} plants {rows} rows of {plant} with {per_row} {plant} in each row. "
        f"Later {name} picks {picked} of them. How many {plant} are left in the garden?"
    )
    lines = [f"{name} plants {expr} {plant}."]
    expr, value = _calc(total, "-", picked)
    lines.append(f"There are {expr} {plant} left.")
    return q, lines, value


def _groups(rng: random.Random) -> Problem:
    size, n_groups = rng.randint(2, 6), rng.randint(2, 8)
    per_group, item = rng.randint(2, 12), rng.choice(_GROUP_ITEMS)
    who = rng.choice(["students", "children", "players", "campers"])
    students = size * n_groups
    q = (
        f"There are {students} {who}. They form groups of {size}. Each group gets {per_group} {item}. "
        f"How many {item} are needed?"
    )
    expr, groups = _calc(students, "/", size)
    lines = [f"There are {expr} groups."]
    expr, value = _calc(groups, "*", per_group)
    lines.append(f"They need {expr} {item}.")
    return q, lines, value


def _half(rng: random.Random) -> Problem:
    (name, he, _), (name2, _, _) = rng.sample(_NAMES, 2)
    obj = rng.choice(_OBJECTS)
    a, b = 2 * rng.randint(2, 40), rng.randint(1, 30)
    q = f"{name} has {a} {obj}. {_cap(he)} gives half of them to {name2} and then buys {b} more. How many {obj} does {name} have now?"
    expr, kept = _calc(a, "/", 2)
    lines = [f"{_cap(he)} keeps {expr} {obj}."]
    expr, value = _calc(kept, "+", b)
    lines.append(f"Now {he} has {expr} {obj}.")
    return q, lines, value


def _difference(rng: random.Random) -> Problem:
    (name, he, _), (name2, _, _) = rng.sample(_NAMES, 2)
    obj = rng.choice(_OBJECTS)
    a = rng.randint(5, 90)
    left = rng.randint(0, a - 1)
    q = f"{name} had {a} {obj}. After giving some to {name2}, {he} has {left} left. How many {obj} did {he} give away?"
    expr, value = _calc(a, "-", left)
    return q, [f"{_cap(he)} gave away {expr} {obj}."], value


TEMPLATES: dict[str, Callable[[random.Random], Problem]] = {
    "buy_boxes": _buy_boxes,
    "share": _share,
    "add_remove": _add_remove,
    "rate_days": _rate_days,
    "change": _change,
    "more_than": _more_than,
    "times_as_many": _times_as_many,
    "wages": _wages,
    "rows": _rows,
    "groups": _groups,
    "half": _half,
    "difference": _difference,
}
_TEMPLATE_LIST = list(TEMPLATES.values())  # fixed order: part of the deterministic stream


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def format_answer(lines: list[str], value: int) -> str:
    """GSM8K answer text: the worked lines, then ``#### value``."""
    return "\n".join(lines) + f"\n#### {value}"


def split_of(question: str) -> str:
    """``"test"`` or ``"train"``, from a stable sha1 of the question text (see module docstring)."""
    bucket = int(hashlib.sha1(question.encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket < _TEST_BUCKETS else "train"


def generate(split: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` distinct problems of ``split`` ("train" or "test") as GSM8K-style records."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return sample_distinct(
        "astra_repro.synthetic_math", split, n, seed,
        draw=lambda rng: rng.choice(_TEMPLATE_LIST)(rng),
        key=lambda problem: problem[0],
        belongs=lambda problem: split_of(problem[0]) == split,
        render=lambda problem, _index, _rng: {"question": problem[0], "answer": format_answer(problem[1], problem[2])},
    )


def answer_value(answer: str) -> int:
    """The integer after the final ``#### `` of a GSM8K-style answer."""
    if "#### " not in answer:
        raise ValueError(f"answer has no '#### ' line: {answer[-80:]!r}")
    return int(answer.rsplit("#### ", 1)[1].strip().replace(",", ""))
