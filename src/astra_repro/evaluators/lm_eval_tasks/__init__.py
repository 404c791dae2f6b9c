"""lm-eval task definitions for the commonsense benchmarks: `specs` (the official task of each benchmark and our task
over LLM-Adapters records, with the same prompt) and `llm_adapters` (those records -> lm-eval documents).

Plain Python (TaskConfig dicts), so nothing here needs shipping as package data. Importing this package does not
import lm-eval (an optional dependency); building a task does.
"""
