"""The calibration stage: reference semantics (per-sample signed-absmax normalisation, division by samples),
batch-size independence, padding masks, centring, the disk cache and its key."""

import dataclasses
import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from astra_repro.calibration import (
    CalibrationSpec,
    CovarianceAccumulator,
    calibration_cache_key,
    collect_covariances,
    effective_rank,
    eigen_decompose,
    load_wikitext2_lines,
)
from astra_repro.calibration.data import build_samples, iterate_batches
from astra_repro.errors import ConfigError

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def make_records(n=24):
    # Varied lengths: some shorter than seq_len (so pads exist), some truncated.
    return [{"instruction": f"Q{i}: what is {i} + {2 * i}? " * (1 + i % 3), "output": f"A: {3 * i}."} for i in range(n)]


def make_spec(**overrides):
    values = dict(n_samples=8, seq_len=48, batch_size=1)
    values.update(overrides)
    return CalibrationSpec(**values)


def test_reference_defaults():
    spec = CalibrationSpec()
    assert (spec.seq_len, spec.batch_size, spec.seed, spec.prompt, spec.padding) == (512, 1, 42, "reference", "max_length")
    assert spec.include_padding and not spec.center
    assert (spec.normalize, spec.accumulate_dtype, spec.where) == ("absmax", "model", "output")


def test_from_config_method_options_override_stage_defaults():
    stage = OmegaConf.create(dict(source="task", n_samples=16, seq_len=64, batch_size=1, seed=42, padding="max_length",
                                  path=None, center=False, include_padding=True, prompt="reference"))
    options = OmegaConf.create(dict(center=True, include_padding=None, calibration_prompt="training", unrelated=3))
    spec = CalibrationSpec.from_config(stage, options, where="input")
    assert spec.center is True  # method option wins
    assert spec.include_padding is True  # null option keeps the stage value
    assert spec.prompt == "training"
    assert spec.where == "input" and spec.n_samples == 16 and spec.seq_len == 64
    assert CalibrationSpec.from_config(stage, OmegaConf.create({})).center is False  # missing keys are fine


@pytest.mark.parametrize(
    "bad", [dict(normalize="max"), dict(accumulate_dtype="fp16"), dict(where="middle"), dict(seq_len={"demo": 128}), dict(source="c4")]
)
def test_from_config_rejects_bad_values(bad):
    stage = dict(source="task", n_samples=8, seq_len=32)
    stage.update(bad)
    with pytest.raises(ConfigError):
        CalibrationSpec.from_config(stage, {})


def test_task_samples_are_padded_with_eos_and_lose_the_last_position(tiny_model):
    _, tokenizer = tiny_model
    records = make_records()
    samples = build_samples(tokenizer, records, make_spec())
    assert len(samples) == 8
    assert all(len(ids) == 47 for ids in samples.input_ids)  # seq_len - 1 positions, like the reference
    assert samples.padding_side == "right"
    # Sampling = random.Random(42).sample over the whole list (the reference's random.seed(42); random.sample).
    import random

    first = random.Random(42).sample(range(len(records)), 8)[0]
    text = records[first]["instruction"] + "\n### Response:" + records[first]["output"]
    expected = tokenizer(text, truncation=True, max_length=48)["input_ids"]
    n = min(len(expected), 47)
    assert samples.input_ids[0][:n] == expected[:n]
    assert all(t == tokenizer.eos_token_id for t in samples.input_ids[0][n:])
    assert sum(samples.attention_mask[0]) == n
    assert any(0 in mask for mask in samples.attention_mask), "the fixture must produce padded samples"
    assert all(all(row) for row in samples.row_mask)  # include_padding=True: pads are rows of the statistics
    masked = build_samples(tokenizer, records, make_spec(include_padding=False))
    assert masked.row_mask == masked.attention_mask


def test_matches_a_hand_computed_reference_covariance(tiny_model):
    """Batch 1: C = mean over samples of (Y_i/|max Y_i|)ᵀ(Y_i/|max Y_i|), pads included, Y = output[0]."""
    model, tokenizer = tiny_model
    spec = make_spec(n_samples=3)
    name = "model.layers.1.self_attn.q_proj"
    covariances = collect_covariances(model, tokenizer, make_records(), spec, TARGETS, {"model": "tiny"})
    captured = []
    handle = model.get_submodule(name).register_forward_hook(lambda m, i, o: captured.append(o[0].detach().clone()))
    samples = build_samples(tokenizer, make_records(), spec)
    with torch.no_grad():
        for input_ids, attention_mask, _ in iterate_batches(samples, 1, tokenizer.eos_token_id):
            model(input_ids=input_ids, attention_mask=attention_mask)
    handle.remove()
    expected = sum((Y / Y.max().abs()).T @ (Y / Y.max().abs()) for Y in captured) / len(captured)
    assert covariances[name].dtype == torch.float32 and covariances[name].device.type == "cpu"
    torch.testing.assert_close(covariances[name], expected, rtol=1e-5, atol=1e-5)
    assert set(covariances) == {n for n, m in model.named_modules() if n.rsplit(".", 1)[-1] in TARGETS}
    assert covariances["model.layers.0.mlp.up_proj"].shape == (128, 128)


def test_absmax_uses_the_signed_max_then_abs():
    Y = torch.tensor([[-10.0, 1.0], [2.0, 3.0]])  # max(abs) = 10 but the reference divides by abs(max) = 3
    acc = CovarianceAccumulator(2, torch.float32, "cpu", normalize="absmax", center=False)
    acc.update(Y.unsqueeze(0), torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(acc.result(), (Y / 3).T @ (Y / 3))
    assert not torch.allclose(acc.result(), (Y / 10).T @ (Y / 10))


def test_center_matches_a_hand_computed_centred_covariance():
    Y1 = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.5, 4.0]])
    Y2 = torch.tensor([[-2.0, 1.0], [6.0, 0.0], [9.0, 9.0]])
    mask = torch.tensor([[True, True, True], [True, True, False]])  # the last row of sample 2 is a pad
    acc = CovarianceAccumulator(2, torch.float32, "cpu", normalize="absmax", center=True)
    acc.update(torch.stack([Y1, Y2]), mask)
    rows = torch.cat([Y1 / 4.0, Y2[:2] / 6.0])  # per-sample signed max over the counted rows: 4 and 6
    mu = rows.mean(dim=0)
    expected = (rows - mu).T @ (rows - mu) / 2  # divided by samples, like the uncentred reference
    torch.testing.assert_close(acc.result(), expected)
    plain = CovarianceAccumulator(2, torch.float32, "cpu", normalize="absmax", center=False)
    plain.update(torch.stack([Y1, Y2]), mask)
    torch.testing.assert_close(plain.result(), rows.T @ rows / 2)


@pytest.mark.parametrize("include_padding", [True, False])
def test_batched_equals_per_sample(tiny_model, include_padding):
    model, tokenizer = tiny_model
    one = collect_covariances(model, tokenizer, make_records(), make_spec(include_padding=include_padding), TARGETS, {})
    four = collect_covariances(
        model, tokenizer, make_records(), make_spec(batch_size=4, include_padding=include_padding), TARGETS, {}
    )
    for name in one:
        torch.testing.assert_close(four[name], one[name], rtol=1e-5, atol=1e-4)


def test_include_padding_changes_the_result_when_pads_exist(tiny_model):
    model, tokenizer = tiny_model
    with_pads = collect_covariances(model, tokenizer, make_records(), make_spec(), TARGETS, {})
    without = collect_covariances(model, tokenizer, make_records(), make_spec(include_padding=False), TARGETS, {})
    # Layer 1: in the tiny model the pad (EOS = padding_idx) embedding is zero, so layer-0 q/k/v see zero pad rows.
    name = "model.layers.1.self_attn.v_proj"
    assert not torch.allclose(with_pads[name], without[name], rtol=1e-3)


def test_center_changes_the_result_and_stays_psd(tiny_model):
    model, tokenizer = tiny_model
    plain = collect_covariances(model, tokenizer, make_records(), make_spec(), TARGETS, {})
    centred = collect_covariances(model, tokenizer, make_records(), make_spec(center=True), TARGETS, {})
    name = "model.layers.0.mlp.down_proj"
    assert not torch.allclose(plain[name], centred[name], rtol=1e-3)
    eigvals = torch.linalg.eigvalsh(centred[name].double())
    assert eigvals.min() > -1e-4 * eigvals.max()
    assert torch.trace(centred[name]) < torch.trace(plain[name])  # removing the mean removes energy


def test_accumulate_in_the_model_dtype(tiny_model):
    model, tokenizer = tiny_model
    model.to(torch.bfloat16)
    in_bf16 = collect_covariances(model, tokenizer, make_records(), make_spec(), TARGETS, {})
    in_fp32 = collect_covariances(model, tokenizer, make_records(), make_spec(accumulate_dtype="float32"), TARGETS, {})
    name = "model.layers.1.mlp.gate_proj"
    assert in_bf16[name].dtype == torch.float32 and in_fp32[name].dtype == torch.float32
    assert not torch.equal(in_bf16[name], in_fp32[name])  # bf16 rounding (D5)
    torch.testing.assert_close(in_bf16[name], in_fp32[name], rtol=5e-2, atol=5e-2 * float(in_fp32[name].abs().max()))


def test_input_hook_gives_input_dimension(tiny_model):
    model, tokenizer = tiny_model
    covariances = collect_covariances(model, tokenizer, make_records(), make_spec(where="input"), ["down_proj"], {})
    assert covariances["model.layers.0.mlp.down_proj"].shape == (128, 128)  # in_features of down_proj


# ---------------------------------------------------------------------------------------------------------- cache

SPEC_ALTERNATIVES = dict(
    source="wikitext2", n_samples=9, seq_len=33, batch_size=2, seed=7, prompt="training", padding="none",
    include_padding=False, normalize="none", center=True, accumulate_dtype="float32", where="input",
    padding_side="left", path="/nonexistent/wiki.txt", seq2seq_forward="source_only", algorithm="direct",
)


def test_cache_key_changes_when_any_input_changes():
    spec = make_spec()
    targets = ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.up_proj"]
    identity = {"model": "tiny_llama", "task": "math", "data": "abc123", "dtype": "float32"}
    base = calibration_cache_key(spec, targets, identity, 100)
    assert base == calibration_cache_key(spec, list(reversed(targets)), dict(reversed(identity.items())), 100)
    assert set(SPEC_ALTERNATIVES) == {f.name for f in dataclasses.fields(CalibrationSpec)}, "a new spec field needs a case here"
    keys = {base}
    for field, value in SPEC_ALTERNATIVES.items():
        keys.add(calibration_cache_key(dataclasses.replace(spec, **{field: value}), targets, identity, 100))
    for key in identity:
        keys.add(calibration_cache_key(spec, targets, {**identity, key: "other"}, 100))
    keys.add(calibration_cache_key(spec, targets[:1], identity, 100))
    keys.add(calibration_cache_key(spec, targets, identity, 101))
    keys.add(calibration_cache_key(spec, targets, identity, 100, extra={"samples_sha256": "x"}))
    expected = 1 + len(SPEC_ALTERNATIVES) + len(identity) + 3
    assert len(keys) == expected


def test_cache_key_follows_the_wikitext_file_content(tmp_path):
    file = tmp_path / "wiki.txt"
    file.write_text("a line\n")
    spec = make_spec(source="wikitext2", path=str(file))
    before = calibration_cache_key(spec, ["x"], {}, 1)
    file.write_text("another line\n")
    assert calibration_cache_key(spec, ["x"], {}, 1) != before


def test_second_call_loads_the_cache(tiny_model, monkeypatch, caplog, tmp_path):
    model, tokenizer = tiny_model
    identity = {"model": "tiny", "task": "math"}
    first = collect_covariances(model, tokenizer, make_records(), make_spec(), TARGETS, identity)
    assert len(list((tmp_path / "cache" / "calibration").glob("*.pt"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("the model must not run when the cache holds the result")

    monkeypatch.setattr(model, "forward", fail)
    with caplog.at_level("INFO", logger="astra_repro.calibration"):
        second = collect_covariances(model, tokenizer, make_records(), make_spec(), TARGETS, identity)
    assert "loaded cached statistics" in caplog.text
    for name in first:
        assert torch.equal(first[name], second[name])
    # D9: another task (or more records) never shares the calibration.
    with pytest.raises(AssertionError, match="must not run"):
        collect_covariances(model, tokenizer, make_records(), make_spec(), TARGETS, {**identity, "task": "code"})
    with pytest.raises(AssertionError, match="must not run"):
        collect_covariances(model, tokenizer, make_records(25), make_spec(), TARGETS, identity)


# ------------------------------------------------------------------------------------------------------ wikitext2


def test_wikitext2_blocks(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    file = tmp_path / "wiki.train.raw"
    file.write_text("".join(f" = Heading {i} = \r\n \r\n Some text about item {i} , with words .\r\n" for i in range(30)))
    lines = load_wikitext2_lines(str(file))
    assert lines[0] == " = Heading 0 = \n" and lines[1] == ""  # HF-style rows
    spec = make_spec(source="wikitext2", path=str(file), n_samples=20, seq_len=32, padding="none")
    samples = build_samples(tokenizer, [], spec)
    import random

    chosen = [lines[i] for i in random.Random(42).sample(range(len(lines)), 20)]
    n_tokens = len(tokenizer("\n\n".join(chosen))["input_ids"])
    assert len(samples) == n_tokens // 32 > 0
    assert all(len(block) == 31 for block in samples.input_ids) and samples.attention_mask is None
    covariances = collect_covariances(model, tokenizer, [], spec, ["q_proj"], {})
    assert set(covariances) == {"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj"}


def test_wikitext2_offline_without_a_file_names_the_fix():
    with pytest.raises(ConfigError, match=r"calibration\.path=/file"):
        load_wikitext2_lines(None)


def test_too_many_samples_is_a_config_error(tiny_model):
    _, tokenizer = tiny_model
    with pytest.raises(ConfigError, match=r"lower calibration\.n_samples"):
        build_samples(tokenizer, make_records(5), make_spec(n_samples=8))


# -------------------------------------------------------------------------------------------- eigen / eff. rank


def test_eigen_decompose_is_ascending_and_exact():
    torch.manual_seed(0)
    X = torch.randn(50, 6)
    C = X.T @ X
    eigvals, eigvecs = eigen_decompose(C)
    assert torch.all(eigvals[1:] >= eigvals[:-1])
    np.testing.assert_allclose(eigvals.numpy(), np.linalg.eigvalsh(C.double().numpy()), rtol=1e-5)
    torch.testing.assert_close(eigvecs @ torch.diag(eigvals) @ eigvecs.T, C, rtol=1e-4, atol=1e-4)


def test_effective_rank():
    assert effective_rank(torch.ones(10)) == pytest.approx(10.0, rel=1e-5)
    assert effective_rank(torch.tensor([1.0, 0.0, 0.0])) == pytest.approx(1.0, rel=1e-5)
    p = torch.tensor([0.5, 0.25, 0.25])
    assert effective_rank(p * 4) == pytest.approx(math.exp(-(p * torch.log(p + 1e-8)).sum().item()), rel=1e-6)
