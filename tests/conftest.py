"""Every test runs offline, writes only under tmp dirs, and uses tiny models unless marked slow.

A test marked `slow` (it loads the embedded SmolLM2) reads its converted model from one folder per test run
(`embedded_model_cache`, given to it and its subprocesses as ASTRA_MODEL_CACHE): the model `make install` converted
is linked there when it is whole, else the first test that loads it converts it there, once for the whole run.
Everything else in its cache (calibration statistics, prepared data) stays its own."""

import os

# Under `make test`'s pytest-xdist workers each worker is one of two processes on the machine's cores: one OpenMP
# thread each (set before torch loads), else 2 x 2 threads thrash (docs/benchmarks.md, issue 20). A run applies it
# through the environment's OMP_NUM_THREADS (astra_repro/threads.py); the golden losses hold to 2e-4 at any count.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["WANDB_MODE"] = "disabled"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

from astra_repro.models import model_config  # noqa: E402
from astra_repro.paths import model_cache_dir  # noqa: E402

INSTALLED_MODELS = model_cache_dir()  # read before any test moves the caches: where `make install` converted


@pytest.fixture(scope="session")
def embedded_model_cache(tmp_path_factory):
    """This run's folder of converted embedded models: each model whole under INSTALLED_MODELS is linked, any other
    is converted here by the first test that loads it (the conversion lock makes concurrent loads wait for it)."""
    from astra_repro.models import converted_model_problem

    folder = tmp_path_factory.mktemp("embedded_models")
    for installed in sorted(INSTALLED_MODELS.iterdir()) if INSTALLED_MODELS.is_dir() else []:
        if installed.is_dir() and not installed.name.endswith(".tmp") and converted_model_problem(installed) is None:
            (folder / installed.name).symlink_to(installed.resolve(), target_is_directory=True)
    return folder


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch, request):
    """Results and caches go to a per-test tmp dir; a slow test's converted embedded model comes from the run's
    shared folder (slow to rebuild), every other test's models from its own cache."""
    monkeypatch.setenv("ASTRA_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    if request.node.get_closest_marker("slow"):
        monkeypatch.setenv("ASTRA_MODEL_CACHE", str(request.getfixturevalue("embedded_model_cache")))
    else:
        monkeypatch.delenv("ASTRA_MODEL_CACHE", raising=False)
    yield


@pytest.fixture
def tiny_model_cfg():
    return model_config("tiny_llama")


@pytest.fixture
def tiny_model(tiny_model_cfg):
    """(model, tokenizer): a 2-layer random Llama (fp32) with a character tokenizer."""
    from astra_repro.models import load_model

    torch.manual_seed(0)
    return load_model(tiny_model_cfg)


@pytest.fixture(scope="session")
def one_process_run(tmp_path_factory):
    """The one-process run that the multi-process tests (DDP, ZeRO-2/3) compare with: tests/test_ddp.py's COMMON
    overrides and a method, trained once per test run, in this process through the entry function
    (tests/entry_points.py), with the launches' one thread. Returns the output root holding it."""
    from entry_points import run_in_process
    from test_ddp import COMMON

    root = tmp_path_factory.mktemp("one_process")
    done: dict[str, object] = {}

    def get(method: str):
        if method not in done:
            out = root / method
            outcome = run_in_process("astra_repro.train", [*COMMON, f"method={method}", f"output_root={out}"], root,
                                     None, OMP_NUM_THREADS="1")
            assert outcome.returncode == 0, f"the one-process {method} run failed"
            done[method] = out
        return done[method]

    return get
