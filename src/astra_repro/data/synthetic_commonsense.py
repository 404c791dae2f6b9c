"""Built-in synthetic commonsense multiple-choice questions, used only when no real commonsense data is available.

They stand in for Commonsense170K (LLM-Adapters ``commonsense_170k.json``) as training data and for the LLM-Adapters
test files as an offline evaluation set, and are always recorded as ``data_source: synthetic``. They teach the eight
answer formats and a few checkable facts; they are never a substitute for the real data in a paper-scale run.

Records have exactly the LLM-Adapters fields::

    instruction   the benchmark's prompt shape, byte for byte as in LLM-Adapters/dataset/<task>/test.json
    input         ""   (the reference trains with dataset_field="instruction output", so it is never used)
    output        "the correct answer is <answer>"
    answer        true/false, solution1/2, ending1-4, option1/2 or answer1-K

Instruction shapes (checked against the real files in shared/data/commonsense; hellaswag, whose test file is not
carried here, against an LLM-Adapters hellaswag prompt logged verbatim in the Zuo-Lihan/DoRA_Learning README and the
prompt-template tables of papers that reuse these files):

    boolq       "Please answer the following question with true or false, question: Q\\n\\nAnswer format: true/false"
    piqa        "Please choose the correct solution to the question: G\\n\\nSolution1: S1\\n\\nSolution2: S2\\n\\n"
                "Answer format: solution1/solution2"
    hellaswag   "Please choose the correct ending to complete the given sentence: LABEL: CTX\\n\\nEnding1: E1 Ending2: E2"
                " Ending3: E3 Ending4: E4\\n\\nAnswer format: ending1/ending2/ending3/ending4"
    winogrande  "Please choose the correct answer to fill in the blank to complete the given sentence: S with _\\n\\n"
                "Option1: O1 Option2: O2 Answer format: option1/option2"
    arc_easy, arc_challenge, openbookqa (4 answers), siqa (3 answers)
                "Please choose the correct answer to the question: Q\\n\\nAnswer1: A1 Answer2: A2 ...\\n\\n"
                "Answer format: answer1/answer2/..."

Content: every question is built from a template whose right answer a program knows, so the gold is never
ambiguous: number comparisons, sums, differences and products; parity; counting sequences; the order of days and
months; and small built-in fact lists (size tiers of everyday objects, compared only two or more tiers apart; animals
that can or cannot fly; things that float or sink; hot versus cold things; which tool does which job; everyday
routines and their next step; prerequisites of everyday goals; events that make people happy or upset). Each
benchmark mixes 3-5 templates, at least one of them numeric, so every split holds thousands of distinct facts.

Gold positions are balanced: records are produced in blocks of K (the number of choices) whose gold positions are
a random permutation of 1..K, so each position is the gold within one record of n/K (true/false likewise).

Determinism: ``random.Random`` seeded with a SHA-256 of (benchmark, split, seed), never Python's salted ``hash`` and
never set iteration order; a larger ``n`` extends a smaller one (prefix-stable).

Train/test disjointness: every question carries a wording-independent *fact key* (e.g. ("num", 12, 47) for any
question comparing 12 and 47, ("tool", "sweep the floor") for any question about that job). A fact belongs to
``test`` iff ``int(sha1(repr(key)), 16) % 10 < 2`` (about 20%) and to ``train`` otherwise, and each split emits a
fact at most once. So no fact, in any wording, choice order or benchmark, is in both splits, for any n and seeds.

Training mix: ``synthetic_commonsense_training`` draws from the eight benchmarks in Commonsense170K's proportions
(the sizes of the LLM-Adapters per-task training files it concatenates, ``COMMONSENSE_170K_SIZES``), shuffled.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Iterator

BENCHMARKS = ("boolq", "piqa", "hellaswag", "winogrande", "arc_easy", "arc_challenge", "openbookqa", "siqa")
SPLITS = ("train", "test")
# LLM-Adapters folder names, accepted too (their test files live under dataset/<folder>/test.json).
ALIASES = {"ARC-Easy": "arc_easy", "ARC-Challenge": "arc_challenge", "social_i_qa": "siqa"}
N_CHOICES = {"boolq": 2, "piqa": 2, "hellaswag": 4, "winogrande": 2, "arc_easy": 4, "arc_challenge": 4,
             "openbookqa": 4, "siqa": 3}
# Records per benchmark in commonsense_170k.json, which concatenates the LLM-Adapters per-task train.json files.
# boolq, ARC-e, ARC-c and OBQA are the sizes counted in shared/data/MANIFEST.md §5; piqa (16,113), siqa (33,410) and
# hellaswag (39,905) are those benchmarks' official training-set sizes; winogrande (63,238, the "63.2k" of the
# LLM-Adapters paper's data table) makes the total 170,420. Only the first four could be checked offline.
COMMONSENSE_170K_SIZES = {"boolq": 9427, "piqa": 16113, "hellaswag": 39905, "winogrande": 63238,
                          "arc_easy": 2251, "arc_challenge": 1119, "openbookqa": 4957, "siqa": 33410}
_TEST_BUCKETS = 2  # out of 10 sha1 buckets -> ~20% of the facts are test


@dataclass(frozen=True)
class _Item:
    """One question before rendering: ``choices[gold]`` is the right answer."""

    key: tuple  # the fact, independent of wording and choice order: decides the split
    stem: str  # question, goal, context or sentence (hellaswag: the context after the activity label)
    choices: tuple[str, ...]
    gold: int
    label: str = ""  # hellaswag's activity label


Template = Callable[[random.Random, int], _Item]

# --------------------------------------------------------------------------------------------
# Built-in facts. Size tiers are far apart in size; two objects are only compared across >= 2 tiers.
# --------------------------------------------------------------------------------------------
SIZE_TIERS = [
    ["a grain of sand", "a flea", "an ant"],
    ["a coin", "a button", "a pea", "a key"],
    ["an apple", "a cup", "a shoe", "a book"],
    ["a cat", "a chair", "a suitcase", "a guitar"],
    ["a horse", "a car", "a piano", "a cow"],
    ["a house", "a bus", "a whale", "a train"],
    ["a mountain", "a city", "an island"],
]
FLYERS = ["a sparrow", "an eagle", "a bee", "a butterfly", "a pigeon", "a bat", "a parrot", "a mosquito", "an owl",
          "a seagull"]
NON_FLYERS = ["a dog", "a cow", "a snail", "a horse", "a pig", "a goldfish", "a snake", "a sheep", "a turtle",
              "an elephant", "a frog", "a rabbit"]
FLOATERS = ["a cork", "a dry leaf", "a wooden stick", "a feather", "a ping-pong ball", "an empty plastic bottle"]
SINKERS = ["a stone", "an iron nail", "a metal coin", "a brick", "a steel key", "a glass marble"]
HOT = ["boiling water", "a campfire", "a hot oven", "a candle flame", "a cup of hot tea", "a hot stove"]
COLD = ["an ice cube", "a snowball", "a frozen lake", "a glass of ice water", "the inside of a freezer", "an icicle"]
TOOLS = [  # (job, the tool for it); no tool does another listed job
    ("cut a sheet of paper", "scissors"), ("drive a nail into wood", "a hammer"), ("dig a hole in the garden", "a shovel"),
    ("sweep the floor", "a broom"), ("write a letter", "a pen"), ("measure the length of a table", "a ruler"),
    ("see in a dark room", "a flashlight"), ("tighten a screw", "a screwdriver"), ("eat soup", "a spoon"),
    ("brush your teeth", "a toothbrush"), ("comb your hair", "a comb"), ("boil water", "a kettle"),
    ("unlock a door", "a key"), ("water the plants", "a watering can"), ("take a photo", "a camera"),
    ("keep dry in the rain", "an umbrella"),
]
PROCEDURES = [  # (goal, a way that works, a way that does the opposite)
    ("dry wet clothes", "Hang them outside in the sun.", "Put them in a bucket of water."),
    ("keep ice cream frozen", "Store it in the freezer.", "Store it on a sunny windowsill."),
    ("cool down a bowl of hot soup", "Let it stand for a few minutes and stir it.", "Put it back on the hot stove."),
    ("light up a dark room", "Switch on the lamp.", "Close the curtains and switch off the lamp."),
    ("make a cup of tea sweeter", "Stir in a spoon of sugar.", "Stir in a spoon of salt."),
    ("keep warm on a winter day", "Wear a thick wool coat.", "Wear a wet T-shirt."),
    ("clean dirty hands", "Wash them with soap and water.", "Rub them in mud."),
    ("make music quieter", "Turn the volume down.", "Turn the volume up."),
    ("help a house plant grow", "Give it water and sunlight.", "Keep it in a dark, dry box."),
    ("melt a piece of butter", "Warm it in a pan.", "Put it in the freezer."),
    ("turn water into ice", "Put it in the freezer.", "Put it in a hot oven."),
    ("carry water from the kitchen", "Pour it into a bucket and carry the bucket.", "Pour it into a paper bag with holes."),
]
ROUTINES = [  # (activity label, context, its next step); another routine's next step never fits
    ("Making tea", "A man fills a kettle with water and switches it on. When the water boils, he",
     "pours it into a cup with a tea bag."),
    ("Running", "A woman ties the laces of her running shoes and steps outside. She", "starts jogging along the path."),
    ("Washing dishes", "A boy fills the sink with warm soapy water and picks up a dirty plate. He",
     "scrubs the plate with a sponge."),
    ("Brushing teeth", "A girl squeezes toothpaste onto her toothbrush. She", "brushes her teeth in front of the mirror."),
    ("Gardening", "A gardener digs a small hole in the soil and drops a seed into it. He",
     "covers the seed with soil and waters it."),
    ("Painting a wall", "A woman dips a roller into a tray of blue paint. She", "rolls the paint evenly onto the wall."),
    ("Riding a bike", "A child puts on a helmet and climbs onto a bicycle. The child",
     "pushes the pedals and rides down the street."),
    ("Baking bread", "A baker kneads the dough and shapes it into a loaf. He", "puts the loaf into the hot oven to bake."),
    ("Reading", "A man sits in an armchair and opens a novel at the first page. He", "begins to read the first chapter."),
    ("Washing a car", "A woman sprays the dusty car with a hose. She", "wipes the car clean with a soapy sponge."),
    ("Mailing a letter", "A boy writes a letter, folds it and puts it in an envelope. He",
     "sticks a stamp on the envelope and posts it."),
    ("Swimming", "A swimmer in a swimsuit stands at the edge of the pool. She", "dives into the water and swims a length."),
]
PREREQUISITES = [  # (goal, what has to happen first); another goal's prerequisite never fits
    ("bake a cake", "buy flour and eggs"), ("drive to work", "find the car keys"), ("mail a letter", "write the letter"),
    ("go swimming", "put on a swimsuit"), ("paint a picture", "get paper and paints"),
    ("make a phone call", "charge the phone"), ("plant a tree", "dig a hole"), ("eat a bowl of cereal", "pour milk on it"),
    ("go to sleep", "get into bed"), ("catch a flight", "book a plane ticket"), ("ride a horse", "climb onto the saddle"),
    ("read the morning newspaper", "buy a newspaper"),
]
HAPPY_EVENTS = ["won first prize in the school art contest", "got a birthday present from a best friend",
                "passed the driving test on the first try", "found the lost puppy safe at home",
                "was praised by the teacher for a great essay", "scored the winning goal in the final"]
SAD_EVENTS = ["lost a wallet on the bus", "dropped and broke a favourite mug", "missed the last train home in the rain",
              "failed an important exam", "had a new bicycle stolen", "was left out of the team photo"]
HAPPY_FEELINGS = ["happy", "proud", "delighted", "glad"]
SAD_FEELINGS = ["sad", "upset", "disappointed", "unhappy"]
NAMES = ["Alex", "Sam", "Maria", "John", "Priya", "Kenji", "Lena", "Omar", "Sara", "Tom", "Nina", "Leo", "Aisha", "Ben"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------
def _noun(thing: str) -> str:
    """'a grain of sand' -> 'grain of sand' (WinoGrande options are bare nouns)."""
    return thing.split(" ", 1)[1]


def _place(rng: random.Random, correct: str, wrongs: list[str], gold: int) -> tuple[str, ...]:
    """The wrong answers in random order with the correct one at index ``gold``."""
    wrongs = list(wrongs)
    rng.shuffle(wrongs)
    wrongs.insert(gold, correct)
    return tuple(wrongs)


def _wrong_numbers(rng: random.Random, correct: int, k: int, tempting: tuple[int, ...] = ()) -> list[str]:
    """k distinct non-negative numbers other than ``correct``: tempting mistakes first, then near misses."""
    offsets = [-10, -5, -3, -2, -1, 1, 2, 3, 5, 10]
    out: list[int] = []
    for x in list(tempting) + [correct + d for d in rng.sample(offsets, len(offsets))]:
        if x != correct and x >= 0 and x not in out:
            out.append(x)
    return [str(x) for x in out[:k]]


def _size_pair(rng: random.Random) -> tuple[str, str]:
    """(small, big) from size tiers at least two apart."""
    lo = rng.randrange(len(SIZE_TIERS) - 2)
    hi = rng.randrange(lo + 2, len(SIZE_TIERS))
    return rng.choice(SIZE_TIERS[lo]), rng.choice(SIZE_TIERS[hi])


def _distinct_pair(rng: random.Random, lo: int, hi: int) -> tuple[int, int]:
    a, b = rng.sample(range(lo, hi + 1), 2)
    return a, b


def _two_names(rng: random.Random) -> tuple[str, str]:
    a, b = rng.sample(NAMES, 2)
    return a, b


def _sorted_key(tag: str, *things) -> tuple:
    """A fact key that does not depend on which of the things is asked about first."""
    return (tag, *sorted(things))


def _binary(rng: random.Random, key: tuple, stem: str, right: str, wrong: str, gold: int) -> _Item:
    return _Item(key, stem, _place(rng, right, [wrong], gold), gold)


# --------------------------------------------------------------------------------------------
# BoolQ: choices ("true", "false"); gold 0 means the statement asked about is true
# --------------------------------------------------------------------------------------------
def _bq_item(key: tuple, question: str, gold: int) -> _Item:
    return _Item(key, question, ("true", "false"), gold)


def _bq_greater(rng: random.Random, gold: int) -> _Item:
    a, b = _distinct_pair(rng, 0, 999)
    big, small = max(a, b), min(a, b)
    word, says_first_bigger = rng.choice([("greater", True), ("larger", True), ("less", False), ("smaller", False)])
    first_is_big = says_first_bigger == (gold == 0)
    x, y = (big, small) if first_is_big else (small, big)
    return _bq_item(("num", small, big), f"is {x} {word} than {y}?", gold)


def _bq_parity(rng: random.Random, gold: int) -> _Item:
    n = rng.randint(0, 999)
    word = "even" if (n % 2 == 0) == (gold == 0) else "odd"
    return _bq_item(("parity", n), f"is {n} an {word} number?", gold)


def _bq_sum(rng: random.Random, gold: int) -> _Item:
    a, b = rng.randint(1, 60), rng.randint(1, 60)
    c = a + b if gold == 0 else a + b + rng.choice([-5, -3, -2, -1, 1, 2, 3, 5])
    return _bq_item(_sorted_key("add", a, b), f"is {a} plus {b} equal to {c}?", gold)


def _bq_size(rng: random.Random, gold: int) -> _Item:
    small, big = _size_pair(rng)
    word = rng.choice(["bigger", "smaller"])
    x, y = (big, small) if (word == "bigger") == (gold == 0) else (small, big)
    return _bq_item(_sorted_key("size", small, big), f"is {x} {word} than {y}?", gold)


def _bq_fly(rng: random.Random, gold: int) -> _Item:
    animal = rng.choice(FLYERS if gold == 0 else NON_FLYERS)
    return _bq_item(("fly", animal), f"can {animal} fly?", gold)


def _bq_float(rng: random.Random, gold: int) -> _Item:
    thing = rng.choice(FLOATERS if gold == 0 else SINKERS)
    return _bq_item(("float", thing), f"does {thing} float on water?", gold)


def _bq_day(rng: random.Random, gold: int) -> _Item:
    i = rng.randrange(7)
    nxt = DAYS[(i + 1) % 7] if gold == 0 else rng.choice([d for j, d in enumerate(DAYS) if j not in (i, (i + 1) % 7)])
    return _bq_item(("day", DAYS[i]), f"is {nxt} the day after {DAYS[i]}?", gold)


def _bq_temperature(rng: random.Random, gold: int) -> _Item:
    hot, cold = rng.choice(HOT), rng.choice(COLD)
    x, y = (hot, cold) if gold == 0 else (cold, hot)
    return _bq_item(_sorted_key("temp", hot, cold), f"is {x} hotter than {y}?", gold)


# --------------------------------------------------------------------------------------------
# PIQA: a goal and two solutions
# --------------------------------------------------------------------------------------------
def _pq_tool(rng: random.Random, gold: int) -> _Item:
    (job, tool), (_, other) = rng.sample(TOOLS, 2)
    return _binary(rng, ("tool", job), f"How do I {job}?", f"Use {tool} to {job}.", f"Use {other} to {job}.", gold)


def _pq_procedure(rng: random.Random, gold: int) -> _Item:
    goal, works, fails = rng.choice(PROCEDURES)
    return _binary(rng, ("proc", goal), f"How do I {goal}?", works, fails, gold)


def _pq_float(rng: random.Random, gold: int) -> _Item:
    f, s = rng.choice(FLOATERS), rng.choice(SINKERS)
    stem = "Find something that will float in a bucket of water."
    return _binary(rng, ("floats", f, s), stem, f"Drop in {f} and watch it stay on top.",
                   f"Drop in {s} and watch it stay on top.", gold)


def _pq_cheaper(rng: random.Random, gold: int) -> _Item:
    a, b = _distinct_pair(rng, 1, 400)
    stem = f"Buy the cheaper of two bags of rice; one costs {a} dollars and the other costs {b} dollars."
    return _binary(rng, ("num", min(a, b), max(a, b)), stem, f"Buy the bag that costs {min(a, b)} dollars.",
                   f"Buy the bag that costs {max(a, b)} dollars.", gold)


def _pq_share(rng: random.Random, gold: int) -> _Item:
    friends, each = rng.randint(2, 9), rng.randint(1, 99)
    wrong = each + rng.choice([-2, -1, 1, 2, friends]) if each > 2 else each + rng.choice([1, 2, friends])
    stem = f"Share {friends * each} cookies equally among {friends} friends."
    return _binary(rng, ("div", friends * each, friends), stem, f"Give each friend {each} cookies.",
                   f"Give each friend {wrong} cookies.", gold)


# --------------------------------------------------------------------------------------------
# HellaSwag: an activity label, a context and four endings
# --------------------------------------------------------------------------------------------
def _hs_count(rng: random.Random, gold: int) -> _Item:
    start, step = rng.randint(1, 1000), rng.choice([1, 2, 3, 4, 5, 10, 20, 25, 50, 100])
    right = start + 3 * step
    wrongs = _wrong_numbers(rng, right, 3, (start + 4 * step, start + 2 * step, right + 1))
    ctx = f"A child counts out loud: {start}, {start + step}, {start + 2 * step}, and then says"
    choices = _place(rng, f"{right}.", [f"{w}." for w in wrongs], gold)
    return _Item(("count", start, step), ctx, choices, gold, "Counting")


def _hs_day(rng: random.Random, gold: int) -> _Item:
    i, forward = rng.randrange(7), rng.random() < 0.5
    right = DAYS[(i + 1) % 7] if forward else DAYS[(i - 1) % 7]
    ctx = f"Today is {DAYS[i]}, so {'tomorrow will be' if forward else 'yesterday was'}"
    wrongs = rng.sample([d for d in DAYS if d not in (right, DAYS[i])], 3)
    return _Item(("day", DAYS[i]), ctx, _place(rng, f"{right}.", [f"{w}." for w in wrongs], gold), gold,
                 "Planning the week")


def _hs_month(rng: random.Random, gold: int) -> _Item:
    i = rng.randrange(12)
    right = MONTHS[(i + 1) % 12]
    wrongs = rng.sample([m for m in MONTHS if m not in (right, MONTHS[i])], 3)
    ctx = f"A girl turns the page of the calendar. The month after {MONTHS[i]} is"
    return _Item(("month", MONTHS[i]), ctx, _place(rng, f"{right}.", [f"{w}." for w in wrongs], gold), gold,
                 "Reading a calendar")


def _hs_routine(rng: random.Random, gold: int) -> _Item:
    i = rng.randrange(len(ROUTINES))
    label, ctx, right = ROUTINES[i]
    wrongs = [r[2] for r in rng.sample(ROUTINES[:i] + ROUTINES[i + 1:], 3)]
    return _Item(("routine", label), ctx, _place(rng, right, wrongs, gold), gold, label)


# --------------------------------------------------------------------------------------------
# WinoGrande: a sentence with one "_" and two options
# --------------------------------------------------------------------------------------------
def _wg_numbers(rng: random.Random, gold: int, tag: str, lo: int, hi: int, sentence: str, more: str, fewer: str) -> _Item:
    """Two people, two numbers; the blank is whoever has the larger (``more``) or smaller (``fewer``) one."""
    (p, q), (a, b) = _two_names(rng), _distinct_pair(rng, lo, hi)
    word = rng.choice([more, fewer])
    right = p if (a > b) == (word == more) else q
    options = _place(rng, right, [q if right == p else p], gold)
    return _Item((tag, min(a, b), max(a, b)), sentence.format(p=p, a=a, q=q, b=b, word=word), options, gold)


def _wg_age(rng: random.Random, gold: int) -> _Item:
    return _wg_numbers(rng, gold, "age", 3, 99, "{p} is {a} years old and {q} is {b} years old, so _ is {word}.",
                       "older", "younger")


def _wg_race(rng: random.Random, gold: int) -> _Item:
    # More seconds = slower: "slower" plays the role of ``more``.
    return _wg_numbers(rng, gold, "race", 10, 150,
                       "{p} finished the race in {a} seconds and {q} finished it in {b} seconds, so _ was {word}.",
                       "slower", "faster")


def _wg_fit(rng: random.Random, gold: int) -> _Item:
    small, big = _size_pair(rng)
    name, word = rng.choice(NAMES), rng.choice(["large", "small"])
    right, wrong = (_noun(big), _noun(small)) if word == "large" else (_noun(small), _noun(big))
    sentence = f"{name} could not put the {_noun(big)} into the {_noun(small)} because the _ was too {word}."
    return _Item(_sorted_key("size", small, big), sentence, _place(rng, right, [wrong], gold), gold)


def _wg_temperature(rng: random.Random, gold: int) -> _Item:
    (p, q), hot, cold = _two_names(rng), rng.choice(HOT), rng.choice(COLD)
    word = rng.choice(["warm", "cold"])
    right, wrong = (p, q) if word == "warm" else (q, p)
    sentence = f"{p} held a hand near {hot} while {q} held a hand near {cold}, so _ had a {word} hand."
    return _Item(_sorted_key("temp", hot, cold), sentence, _place(rng, right, [wrong], gold), gold)


# --------------------------------------------------------------------------------------------
# ARC-Easy / ARC-Challenge / OpenBookQA (4 answers) and SIQA (3 answers)
# --------------------------------------------------------------------------------------------
def _odd_one_out(rng: random.Random, gold: int, tag: str, stem: str, right_pool: list[str], wrong_pool: list[str],
                 n_wrong: int = 3) -> _Item:
    right, wrongs = rng.choice(right_pool), rng.sample(wrong_pool, n_wrong)
    return _Item((tag, right, *sorted(wrongs)), stem, _place(rng, right, wrongs, gold), gold)


def _arc_largest(rng: random.Random, gold: int) -> _Item:
    largest = rng.random() < 0.5
    t = rng.randrange(2, len(SIZE_TIERS)) if largest else rng.randrange(len(SIZE_TIERS) - 2)
    others = [x for j, tier in enumerate(SIZE_TIERS) if abs(j - t) >= 2 and (j < t) == largest for x in tier]
    right, wrongs = rng.choice(SIZE_TIERS[t]), rng.sample(others, 3)
    stem = f"Which of these is the {'largest' if largest else 'smallest'}?"
    return _Item(("size4", right, *sorted(wrongs)), stem, _place(rng, right, wrongs, gold), gold)


def _arc_fly(rng: random.Random, gold: int) -> _Item:
    return _odd_one_out(rng, gold, "fly4", "Which of these animals can fly?", FLYERS, NON_FLYERS)


def _arc_sink(rng: random.Random, gold: int) -> _Item:
    return _odd_one_out(rng, gold, "sink4", "Which of these objects will sink to the bottom of a pond?", SINKERS, FLOATERS)


def _arc_add(rng: random.Random, gold: int) -> _Item:
    a, b = rng.randint(2, 200), rng.randint(2, 200)
    right = a + b
    stem = f"A farmer has {a} cows and buys {b} more. How many cows does the farmer have now?"
    wrongs = _wrong_numbers(rng, right, 3, (abs(a - b),))
    return _Item(_sorted_key("add", a, b), stem, _place(rng, str(right), wrongs, gold), gold)


def _arc_multiply(rng: random.Random, gold: int) -> _Item:
    rows, cols = rng.randint(2, 20), rng.randint(2, 20)
    right = rows * cols
    stem = f"A box holds {rows} rows of {cols} apples. How many apples are in the box?"
    wrongs = _wrong_numbers(rng, right, 3, (rows + cols, right + rows, right - cols))
    return _Item(_sorted_key("mul", rows, cols), stem, _place(rng, str(right), wrongs, gold), gold)


def _arc_days_later(rng: random.Random, gold: int) -> _Item:
    i, k = rng.randrange(7), rng.randint(2, 30)
    right = DAYS[(i + k) % 7]
    wrongs = rng.sample([d for d in DAYS if d != right], 3)
    stem = f"If today is {DAYS[i]}, what day of the week will it be in {k} days?"
    return _Item(("dayplus", DAYS[i], k), stem, _place(rng, right, wrongs, gold), gold)


def _arc_distance(rng: random.Random, gold: int) -> _Item:
    speed, hours = rng.randint(10, 150), rng.randint(2, 9)
    right = speed * hours
    stem = f"A train travels {speed} kilometres every hour. How far does it travel in {hours} hours?"
    wrongs = _wrong_numbers(rng, right, 3, (speed + hours, right + speed, right - speed))
    return _Item(_sorted_key("mul", hours, speed), stem, _place(rng, f"{right} kilometres", [f"{w} kilometres" for w in wrongs], gold),
                 gold)


def _arc_freeze(rng: random.Random, gold: int) -> _Item:
    below, above = rng.randint(1, 30), rng.sample(range(5, 41), 3)
    stem = "Water freezes at 0 degrees Celsius. At which of these temperatures would a puddle of water freeze?"
    choices = _place(rng, f"-{below} degrees Celsius", [f"{t} degrees Celsius" for t in above], gold)
    return _Item(("freeze", below, *sorted(above)), stem, choices, gold)


def _arc_hottest(rng: random.Random, gold: int) -> _Item:
    return _odd_one_out(rng, gold, "hot4", "Which of these is the hottest?", HOT, COLD)


def _ob_tool(rng: random.Random, gold: int) -> _Item:
    i = rng.randrange(len(TOOLS))
    job, tool = TOOLS[i]
    wrongs = [t for _, t in rng.sample(TOOLS[:i] + TOOLS[i + 1:], 3)]
    return _Item(("tool", job), f"To {job}, a person should use", _place(rng, tool, wrongs, gold), gold)


def _ob_float(rng: random.Random, gold: int) -> _Item:
    return _odd_one_out(rng, gold, "float4", "An object that floats on water is", FLOATERS, SINKERS)


def _ob_burn(rng: random.Random, gold: int) -> _Item:
    return _odd_one_out(rng, gold, "hot4", "Touching which of these could burn a person's hand?", HOT, COLD)


def _ob_basket(rng: random.Random, gold: int) -> _Item:
    a, b = rng.randint(2, 200), rng.randint(2, 200)
    stem = f"A basket holds {a} apples. After {b} more apples are put in, the basket holds"
    wrongs = _wrong_numbers(rng, a + b, 3, (abs(a - b),))
    return _Item(_sorted_key("add", a, b), stem, _place(rng, f"{a + b} apples", [f"{w} apples" for w in wrongs], gold),
                 gold)


def _si_feel(rng: random.Random, gold: int) -> _Item:
    happy, name = rng.random() < 0.5, rng.choice(NAMES)
    event = rng.choice(HAPPY_EVENTS if happy else SAD_EVENTS)
    right = rng.choice(HAPPY_FEELINGS if happy else SAD_FEELINGS)
    wrongs = rng.sample(SAD_FEELINGS if happy else HAPPY_FEELINGS, 2)
    stem = f"{name} {event}. How would {name} feel afterwards?"
    return _Item(("feel", event), stem, _place(rng, right, wrongs, gold), gold)


def _si_before(rng: random.Random, gold: int) -> _Item:
    i, name = rng.randrange(len(PREREQUISITES)), rng.choice(NAMES)
    goal, right = PREREQUISITES[i]
    wrongs = [p for _, p in rng.sample(PREREQUISITES[:i] + PREREQUISITES[i + 1:], 2)]
    stem = f"{name} wanted to {goal}. What does {name} need to do before this?"
    return _Item(("before", goal), stem, _place(rng, right, wrongs, gold), gold)


def _si_give(rng: random.Random, gold: int) -> _Item:
    (p, q), a = _two_names(rng), rng.randint(5, 200)
    b = rng.randint(1, a - 1)
    stem = f"{p} had {a} stickers and gave {b} of them to {q}. How many stickers does {p} have left?"
    wrongs = _wrong_numbers(rng, a - b, 2, (a + b,))
    return _Item(("sub", a, b), stem, _place(rng, str(a - b), wrongs, gold), gold)


TEMPLATES: dict[str, list[Template]] = {
    "boolq": [_bq_greater, _bq_parity, _bq_sum, _bq_size, _bq_fly, _bq_float, _bq_day, _bq_temperature],
    "piqa": [_pq_tool, _pq_procedure, _pq_float, _pq_cheaper, _pq_share],
    "hellaswag": [_hs_count, _hs_day, _hs_month, _hs_routine],
    "winogrande": [_wg_age, _wg_race, _wg_fit, _wg_temperature],
    "arc_easy": [_arc_largest, _arc_fly, _arc_sink, _arc_add],
    "arc_challenge": [_arc_multiply, _arc_days_later, _arc_distance, _arc_freeze, _arc_hottest],
    "openbookqa": [_ob_tool, _ob_float, _ob_burn, _ob_basket],
    "siqa": [_si_feel, _si_before, _si_give],
}


# --------------------------------------------------------------------------------------------
# Rendering in the LLM-Adapters shapes
# --------------------------------------------------------------------------------------------
def answer_labels(benchmark: str, k: int) -> list[str]:
    """The answer strings of a benchmark with k choices, in choice order."""
    if benchmark == "boolq":
        return ["true", "false"]
    word = {"piqa": "solution", "hellaswag": "ending", "winogrande": "option"}.get(benchmark, "answer")
    return [f"{word}{i}" for i in range(1, k + 1)]


def _instruction(benchmark: str, item: _Item) -> str:
    c, fmt = item.choices, "/".join(answer_labels(benchmark, len(item.choices)))
    if benchmark == "boolq":
        return f"Please answer the following question with true or false, question: {item.stem}\n\nAnswer format: {fmt}"
    if benchmark == "piqa":
        return (f"Please choose the correct solution to the question: {item.stem}\n\nSolution1: {c[0]}\n\n"
                f"Solution2: {c[1]}\n\nAnswer format: {fmt}")
    if benchmark == "winogrande":
        return (f"Please choose the correct answer to fill in the blank to complete the given sentence: {item.stem}\n\n"
                f"Option1: {c[0]} Option2: {c[1]} Answer format: {fmt}")
    if benchmark == "hellaswag":
        endings = " ".join(f"Ending{i}: {e}" for i, e in enumerate(c, 1))
        return (f"Please choose the correct ending to complete the given sentence: {item.label}: {item.stem}\n\n"
                f"{endings}\n\nAnswer format: {fmt}")
    answers = " ".join(f"Answer{i}: {a}" for i, a in enumerate(c, 1))
    return f"Please choose the correct answer to the question: {item.stem}\n\n{answers}\n\nAnswer format: {fmt}"


def _record(benchmark: str, item: _Item) -> dict:
    assert len(set(item.choices)) == len(item.choices), f"duplicate choices in {item}"  # gold must be unique
    answer = answer_labels(benchmark, len(item.choices))[item.gold]
    return {"instruction": _instruction(benchmark, item), "input": "", "output": f"the correct answer is {answer}",
            "answer": answer}


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def canonical_benchmark(benchmark: str) -> str:
    name = ALIASES.get(benchmark, benchmark)
    if name not in TEMPLATES:
        raise ValueError(f"unknown commonsense benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")
    return name


def split_of(key: tuple) -> str:
    """``"test"`` or ``"train"``, from a stable sha1 of the fact key (see module docstring)."""
    bucket = int(hashlib.sha1(repr(key).encode("utf-8")).hexdigest(), 16) % 10
    return "test" if bucket < _TEST_BUCKETS else "train"


def _stream_seed(*parts) -> int:
    text = "|".join(["astra_repro.synthetic_commonsense", *map(str, parts)])
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def _balanced_positions(rng: random.Random, k: int) -> Iterator[int]:
    """Gold positions in shuffled blocks of k: every position is gold equally often, yet unpredictably."""
    while True:
        block = list(range(k))
        rng.shuffle(block)
        yield from block


def _items(benchmark: str, n: int, seed: int, split: str) -> list[_Item]:
    rng = random.Random(_stream_seed(benchmark, split, seed))
    positions = _balanced_positions(random.Random(_stream_seed(benchmark, split, seed, "positions")), N_CHOICES[benchmark])
    items: list[_Item] = []
    seen: set[tuple] = set()
    gold = next(positions)
    # ~80% of facts are rejected for the test split and small fact lists run dry; the bound only guards a bug.
    for _ in range(2000 + 200 * n):
        if len(items) == n:
            break
        item = rng.choice(TEMPLATES[benchmark])(rng, gold)
        if item.key in seen or split_of(item.key) != split:
            continue
        seen.add(item.key)
        items.append(item)
        gold = next(positions)
    if len(items) < n:
        raise ValueError(f"could only generate {len(items)} distinct {split} {benchmark} questions, asked for {n}")
    return items


def synthetic_commonsense_records(benchmark: str, n: int, seed: int = 0, split: str = "train") -> list[dict]:
    """``n`` distinct questions of one benchmark in LLM-Adapters format ({instruction, input, output, answer})."""
    benchmark = canonical_benchmark(benchmark)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return [_record(benchmark, item) for item in _items(benchmark, n, seed, split)]


def mix_counts(n: int) -> dict[str, int]:
    """How many of ``n`` training records each benchmark gets: Commonsense170K's proportions, largest remainder."""
    total = sum(COMMONSENSE_170K_SIZES.values())
    exact = {b: n * COMMONSENSE_170K_SIZES[b] / total for b in BENCHMARKS}
    counts = {b: int(x) for b, x in exact.items()}
    by_remainder = sorted(BENCHMARKS, key=lambda b: (-(exact[b] - counts[b]), BENCHMARKS.index(b)))
    for b in by_remainder[: n - sum(counts.values())]:
        counts[b] += 1
    return counts


def synthetic_commonsense_training(n: int, seed: int = 0) -> list[dict]:
    """``n`` training records over the eight benchmarks in Commonsense170K's proportions, interleaved at random (so
    any prefix, e.g. the first n_train, holds every benchmark in about those proportions)."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    counts = mix_counts(n)
    pools = {b: iter(synthetic_commonsense_records(b, counts[b], seed, "train")) for b in BENCHMARKS}
    order = [b for b in BENCHMARKS for _ in range(counts[b])]
    random.Random(_stream_seed("mix", seed)).shuffle(order)
    return [next(pools[b]) for b in order]
