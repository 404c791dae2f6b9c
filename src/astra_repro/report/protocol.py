"""Where a table cell's runs depart from the paper's protocol, read from their records: one mark per kind of
departure, a legend line per mark used, and no Δ (ours − paper) for a marked cell.

Only what the record says is used; a record that lacks a field (an older record) is not marked for it.
A difference that every cell shares (the lm-eval release scoring commonsense) is a note under the table
(`table_notes`), not a mark: marking every cell would hide the cells that differ.

Marks, and the record fields each one reads:
  † synthetic data: `data.data_source` or `eval_data.<evaluator>.data_source` is "synthetic";
  ‡ the prompt differs from the paper's: `eval_data.<evaluator>.prompt_difference` (commonsense scored on the
    LLM-Adapters files: BoolQ without its passage, HellaSwag without `capitalize`); a benchmark whose prompt is
    the official one records that it is the same, and is not marked;
  § a constructed code prompt: `eval_data.<evaluator>.prompt_source` is "constructed" (not the authors'
    pissa-dataset instructions);
  ¶ the global batch: `global_batch_size` is not the paper's for the table;
  ‖ the test set or its scoring: part of the test set scored (`n_eval` < `n_available` or `n_examples`; GLUE
    `full_split` false), MATH-500 (`format`), an EvalPlus release other than the paper's (`version`), MATH graded
    with sympy's LaTeX parser available (`sympy_parse_latex`; the authors' environment lacked it);
  ° the recipe or the training set: `recipe` is not the table's (e.g. `demo`), or fewer training examples than
    the paper's (`data.n_train`; GLUE, trained on the whole split: `n_train` < `n_pool` or `data.full_split` false).

The marks are plain Unicode characters, so Markdown and CSV show them as they are; `display.latex_escape`
turns them into LaTeX. They are distinct from the significance marks (L+/L-/A+/A-, `report.significance`).
Nothing here imports the training stack: the few reference values below are copied, and tests check them
against their sources (`evaluators/lm_eval_tasks/specs.py`, `evaluators/code_data.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from astra_repro.runs import scale_of

SYNTHETIC, PROMPT, CONSTRUCTED, BATCH, TEST_SET, TRAINING = "†", "‡", "§", "¶", "‖", "°"
ORDER = (SYNTHETIC, PROMPT, CONSTRUCTED, BATCH, TEST_SET, TRAINING)
MEANING = {
    SYNTHETIC: "synthetic data: a run in the cell trained or was scored on the built-in synthetic data (a pipeline "
               "check, not the benchmark)",
    PROMPT: "prompt differs from the paper's (record: prompt_difference)",
    CONSTRUCTED: "constructed code prompt (record: prompt_source=constructed): the Alpaca template around our "
                 "instruction, not the authors' pissa-dataset prompts",
    BATCH: "global batch differs from the paper's (record: global_batch_size)",
    TEST_SET: "test set or scoring differs from the paper's",
    TRAINING: "recipe or training set differs from the paper's",
}
SHORT = {SYNTHETIC: "synthetic data", PROMPT: "prompt", CONSTRUCTED: "constructed code prompt", BATCH: "global batch",
         TEST_SET: "test set or scoring", TRAINING: "recipe or training set"}
NOT_COMPARABLE = "n/c"
DELTA_RULE = (f"Δ {NOT_COMPARABLE}: a marked cell (an Avg is marked when one of its benchmarks is) is not the paper's "
              "protocol, so no Δ is given for it; the CSV leaves <column>.delta empty and lists the marks in "
              "<column>.protocol.")

PAPER_LM_EVAL = "0.4.3"  # the lm-eval release the paper cites for commonsense (07/2024; docs/evaluation.md)
# evaluators/lm_eval_tasks/specs.py: the `local_difference` of a benchmark whose LLM-Adapters prompt is lm-eval's
SAME_PROMPT = "same prompt and choices as the official task"
# evaluators/code_data.py: the EvalPlus releases the paper scored (RELEASES), and the base-only fallback for HumanEval
# (ORIGINAL_HUMANEVAL), whose base tests are HumanEval's own: its pass@1 is comparable, it has no pass@1_plus
PAPER_CODE_RELEASES = {
    "humaneval": {"HumanEvalPlus v0.1.10", "HumanEval (openai/human-eval, 164 tasks, base tests only)"},
    "mbpp": {"MbppPlus v0.2.0"},
}


@dataclass(frozen=True)
class PaperProtocol:
    """What the paper ran for one table: its global batch(es), the scale holding its hyper-parameters (records call it
    `recipe`), and the
    training examples (None: the whole training split). `OTHER` (a task the paper does not report) checks none."""

    global_batch_size: tuple[int, ...] | None = (128,)
    recipe: str | None = "paper"
    n_train: int | None = 100_000
    whole_split: bool = False  # n_train None: whether the paper trained on the whole split


NLG = PaperProtocol()  # Tables 2, 3, 4: Table 8's hyper-parameters, global batch 128, the first 100k examples
GLUE = PaperProtocol((128, 32), "paper", None, whole_split=True)  # Table 1 (128) and Table 9 (32): the whole split
OTHER = PaperProtocol(None, None, None)
TASK_PROTOCOLS = {"math": NLG, "code": NLG, "commonsense": NLG, "glue": GLUE}


def task_protocol(task: str | None) -> PaperProtocol:
    return TASK_PROTOCOLS.get(task or "", OTHER)


def record_departures(record: dict, evaluator: str, paper: PaperProtocol) -> dict[str, set[str]]:
    """mark -> what differs, for one record's score on one evaluator ({} when it follows the paper)."""
    found: dict[str, set[str]] = {}

    def add(mark: str, detail: str) -> None:
        found.setdefault(mark, set()).add(detail)

    data = record.get("data") or {}
    info = (record.get("eval_data") or {}).get(evaluator) or {}
    if data.get("data_source") == "synthetic":
        add(SYNTHETIC, "training data")
    if info.get("data_source") == "synthetic":
        add(SYNTHETIC, f"{evaluator} test set")
    difference = info.get("prompt_difference")
    if difference and not str(difference).startswith(SAME_PROMPT):
        add(PROMPT, f"{evaluator}: {difference}")
    if info.get("prompt_source") == "constructed":
        add(CONSTRUCTED, evaluator)
    batch = record.get("global_batch_size")
    if batch is not None and paper.global_batch_size and int(batch) not in paper.global_batch_size:
        add(BATCH, f"global batch {int(batch)} (paper: {' or '.join(map(str, paper.global_batch_size))})")
    n_eval = info.get("n_eval")
    for whole in ("n_available", "n_examples"):
        if isinstance(n_eval, int) and isinstance(info.get(whole), int) and n_eval < info[whole]:
            add(TEST_SET, f"{evaluator}: {n_eval} of {info[whole]} items scored")
    if info.get("full_split") is False and info.get("data_source") != "synthetic":  # GLUE: a sample file
        add(TEST_SET, f"{evaluator}: a sample file, not the whole split")
    if info.get("format") == "math500":
        add(TEST_SET, f"{evaluator}: MATH-500, not the 5000-problem MATH test set")
    if info.get("sympy_parse_latex") is True:
        add(TEST_SET, f"{evaluator}: graded with sympy's parse_latex available (the authors' environment lacked it)")
    version = info.get("version")
    if evaluator in PAPER_CODE_RELEASES and version and version not in PAPER_CODE_RELEASES[evaluator]:
        add(TEST_SET, f"{evaluator}: {version}")
    recipe = scale_of(record.get("recipe"))  # old GLUE records say `glue`
    if recipe and paper.recipe and recipe != paper.recipe:
        add(TRAINING, f"recipe {recipe} (paper: {paper.recipe})")
    n_train, n_pool = data.get("n_train"), data.get("n_pool")
    if isinstance(n_train, int) and data.get("data_source") != "synthetic":
        if paper.n_train is not None and n_train < paper.n_train:
            add(TRAINING, f"trained on {n_train} examples (paper: the first {paper.n_train})")
        elif paper.whole_split and ((isinstance(n_pool, int) and n_train < n_pool) or data.get("full_split") is False):
            add(TRAINING, f"trained on {n_train} examples (paper: the whole training split)")
    return found


def merge(parts: Iterable[dict[str, set[str]]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for part in parts:
        for mark, details in part.items():
            merged.setdefault(mark, set()).update(details)
    return merged


def cell_departures(records: Iterable[dict], evaluator: str, paper: PaperProtocol) -> dict[str, set[str]]:
    """The departures of a cell: those of any of its runs (one seed off the paper's protocol marks the cell)."""
    return merge(record_departures(r, evaluator, paper) for r in records)


def marks(departures: dict[str, set[str]]) -> str:
    """The cell's marks in a fixed order, e.g. "‡¶"; "" for none."""
    return "".join(m for m in ORDER if m in departures)


def legend(departures: dict[str, set[str]], delta_rule: bool = True) -> list[str]:
    """One line per mark used (what it means and, from the records, what differs), then the Δ rule when the table
    has a Δ column; [] for none."""
    lines = [f"{m} {MEANING[m]}" + (f": {'; '.join(sorted(departures[m]))}." if departures[m] else ".")
             for m in ORDER if m in departures]
    return lines + [DELTA_RULE] if lines and delta_rule else lines


def table_notes(records: Iterable[dict], evaluators: Iterable[str]) -> list[str]:
    """Differences every cell of a table shares, as notes: the lm-eval release that scored commonsense."""
    evaluators = set(evaluators)
    versions = {str(v) for r in records for e, info in (r.get("eval_data") or {}).items()
                if e in evaluators and (v := (info or {}).get("lm_eval_version")) and str(v) != PAPER_LM_EVAL}
    if not versions:
        return []
    return [f"Scored by lm-eval {', '.join(sorted(versions))} (record: lm_eval_version); the paper cites "
            f"{PAPER_LM_EVAL} (docs/evaluation.md). Every cell shares this, so no cell is marked for it."]
