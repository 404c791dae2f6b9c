"""The eight commonsense benchmarks as lm-eval tasks: lm-eval's official task (v0.4.13 YAMLs under lm_eval/tasks/)
and our task over LLM-Adapters records, which reuses the official prompt, choices, target delimiter and metric
list so that only the data differs. Both are zero-shot multiple choice scored by lm-eval (log-likelihood per choice,
acc = argmax, acc_norm = argmax of log-likelihood / choice length in characters).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ACC = {"metric": "acc", "aggregation": "mean", "higher_is_better": True}
ACC_NORM = {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}


@dataclass(frozen=True)
class Benchmark:
    name: str  # evaluator name
    folder: str  # LLM-Adapters dataset/<folder>/test.json
    official_task: str  # lm-eval task name
    official_dir: str  # its folder under lm_eval/tasks (indexing only that one takes ms instead of ~8 s)
    official_split: str  # the split the official task scores (the LLM-Adapters test file holds the same documents)
    has_acc_norm: bool  # whether the official task's metric_list has acc_norm
    prompt: str  # the official doc_to_text and choices, for the record
    local_difference: str  # how the LLM-Adapters records change the official prompt, if at all

    @property
    def local_task(self) -> str:
        return f"astra_{self.name}_llm_adapters"


SAME = "same prompt and choices as the official task"
ANSWER_TEXTS = "Question: {{question}}\\nAnswer:  choices: ' ' + each choice text"
BENCHMARKS = {
    b.name: b
    for b in [
        Benchmark(
            "boolq", folder="boolq", official_task="boolq", official_dir="super_glue/boolq", official_split="validation",
            has_acc_norm=False, prompt="{{passage}}\\nQuestion: {{question}}?\\nAnswer:  choices: ' no' / ' yes'",
            local_difference="the LLM-Adapters file has no passage: 'Question: {question}?\\nAnswer:' (question only)",
        ),
        Benchmark(
            "piqa", folder="piqa", official_task="piqa", official_dir="piqa", official_split="validation",
            has_acc_norm=True, prompt="Question: {{goal}}\\nAnswer:  choices: ' ' + sol1 / sol2", local_difference=SAME,
        ),
        Benchmark(
            "hellaswag", folder="hellaswag", official_task="hellaswag", official_dir="hellaswag", official_split="validation",
            has_acc_norm=True,
            prompt="preprocess(activity_label + ': ' + ctx_a + ' ' + ctx_b.capitalize())  choices: ' ' + preprocess(ending)",
            local_difference="LLM-Adapters stores ctx = ctx_a + ' ' + ctx_b, so ctx_b.capitalize() (first letter up, "
            "the rest lowered) cannot be applied: ctx_b keeps its stored case; the same preprocess() otherwise",
        ),
        Benchmark(
            "winogrande", folder="winogrande", official_task="winogrande", official_dir="winogrande",
            official_split="validation", has_acc_norm=False,
            prompt="partial scoring: context = sentence up to '_' + option, continuation = the rest",
            local_difference=SAME,
        ),
        Benchmark(
            "arc_easy", folder="ARC-Easy", official_task="arc_easy", official_dir="arc", official_split="test",
            has_acc_norm=True, prompt=ANSWER_TEXTS, local_difference=SAME,
        ),
        Benchmark(
            "arc_challenge", folder="ARC-Challenge", official_task="arc_challenge", official_dir="arc", official_split="test",
            has_acc_norm=True, prompt=ANSWER_TEXTS, local_difference=SAME,
        ),
        Benchmark(
            "openbookqa", folder="openbookqa", official_task="openbookqa", official_dir="openbookqa", official_split="test",
            has_acc_norm=True, prompt="{{question_stem}}  choices: ' ' + each choice text", local_difference=SAME,
        ),
        Benchmark(
            "siqa", folder="social_i_qa", official_task="social_iqa", official_dir="siqa", official_split="validation",
            has_acc_norm=False, prompt="Q: {{context}} {{question}}\\nA:  choices: ' ' + answerA / answerB / answerC",
            local_difference=SAME + " (LLM-Adapters stores '{context} {question}' as one string)",
        ),
    ]
}


def local_task_config(benchmark: Benchmark, docs_file: Path, hf_cache: Path) -> dict:
    """lm-eval TaskConfig fields for the converted LLM-Adapters documents (llm_adapters.record_to_doc)."""
    if benchmark.name == "winogrande":  # lm-eval's own functions; doc_to_text returns the gold index (multiple input)
        from lm_eval.tasks.winogrande import preprocess_winogrande as wino

        fields = {"doc_to_text": wino.doc_to_text, "doc_to_target": wino.doc_to_target, "doc_to_choice": wino.doc_to_choice}
    else:  # the official doc_to_text is already applied to `query`
        fields = {"doc_to_text": "query", "doc_to_target": "gold", "doc_to_choice": "choices"}
    return {
        "task": benchmark.local_task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(docs_file)}, "cache_dir": str(hf_cache)},
        "output_type": "multiple_choice",
        "test_split": "test",
        "target_delimiter": " ",
        "num_fewshot": 0,
        "metric_list": [ACC, ACC_NORM] if benchmark.has_acc_norm else [ACC],
        "metadata": {"version": 1.0, "source": "LLM-Adapters test file", "official_task": benchmark.official_task},
        **fields,
    }
