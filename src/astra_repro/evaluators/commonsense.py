"""Commonsense benchmarks (BoolQ, PIQA, HellaSwag, WinoGrande, ARC-e, ARC-c, OBQA and SIQA) scored by lm-eval as the
authors ran it (protocol §3.4): zero-shot multiple choice, `acc` reported and `acc_norm` logged, and every
document saved with its per-choice log-likelihoods.

Data (`source`, per evaluator):
  local     - an LLM-Adapters test file (`path`, or `<data_dir>/<folder>/test.json`), turned into an lm-eval task
              that keeps the official prompt (lm_eval_tasks/). If `data_dir` lacks this benchmark, it is skipped.
  official  - lm-eval's own task, used only when its dataset is already in the local HF cache. It is never
              downloaded here: scripts/prepare_commonsense.py fills the cache on a connected machine.
  synthetic - built-in stand-in records in the LLM-Adapters format, scored exactly like `local`.
  auto      - local if configured -> official if cached -> skipped if data was configured but lacks this
              benchmark -> synthetic.
Model: `eval.backend` as for the other evaluators (generation.resolve_backend). `vllm` is lm-eval's `vllm` model on
the saved folder (fp16, gpu_memory_utilization 0.8, as in the authors' script); `hf` is lm-eval's HFLM around the
in-memory model. An lm-eval `LM` passed as `EvalTarget.model` is used as is (the tests inject one this way).
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from astra_repro.data.sources import warn_synthetic
from astra_repro.errors import ConfigError
from astra_repro.evaluators.base import EvalResult, EvalTarget, Evaluator, MetricSpec, N, PATH, register_evaluator
from astra_repro.options import Option
from astra_repro.evaluators.generation import resolve_backend
from astra_repro.evaluators.lm_eval_tasks.llm_adapters import converted_file
from astra_repro.evaluators.lm_eval_tasks.specs import BENCHMARKS, Benchmark, local_task_config
from astra_repro.paths import cache_dir

LM_EVAL_PIN = "0.4.13"
SOURCES = ("auto", "local", "official", "synthetic")
SYNTHETIC_N = 200  # synthetic test records when `n` is unset
VLLM_ARGS = {"dtype": "float16", "gpu_memory_utilization": 0.8}  # scripts/commonsense/run.sh
PREPARE_HINT = (
    "run scripts/prepare_commonsense.py on a machine with network access (it fills the HF datasets cache), "
    "or use source=local with the LLM-Adapters test files"
)


def lm_eval_version() -> str:
    try:
        import lm_eval
    except ImportError:
        raise ConfigError(f"the commonsense evaluators need lm-eval: pip install lm-eval=={LM_EVAL_PIN}") from None
    if lm_eval.__version__ != LM_EVAL_PIN:
        warnings.warn(f"lm-eval {lm_eval.__version__} is installed; these evaluators were checked with {LM_EVAL_PIN}")
    return lm_eval.__version__


# ---------------------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------------------
@contextmanager
def datasets_offline():
    """`datasets` reads its offline flag at call time: forcing it makes an uncached dataset fail at once instead of
    being downloaded (on a connected machine, "official when cached" would otherwise mean "download")."""
    import datasets.config

    old = datasets.config.HF_HUB_OFFLINE
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = old


def load_official_task(benchmark: Benchmark):
    """lm-eval's own task, zero-shot. Its dataset comes from the HF cache, or the hub unless `datasets` is offline."""
    import lm_eval.tasks

    # Only the benchmark's own YAML folder is indexed: the full index takes ~8 s per TaskManager.
    folder = Path(lm_eval.tasks.__file__).parent / benchmark.official_dir
    manager = lm_eval.tasks.TaskManager(include_path=str(folder), include_defaults=False)
    task = manager.load([benchmark.official_task])["tasks"][benchmark.official_task]
    task.set_config(key="num_fewshot", value=0)
    return task


def official_task(benchmark: Benchmark) -> tuple[Any, str]:
    """(lm-eval's own task, "") when its dataset is in the local HF cache, else (None, why not). Never downloads."""
    try:
        with datasets_offline():
            return load_official_task(benchmark), ""
    # Not cached: ConnectionError / DatasetNotFoundError (OSError); another config of the same dataset cached but
    # not this one: ValueError ("Couldn't find cache for ...").
    except (OSError, ValueError) as err:
        return None, f"{type(err).__name__}: {str(err).splitlines()[0]}"


def local_task(benchmark: Benchmark, path: Path, setting: str | None = None):
    """(lm-eval task over the LLM-Adapters file at `path`, number of documents); `setting` names the file's key."""
    from lm_eval.api.task import ConfigurableTask

    root = cache_dir() / "commonsense"
    docs_file, count = converted_file(benchmark.name, path, root / "docs", setting)
    return ConfigurableTask(config=local_task_config(benchmark, docs_file, root / "hf_datasets")), count


# ---------------------------------------------------------------------------------------------------------------
# Models: one lm-eval LM at a time, shared by the eight evaluators
# ---------------------------------------------------------------------------------------------------------------
_LM_SLOT: dict[str, Any] = {}  # one entry: a new model or folder replaces it, so old weights are not kept alive


def lm_for(target: EvalTarget, batch_size) -> tuple[Any, dict]:
    """The lm-eval LM that scores `target`, and how it was made."""
    from lm_eval.api.model import LM

    if isinstance(target.model, LM):
        return target.model, {"backend": f"lm-eval {type(target.model).__name__} (given)"}
    backend = resolve_backend(target.backend, target.path)
    if backend == "vllm":
        key = ("vllm", str(target.path), str(batch_size))
        info = {"backend": "vllm", **VLLM_ARGS}

        def build():
            import torch
            from lm_eval.models.vllm_causallms import VLLM

            return VLLM(
                pretrained=str(target.path), tensor_parallel_size=max(1, torch.cuda.device_count()),
                batch_size=batch_size, **VLLM_ARGS,
            )
    else:
        if target.model is None:
            raise ConfigError("commonsense: the HF backend needs the model in memory (or use eval.backend=vllm)")
        model = target.model.get_base_model() if hasattr(target.model, "get_base_model") else target.model
        key = ("hf", id(model), str(batch_size))  # the slot keeps `model` alive, so its id cannot be reused meanwhile
        info = {"backend": "hf", "dtype": str(next(model.parameters()).dtype).replace("torch.", "")}

        def build():
            from lm_eval.models.huggingface import HFLM

            return HFLM(pretrained=model, tokenizer=target.tokenizer, batch_size=batch_size)
    if _LM_SLOT.get("key") != key:
        _LM_SLOT.clear()  # drop the previous LM (and its engine) before building the next one
        _LM_SLOT.update(key=key, lm=build())
    if backend == "hf":
        model.eval()  # the model may have been trained since HFLM wrapped it
    return _LM_SLOT["lm"], {**info, "batch_size": batch_size}


def release_lm() -> None:
    """Drop the shared LM and the model or vLLM engine it holds (else kept until the next model is scored)."""
    _LM_SLOT.clear()


# ---------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------
def percent(value) -> float | None:
    return 100.0 * float(value) if isinstance(value, (int, float)) else None  # lm-eval writes "N/A" for n = 1


def gold_index(task, doc: dict) -> int:
    """lm-eval's own rule (ConfigurableTask.process_results): with several contexts the gold comes from
    doc_to_text, else from doc_to_target, which may be a choice's text."""
    gold = task.doc_to_text(doc) if task.multiple_input else task.doc_to_target(doc)
    return task.doc_to_choice(doc).index(gold) if isinstance(gold, str) else int(gold)


def prediction(task, sample: dict, evaluator: str) -> dict:
    """One lm-eval logged sample, distilled. Winogrande (multiple input) has a context per choice and one
    continuation; the other tasks one context and a continuation per choice."""
    contexts = [arg[0] for arg in sample["arguments"]]
    continuations = [arg[1] for arg in sample["arguments"]]
    loglikelihoods = [float(resp[0]) for resp in sample["filtered_resps"]]
    return {
        "evaluator": evaluator,
        "doc_id": sample["doc_id"],
        "record_index": sample["doc"].get("record_index"),  # the LLM-Adapters record (local and synthetic data)
        "context": contexts if task.multiple_input else contexts[0],
        "continuation": continuations[0] if task.multiple_input else continuations,
        "loglikelihoods": loglikelihoods,
        "gold": gold_index(task, sample["doc"]),
        "pred": max(range(len(loglikelihoods)), key=loglikelihoods.__getitem__),
        "correct": bool(sample["acc"]),
        "correct_norm": bool(sample["acc_norm"]) if "acc_norm" in sample else None,
    }


def score(lm, task, limit: int | None, evaluator: str) -> tuple[dict, list[dict]]:
    """lm-eval on the first `limit` documents (all when None): metrics in percent, one prediction per document."""
    from lm_eval.evaluator import evaluate

    name = task.config.task
    out = evaluate(lm, {"tasks": {name: task}, "groups": {}}, limit=limit, log_samples=True)
    row = out["results"][name]
    metrics = {"acc": percent(row.get("acc,none")), "acc_norm": percent(row.get("acc_norm,none")),
               "acc_stderr": percent(row.get("acc_stderr,none"))}
    samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    return metrics, [prediction(task, s, evaluator) for s in samples]


# ---------------------------------------------------------------------------------------------------------------
# Evaluators
# ---------------------------------------------------------------------------------------------------------------
class CommonsenseEvaluator(Evaluator):
    """Shared by the eight benchmarks; a subclass only names one (its `name` is a key of BENCHMARKS)."""

    item_id_field = "doc_id"
    metrics = (
        MetricSpec("acc", "correct", "{benchmark}"),
        MetricSpec("acc_norm", "correct_norm", "{benchmark} (acc_norm)"),
        MetricSpec("acc_stderr", None, "{benchmark} stderr", direction="lower"),
    )
    version = f"1+lm-eval{LM_EVAL_PIN}"
    batch_size_auto = True  # lm-eval finds the largest batch that fits (`batch_size: auto`)
    settings = {
        "source": Option("auto", choices=("auto", "local", "official", "synthetic")),
        "path": PATH, "data_dir": Option(None, kind=str, doc="LLM-Adapters dataset folder (task.eval_data_dir)"),
        "n": N, "batch_size": Option(16, choices=("auto",), kind=int, minimum=1, doc="auto: lm-eval sizes batches"),
    }

    @property
    def spec(self) -> Benchmark:
        return BENCHMARKS[self.name]

    def configured_file(self) -> tuple[Path | None, str]:
        """(the LLM-Adapters file to score, or None with the reason). A configured location that does not exist is
        an error (a typo); a data_dir without this benchmark's folder is missing data."""
        if self.cfg.get("path"):
            path = Path(str(self.cfg.path)).expanduser()
            if not path.is_file():
                raise ConfigError(f"{self.name}: path={path} does not exist; point it at an LLM-Adapters test.json")
            return path, ""
        if self.cfg.get("data_dir"):
            data_dir = Path(str(self.cfg.data_dir)).expanduser()
            if not data_dir.is_dir():
                raise ConfigError(f"{self.name}: data_dir={data_dir} is not a directory (LLM-Adapters' dataset/)")
            path = data_dir / self.spec.folder / "test.json"
            return (path, "") if path.is_file() else (None, f"{path} does not exist")
        return None, "no path or data_dir configured"

    def file_task(self, path: Path, data_source: str) -> tuple[Any, dict]:
        task, count = local_task(self.spec, path, f"task.evaluators.{self.name}.path (or task.eval_data_dir)")
        return task, {
            "data_source": data_source, "data_path": str(path), "n_available": count,
            "lm_eval_task": self.spec.local_task, "official_task": self.spec.official_task,
            "prompt_style": "lm-eval official prompt on LLM-Adapters records", "prompt": self.spec.prompt,
            "prompt_difference": self.spec.local_difference,
        }

    def synthetic_task(self, n: int | None) -> tuple[Any, dict]:
        from astra_repro.data.synthetic_commonsense import synthetic_commonsense_records

        n, seed = n or SYNTHETIC_N, int(self.cfg.get("synthetic_seed", 0))
        path = cache_dir() / "commonsense" / "synthetic" / f"{self.name}-test-n{n}-seed{seed}.json"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            records = synthetic_commonsense_records(self.name, n, seed, "test")
            tmp.write_text(json.dumps(records, indent=1), encoding="utf-8")
            tmp.replace(path)
        warn_synthetic(f"{self.name} commonsense", kind="commonsense multiple-choice records")
        return self.file_task(path, "synthetic")

    def choose_task(self, n: int | None) -> tuple[Any, dict]:
        """(lm-eval task, info), or (None, info with `skipped`); see the module docstring for the order."""
        source = self.cfg.get("source", "auto")
        if source not in SOURCES:
            raise ConfigError(f"{self.name}: unknown source '{source}'; valid: {', '.join(SOURCES)}")
        if source == "synthetic":
            return self.synthetic_task(n)
        if source in ("auto", "local"):
            path, why_not = self.configured_file()
            if path is not None:
                return self.file_task(path, "local")
            if source == "local":
                if not (self.cfg.get("path") or self.cfg.get("data_dir")):
                    raise ConfigError(f"{self.name}: source=local needs `path` (a test.json) or `data_dir`")
                return None, {"skipped": f"{self.name}: {why_not}", "data_source": None}
        task, why_not_official = official_task(self.spec)
        if task is not None:
            return task, {
                "data_source": "official",
                "data_path": f"{task.config.dataset_path} {task.config.dataset_name or ''}".strip(),
                "split": self.spec.official_split, "n_available": len(task.eval_docs),
                "lm_eval_task": self.spec.official_task, "official_task": self.spec.official_task,
                "prompt_style": "lm-eval official task", "prompt": self.spec.prompt,
            }
        if source == "official":
            raise ConfigError(
                f"{self.name}: source=official but lm-eval's {self.spec.official_task} dataset is not in the local HF "
                f"cache ({why_not_official}); {PREPARE_HINT}"
            )
        if self.cfg.get("path") or self.cfg.get("data_dir"):  # real data was asked for: no synthetic stand-in
            why_not += f", and lm-eval's {self.spec.official_task} dataset is not in the local HF cache"
            return None, {"skipped": f"{self.name}: {why_not}", "data_source": None}
        return self.synthetic_task(n)

    def evaluate(self, target: EvalTarget) -> EvalResult:
        version = lm_eval_version()
        n = self.cfg.get("n")
        if n is not None and (not isinstance(n, int) or n < 1):
            raise ConfigError(f"{self.name}: n must be a positive integer or null (all), got {n!r}")
        task, info = self.choose_task(n)
        if task is None:
            return self.skipped(info)
        lm, lm_info = lm_for(target, self.cfg.get("batch_size", 16))
        metrics, predictions = score(lm, task, n, self.name)
        info.update(n_eval=len(predictions), lm_eval_version=version, num_fewshot=0, **lm_info)
        return EvalResult(metrics=metrics, predictions=predictions, info=info)


@register_evaluator
class BoolQ(CommonsenseEvaluator):
    name = "boolq"
    label = "BoolQ"
    description = "BoolQ zero-shot acc via lm-eval (' no'/' yes'; the LLM-Adapters file lacks the passage)"


@register_evaluator
class PIQA(CommonsenseEvaluator):
    name = "piqa"
    label = "PIQA"
    description = "PIQA zero-shot acc/acc_norm via lm-eval"


@register_evaluator
class HellaSwag(CommonsenseEvaluator):
    name = "hellaswag"
    label = "HellaSwag"
    description = "HellaSwag zero-shot acc/acc_norm via lm-eval"


@register_evaluator
class WinoGrande(CommonsenseEvaluator):
    name = "winogrande"
    label = "WinoGrande"
    description = "WinoGrande zero-shot acc via lm-eval (partial scoring)"


@register_evaluator
class ARCEasy(CommonsenseEvaluator):
    name = "arc_easy"
    label = "ARC-e"
    description = "ARC-Easy zero-shot acc/acc_norm via lm-eval"


@register_evaluator
class ARCChallenge(CommonsenseEvaluator):
    name = "arc_challenge"
    label = "ARC-c"
    description = "ARC-Challenge zero-shot acc/acc_norm via lm-eval"


@register_evaluator
class OpenBookQA(CommonsenseEvaluator):
    name = "openbookqa"
    label = "OBQA"
    description = "OpenBookQA zero-shot acc/acc_norm via lm-eval"


@register_evaluator
class SIQA(CommonsenseEvaluator):
    name = "siqa"
    label = "SIQA"
    description = "Social IQA zero-shot acc via lm-eval (extra column, not in the paper)"
