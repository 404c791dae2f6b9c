"""Every test runs offline, writes only under tmp dirs, and uses tiny models unless marked slow."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from astra_repro.paths import CONFIG_DIR  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Results and caches go to a per-test tmp dir, except the converted embedded model (slow to rebuild)."""
    monkeypatch.setenv("ASTRA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    yield


@pytest.fixture
def tiny_model_cfg():
    return OmegaConf.load(CONFIG_DIR / "model" / "tiny_llama.yaml")


@pytest.fixture
def tiny_model(tiny_model_cfg):
    """(model, tokenizer): a 2-layer random Llama (fp32) with a character tokenizer."""
    from astra_repro.models import load_model

    torch.manual_seed(0)
    return load_model(tiny_model_cfg)
