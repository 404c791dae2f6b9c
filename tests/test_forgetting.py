"""The forgetting evaluator (evaluators/forgetting.py): PEFT's mean per-token CE after minus before, with "before"
measured on the untouched base model and cached. Fast: the tiny random Llama, a small text file in tmp."""

from __future__ import annotations

import copy

import pytest
import torch
from omegaconf import OmegaConf

from astra_repro.evaluators import EVALUATORS, EvalTarget, get_evaluator
from astra_repro.evaluators import forgetting
from astra_repro.evaluators.forgetting import mean_token_ce
from astra_repro.models import load_model, model_config
from astra_repro.paths import file_digest

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",  # the longest: truncated at max_length=20
    "Short one.",
    " = Robert Boulter = ",
]


def hand_ce(model, tokenizer, texts, max_length):
    """Each text alone (no padding): CE of token t+1 given the logits at t, summed over all tokens of all texts and
    divided by their number (PEFT's token weighting); also the mean of per-row means, which must differ."""
    total, count, row_means = 0.0, 0, []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
            logits = model(input_ids=ids).logits[0]
            losses = torch.nn.functional.cross_entropy(logits[:-1].float(), ids[0, 1:], reduction="none")
            total += losses.double().sum().item()
            count += losses.numel()
            row_means.append(losses.mean().item())
    return total / count, count, sum(row_means) / len(row_means)


@pytest.fixture
def tiny():
    model, tokenizer = load_model(model_config("tiny_llama"))
    return model, tokenizer


@pytest.fixture
def text_file(tmp_path):
    """CRLF lines with empty and blank ones between, as the shared WikiText-2 file (which has CRLF)."""
    path = tmp_path / "wiki.test.raw"
    lines = ["", *[t for text in TEXTS for t in (text, "   ")], "never read: past n"]
    path.write_bytes("\r\n".join(lines).encode())
    return path


def evaluator(path, n=3, max_length=20, batch_size=2):
    cfg = OmegaConf.create({"path": None if path is None else str(path), "base_model": model_config("tiny_llama"),
                            "n": n, "max_length": max_length, "batch_size": batch_size, "dtype": None})
    return get_evaluator("forgetting")(cfg, "demo")


def test_mean_token_ce_is_the_token_weighted_shifted_cross_entropy(tiny):
    model, tokenizer = tiny
    max_length = 20
    assert len(tokenizer(TEXTS[0])["input_ids"]) > max_length  # truncation happens
    expected, count, mean_of_row_means = hand_ce(model, tokenizer, TEXTS, max_length)
    ce, n_tokens = mean_token_ce(model, tokenizer, TEXTS, max_length=max_length, batch_size=3)  # one padded batch
    assert n_tokens == count == (max_length - 1) + (len(TEXTS[1]) - 1) + (len(TEXTS[2]) - 1)
    assert ce == pytest.approx(expected, rel=1e-5)
    assert abs(ce - mean_of_row_means) > 1e-3  # the weighting is really tested
    # the batch size (how much padding a row gets) does not change the result
    assert mean_token_ce(model, tokenizer, TEXTS, max_length, batch_size=1)[0] == pytest.approx(ce, rel=1e-5)


def test_rows_are_the_first_n_non_empty_lines(text_file):
    rows = forgetting.read_rows(text_file, 3)
    assert [text for _, text in rows] == [t + "\n" for t in TEXTS]
    assert [line for line, _ in rows] == [2, 4, 6]


def test_forgetting_of_the_base_against_itself_is_zero(tiny, text_file, capsys):
    model, tokenizer = tiny
    result = evaluator(text_file).evaluate(EvalTarget(model=model, tokenizer=tokenizer))
    bars = capsys.readouterr().err  # a progress bar per pass, each counting the rows
    assert "forgetting: trained model" in bars and "3/3" in bars
    assert result.metrics["forgetting"] == 0.0
    assert result.metrics["ce_after"] == result.metrics["ce_before"] > 0
    assert result.metrics["n_rows"] == 3
    assert result.info["sha256"] == file_digest(text_file)
    assert result.info["data_path"] == str(text_file.resolve())
    assert [p["row"] for p in result.predictions] == [0, 1, 2]
    assert sum(p["n_tokens"] for p in result.predictions) == result.metrics["n_tokens"]
    assert all(p["forgetting"] == 0.0 and p["ce_before"] == p["ce_after"] for p in result.predictions)
    assert result.info["declaration"]["item_id_field"] == "row"


def test_before_is_the_untouched_base_not_the_disabled_residual_adapter(tiny, text_file):
    from peft import LoraConfig, get_peft_model

    base, tokenizer = tiny
    texts = [t for _, t in forgetting.read_rows(text_file, 3)]
    ce_base, _ = mean_token_ce(base, tokenizer, texts, 20, 2)

    # PiSSA: the base weight becomes the residual W - B0 A0, the adapter holds B0 A0
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=8, lora_alpha=8, init_lora_weights="pissa",
                                                                 target_modules=["q_proj", "v_proj", "down_proj"]))
    with torch.no_grad():  # "training": move the adapter away from its init
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.add_(0.05 * torch.randn_like(param))
    with peft_model.disable_adapter():
        ce_disabled, _ = mean_token_ce(peft_model, tokenizer, texts, 20, 2)
    assert abs(ce_disabled - ce_base) > 1e-3  # the case tells the two apart

    trained = peft_model.merge_and_unload()
    ce_trained, _ = mean_token_ce(trained, tokenizer, texts, 20, 2)
    result = evaluator(text_file).evaluate(EvalTarget(model=trained, tokenizer=tokenizer))
    assert result.metrics["ce_before"] == pytest.approx(ce_base, rel=1e-6)
    assert result.metrics["ce_before"] != pytest.approx(ce_disabled, rel=1e-4)
    assert result.metrics["ce_after"] == pytest.approx(ce_trained, rel=1e-6)
    assert result.metrics["forgetting"] == pytest.approx(ce_trained - ce_base, rel=1e-5)


def test_before_is_computed_once_and_cached(tiny, text_file, monkeypatch):
    model, tokenizer = tiny
    loads, passes = [], []
    real_load, real_rows = forgetting.load_model, forgetting.row_token_losses
    monkeypatch.setattr(forgetting, "load_model", lambda *a, **k: loads.append(1) or real_load(*a, **k))
    monkeypatch.setattr(forgetting, "row_token_losses", lambda *a, **k: passes.append(1) or real_rows(*a, **k))

    first = evaluator(text_file).evaluate(EvalTarget(model=model, tokenizer=tokenizer))
    assert (len(loads), len(passes), first.info["before_cached"]) == (1, 2, False)
    second = evaluator(text_file, batch_size=3).evaluate(EvalTarget(model=model, tokenizer=tokenizer))
    assert (len(loads), len(passes), second.info["before_cached"]) == (1, 3, True)  # only "after" computed
    assert second.metrics["ce_before"] == first.metrics["ce_before"]
    assert second.info["before_cache"] == first.info["before_cache"]

    # another max_length (or file content) is another "before"
    third = evaluator(text_file, max_length=12).evaluate(EvalTarget(model=model, tokenizer=tokenizer))
    assert (len(loads), third.info["before_cached"]) == (2, False)
    text_file.write_bytes(text_file.read_bytes().replace(b"Short one.", b"Short two."))
    fourth = evaluator(text_file).evaluate(EvalTarget(model=model, tokenizer=tokenizer))
    assert (len(loads), fourth.info["before_cached"]) == (3, False)


@pytest.mark.parametrize("path", [None, "does/not/exist.raw"])
def test_no_text_file_is_skipped_with_a_message(tiny, path):
    model, tokenizer = tiny
    with pytest.warns(UserWarning, match="forgetting"):
        result = evaluator(path).evaluate(EvalTarget(model=model, tokenizer=tokenizer))
    assert result.metrics == {} and result.predictions == []
    assert "path" in result.info["skipped"]


def test_a_folder_with_one_file_names_it(tiny, text_file):
    model, tokenizer = tiny
    result = evaluator(text_file.parent).evaluate(EvalTarget(model=model, tokenizer=tokenizer))
    assert result.info["data_path"] == str(text_file.resolve())


def test_registered_with_a_version_and_declaration():
    cls = EVALUATORS.get("forgetting")
    declared = cls.declaration()
    assert cls.version and declared.primary_metric == "forgetting"
    assert declared.metric("forgetting").direction == "lower"
