"""Effective rank (paper Eq. 9) and `python -m astra_repro.analysis effective-rank` on a tiny finished run."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from astra_repro.models import model_config
from astra_repro import analysis, runs
from astra_repro.calibration.statistics import LayerStatistics, effective_rank
from astra_repro.errors import ConfigError
from astra_repro.paths import PROJECT_ROOT
from helpers import tiny_cfg
from run_fixtures import write_run

TYPES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def covariance_with_spectrum(eigvals: list[float], seed: int = 0) -> torch.Tensor:
    """Q diag(eigvals) Qᵀ with a random orthogonal Q: a covariance whose eigenvalues are known."""
    generator = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigvals), len(eigvals), generator=generator, dtype=torch.float64))
    return Q @ torch.diag(torch.tensor(eigvals, dtype=torch.float64)) @ Q.T


# ------------------------------------------------------------------------------------------------- Eq. 9
@pytest.mark.parametrize("k,d", [(1, 8), (5, 16), (16, 16)])
def test_k_equal_eigenvalues_have_effective_rank_k(k, d):
    C = covariance_with_spectrum([3.0] * k + [0.0] * (d - k))
    assert analysis.effective_rank_of_covariance(C) == pytest.approx(k, rel=1e-5)
    assert effective_rank(torch.tensor([3.0] * k + [0.0] * (d - k))) == pytest.approx(k, rel=1e-5)


def test_unequal_eigenvalues_give_exp_of_the_entropy():
    eigvals = [4.0, 2.0, 1.0, 1.0, 0.0]
    p = [v / 8.0 for v in eigvals if v]
    expected = math.exp(-sum(x * math.log(x) for x in p))  # 3.36..., between 1 and the 4 non-zero directions
    assert analysis.effective_rank_of_covariance(covariance_with_spectrum(eigvals)) == pytest.approx(expected, rel=1e-5)
    # scale-free, and rounding noise below zero does not count
    assert analysis.effective_rank_of_eigenvalues([400.0, 200.0, 100.0, 100.0, -1e-9]) == pytest.approx(expected, rel=1e-5)


def test_input_side_statistics_give_the_output_covariance_rank():
    """The fast path keeps M (input side) for layers with more outputs than inputs: the output covariance is
    W M Wᵀ, so its effective rank must be the one computed from that matrix directly, not from M."""
    generator = torch.Generator().manual_seed(1)
    d_in, d_out = 6, 20
    X = torch.randn(200, d_in, generator=generator) * torch.tensor([5.0, 3.0, 1.0, 1.0, 0.5, 0.1])
    M = X.T @ X / 200
    W = torch.randn(d_out, d_in, generator=generator)
    via_input = LayerStatistics("output_via_input", M, n_samples=200, n_rows=200)
    direct = LayerStatistics("output", W.double() @ M.double() @ W.double().T, n_samples=200, n_rows=200)
    expected = analysis.effective_rank_of_covariance(W.double() @ M.double() @ W.double().T)
    assert analysis.layer_effective_rank(via_input, W) == pytest.approx(expected, rel=1e-3)
    assert analysis.layer_effective_rank(direct, W) == pytest.approx(expected, rel=1e-3)
    assert expected != pytest.approx(analysis.effective_rank_of_covariance(M), rel=1e-2)
    # orthonormal columns and M = I: k equal eigenvalues of the output covariance -> k
    Q, _ = torch.linalg.qr(torch.randn(d_out, d_in, generator=generator))
    identity = LayerStatistics("output_via_input", torch.eye(d_in), n_samples=1, n_rows=50)
    assert analysis.layer_effective_rank(identity, Q) == pytest.approx(d_in, rel=1e-4)


# ------------------------------------------------------------------------------------------------- the command
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A finished tiny LoRA run (train + merged export, no evaluation)."""
    from astra_repro.train import run

    root = tmp_path_factory.mktemp("effective_rank")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ASTRA_CACHE", str(root / "cache"))
        run_dir = run(tiny_cfg("method=lora", "rank=4", "skip_eval=true", f"output_root={root / 'runs'}"))
    return run_dir


def tiny_out_dims() -> dict[str, int]:


    m = model_config("tiny_llama")
    head = m.hidden_size // m.num_heads
    per_layer = {"q_proj": m.hidden_size, "k_proj": m.num_kv_heads * head, "v_proj": m.num_kv_heads * head,
                 "o_proj": m.hidden_size, "gate_proj": m.intermediate_size, "up_proj": m.intermediate_size,
                 "down_proj": m.hidden_size}
    return {t: d * m.num_layers for t, d in per_layer.items()}


def test_effective_rank_command_end_to_end(tiny_run, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "cache"))
    analysis.main(["effective-rank", str(tiny_run), "--samples", "4", "--seq-len", "32", "--device", "cpu"])
    result_file = tiny_run / "analysis" / "effective_rank.json"
    assert f"wrote {result_file}" in capsys.readouterr().out
    result = json.loads(result_file.read_text())
    assert result["samples"] == 4 and result["seq_len"] == 32 and result["method"] == "lora"
    assert result["merged_weights"] == str(tiny_run / "export" / "merged")
    bound = tiny_out_dims()
    for side in ("base", "merged"):
        assert sorted(result[side]) == sorted(TYPES)
        for layer_type, total in result[side].items():
            assert 0 < total <= bound[layer_type], (side, layer_type, total)
            assert total == pytest.approx(sum(v for k, v in result["per_layer"][side].items() if k.endswith(layer_type)))
        assert len(result["per_layer"][side]) == 14  # 7 types x 2 layers
    assert {t: d["max_total"] for t, d in result["dims"].items()} == bound
    # the merged model is the trained one, not the base again
    assert any(result["per_layer"]["merged"][k] != v for k, v in result["per_layer"]["base"].items())

    # a finished analysis is kept unless --force; computed again, the base (and merged) values are identical
    assert analysis.analyse_runs([tiny_run], samples=4, seq_len=32, device="cpu") == []
    monkeypatch.setenv("ASTRA_CACHE", str(tmp_path / "other_cache"))
    assert analysis.analyse_runs([tiny_run], samples=4, seq_len=32, device="cpu", force=True) == [result_file]
    again = json.loads(result_file.read_text())
    assert again["base"] == result["base"] and again["per_layer"] == result["per_layer"]

    # and Figure 3 reads it
    from astra_repro.report import figures

    made = figures.figure3(runs.load_records(tiny_run.parent.parent), figures.FigureSet())
    assert [item.key for item in made] == ["fig3_math_tiny_llama"]
    bars = {c.get_label(): [p.get_height() for p in c.patches] for c in made[0].figure.axes[0].containers}
    assert bars["base (before fine-tuning)"] == [result["base"][t] for t in TYPES]
    assert bars["lora (fine-tuned)"] == [result["merged"][t] for t in TYPES]
    saved = figures.save(made[0], tmp_path / "figures")
    assert saved.png.endswith("fig3_math_tiny_llama.png") and os.path.getsize(saved.pdf) > 0


def test_folders_that_are_not_finished_runs_with_an_export_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        analysis.check_run(tmp_path / "missing")
    (tmp_path / "started").mkdir()
    (tmp_path / "started" / "FAILED").write_text("RuntimeError: out of memory\n")
    with pytest.raises(ConfigError, match="not a finished run.*out of memory"):
        analysis.check_run(tmp_path / "started")
    no_export = write_run(tmp_path / "runs", "math", "llama2_7b", "lora", 8, 1, {"gsm8k": 40.0})
    with pytest.raises(ConfigError, match="no merged export"):
        analysis.check_run(no_export)
    base = write_run(tmp_path / "runs", "math", "llama2_7b", "base", 0, 1, {"gsm8k": 10.0})
    with pytest.raises(ConfigError, match="base-model run"):
        analysis.check_run(base)


def test_cli_error_for_a_non_run_folder_is_one_line_exit_2():
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "astra_repro.analysis", "effective-rank", "/nonexistent"],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: /nonexistent"), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
