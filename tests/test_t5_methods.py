"""Encoder-decoder (T5) support: the paper's T5-base parameter counts (Table 1 #Params), every Table 1 method's init
on the tiny random T5 (encoder, decoder self-attention, cross-attention and MLP layers), and seq2seq calibration.

GLUE-style records: x = "{instruction}{sentence}\\nresult: " (the encoder input), y = the label word (the target).
"""

from __future__ import annotations

import copy
import random

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from test_baselines import reference_corda, subspace_distance

from astra_repro.methods.astra import astra_options
from astra_repro.calibration import CalibrationSpec, collect_covariances
from astra_repro.calibration.data import build_samples, iterate_model_batches
from astra_repro.errors import ConfigError
from astra_repro.methods import get_method
from astra_repro.methods.base import HyperParams, InitContext, lora_layers
from astra_repro.models import activation_stream, load_model, model_config
from astra_repro.paths import CONFIG_DIR

TARGETS = ["q", "k", "v", "o", "wi", "wo"]
RANK, ALPHA = 4, 8
SENTENCES = [
    "a gripping, funny and warm film", "dull and far too long", "the cast is wonderful", "i want my two hours back",
    "an instant classic", "flat characters and a lazy plot", "beautifully shot, deeply moving", "a total mess",
    "smart, sharp and surprising", "nothing works here", "one of the best of the year", "boring from start to end",
]
RECORDS = [
    {"instruction": f"classify the sentiment of the text: {s}\nresult: ", "output": "positive" if i % 2 == 0 else "negative"}
    for i, s in enumerate(SENTENCES)
]
CALIBRATION = dict(source="task", n_samples=12, seq_len=64, batch_size=1, seed=42, padding="max_length", path=None,
                   seq2seq_forward="teacher_forced")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run ~30x faster on one thread than on two contended ones."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def t5_cfg():
    return model_config("tiny_t5")


def features(tokenizer, records=RECORDS):
    out = []
    for rec in records:
        x = tokenizer(rec["instruction"])
        out.append({"input_ids": x["input_ids"], "attention_mask": x["attention_mask"],
                    "labels": tokenizer(text_target=rec["output"])["input_ids"]})
    return out


def make_ctx(tokenizer, method: str, options: dict | None = None, use_rslora=False, use_dora=False, **calibration):
    from transformers import DataCollatorForSeq2Seq

    opts = OmegaConf.merge(OmegaConf.load(CONFIG_DIR / "method" / f"{method}.yaml"), OmegaConf.create(options or {}))
    return InitContext(
        hp=HyperParams(rank=RANK, alpha=ALPHA, dropout=0.0, target_modules=list(TARGETS), learning_rate=1e-4,
                       use_rslora=use_rslora, use_dora=use_dora),
        options=opts, tokenizer=tokenizer, seed=0, train_records=RECORDS, train_features=features(tokenizer),
        collate_fn=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
        calibration=OmegaConf.create({**CALIBRATION, **calibration}),
        cache_identity={"model": "tiny_t5", "task": "glue_test"},
    )


def probe(tokenizer):
    enc = tokenizer(["classify the sentiment of the text: great\nresult: ", "bad"], return_tensors="pt", padding=True)
    decoder = torch.tensor([[0, 20, 31, 1], [0, 40, 41, 42]])
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "decoder_input_ids": decoder}


def logits(model, batch):
    model.eval()
    with torch.no_grad():
        return model(**batch).logits


def target_linears(model) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach().clone() for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and n.rsplit(".", 1)[-1] in TARGETS}


def assert_covers_encoder_decoder_and_cross_attention(names):
    names = set(names)
    assert len(names) == 2 * 6 + 2 * 10  # encoder: q k v o wi wo; decoder: self q k v o, cross q k v o, wi wo
    for block in ("encoder.block.0.layer.0.SelfAttention", "decoder.block.1.layer.0.SelfAttention",
                  "decoder.block.0.layer.1.EncDecAttention", "decoder.block.1.layer.1.EncDecAttention"):
        assert {f"{block}.{t}" for t in ("q", "k", "v", "o")} <= names, block
    assert {"encoder.block.1.layer.1.DenseReluDense.wi", "decoder.block.1.layer.2.DenseReluDense.wo"} <= names


# ------------------------------------------------------------------------------------------- models and counts


def t5_base_shape():
    """t5-base's config.json (transformers' T5Config() defaults are t5-small's)."""
    from transformers import T5Config

    return T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_decoder_layers=12,
                    num_heads=12, feed_forward_proj="relu", tie_word_embeddings=True)


@pytest.mark.parametrize(
    "method, use_rslora, use_dora, trainable",
    [("lora", False, False, 3_244_032), ("rslora", True, False, 3_244_032), ("dora", False, True, 3_446_784),
     ("fft", False, False, 222_903_552)],
)
def test_t5_base_trainable_parameters_match_the_paper(method, use_rslora, use_dora, trainable):
    """Table 1 #Params: LoRA 3.2M, DoRA 3.4M (+202,752 magnitudes), FFT 223M, for r=8 on q,k,v,o,wi,wo of t5-base."""
    from transformers import T5ForConditionalGeneration

    with torch.device("meta"):  # t5-base's shapes without allocating 223M parameters
        model = T5ForConditionalGeneration(t5_base_shape())
    assert sum(p.numel() for p in model.parameters()) == 222_903_552
    cfg = model_config("t5_base")
    ctx = InitContext(
        hp=HyperParams(rank=8, alpha=16, dropout=0.0, target_modules=list(cfg.target_modules), learning_rate=1e-4,
                       use_rslora=use_rslora, use_dora=use_dora),
        options=OmegaConf.load(CONFIG_DIR / "method" / f"{method}.yaml"), tokenizer=None, seed=0,
    )
    wrapped = get_method(method).initialize(model, ctx)
    assert sum(p.numel() for p in wrapped.parameters() if p.requires_grad) == trainable
    if method != "fft":
        assert type(wrapped).__name__ == "PeftModelForSeq2SeqLM"
        assert len(lora_layers(wrapped)) == 12 * 6 + 12 * 10


def test_model_configs_and_tiny_t5(t5_cfg):
    base = model_config("t5_base")
    assert (base.kind, base.hub_id, base.dtype) == ("seq2seq", "t5-base", "float32")
    assert list(base.target_modules) == TARGETS == list(t5_cfg.target_modules)
    model, tokenizer = load_model(t5_cfg)
    assert type(model).__name__ == "T5ForConditionalGeneration" and model.config.is_encoder_decoder
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, model.config.decoder_start_token_id) == (0, 1, 0)
    ids = tokenizer("ab")["input_ids"]
    assert len(ids) == 3 and ids[-1] == tokenizer.eos_token_id  # EOS appended, no BOS, as T5's tokenizer
    assert tokenizer.decode(ids, skip_special_tokens=True) == "ab"
    loss = model(**tokenizer(["x y"], return_tensors="pt"), labels=tokenizer(text_target=["positive"], return_tensors="pt")["input_ids"]).loss
    assert torch.isfinite(loss)
    again, _ = load_model(t5_cfg)  # weights depend on weights_seed only
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_t5_base_offline_names_the_fix():
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache("t5-base", "config.json"), str):
        pytest.skip("t5-base is in the local HF cache")
    with pytest.raises(ConfigError, match="model.path=/local/dir"):
        load_model(model_config("t5_base"))


def test_activation_streams(t5_cfg):
    model, _ = load_model(t5_cfg)
    assert activation_stream(model, "encoder.block.0.layer.0.SelfAttention.q") == "source"
    assert activation_stream(model, "encoder.block.1.layer.1.DenseReluDense.wo") == "source"
    assert activation_stream(model, "decoder.block.0.layer.1.EncDecAttention.k") == "source"  # reads encoder output
    assert activation_stream(model, "decoder.block.0.layer.1.EncDecAttention.v") == "source"
    assert activation_stream(model, "decoder.block.0.layer.1.EncDecAttention.q") == "target"
    assert activation_stream(model, "decoder.block.0.layer.1.EncDecAttention.o") == "target"
    assert activation_stream(model, "decoder.block.1.layer.0.SelfAttention.k") == "target"
    assert activation_stream(model, "decoder.block.1.layer.2.DenseReluDense.wi") == "target"


# ------------------------------------------------------------------------------------------- methods on tiny_t5


@pytest.mark.parametrize("method, use_rslora, use_dora", [("lora", False, False), ("rslora", True, False), ("dora", False, True)])
def test_lora_variants_keep_outputs_on_encoder_and_decoder(t5_cfg, method, use_rslora, use_dora):
    model, tokenizer = load_model(t5_cfg)
    batch = probe(tokenizer)
    ref = logits(copy.deepcopy(model), batch)
    peft_model = get_method(method).initialize(model, make_ctx(tokenizer, method, use_rslora=use_rslora, use_dora=use_dora))
    assert peft_model.peft_config["default"].task_type == "SEQ_2_SEQ_LM"
    torch.testing.assert_close(logits(peft_model, batch), ref, rtol=0, atol=1e-6)
    layers = lora_layers(peft_model)
    assert_covers_encoder_decoder_and_cross_attention(layers)
    for layer in layers.values():
        assert layer.scaling["default"] == pytest.approx(ALPHA / (RANK ** 0.5 if use_rslora else RANK))
        assert bool(layer.use_dora["default"]) == use_dora
        assert not layer.lora_B["default"].weight.any()  # B = 0: the adapter starts as a no-op


def check_pissa_exact(layers, before, **_):
    for name, layer in layers.items():
        U, S, Vh = torch.linalg.svd(before[name].double(), full_matrices=False)
        A, B = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
        assert subspace_distance(B, U[:, :RANK]) < 1e-4, name
        assert subspace_distance(A.T, Vh[:RANK].T) < 1e-4, name


def check_milora(layers, before, **_):
    for name, layer in layers.items():
        U, S, Vh = torch.linalg.svd(before[name].double(), full_matrices=False)
        B = layer.lora_B["default"].weight.detach()
        assert subspace_distance(B, U[:, -RANK:]) < 1e-3, name
        assert subspace_distance(B, U[:, :RANK]) > 0.99, name


def check_corda(mode):
    def check(layers, before, original, ctx, tokenizer):
        spec = CalibrationSpec.from_config(ctx.calibration, ctx.options, where="input")
        covariances = collect_covariances(original, tokenizer, RECORDS, spec, TARGETS, ctx.cache_identity)  # the init's cache
        for name, layer in layers.items():
            U_r, S_r, V_r = reference_corda(before[name], covariances[name], RANK, mode)
            A, B, s = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach(), layer.scaling["default"]
            target = U_r @ torch.diag(S_r) @ V_r.T
            err = torch.linalg.matrix_norm(s * (B.double() @ A.double()) - target) / torch.linalg.matrix_norm(target)
            # KPM's bottom triplets of a damped, nearly singular C (decoder rows come from two label words) are
            # fp32-vs-float64 sensitive: a looser bound; a wrong subspace would be off by O(1).
            assert err < (5e-3 if mode == "ipm" else 2e-2), (name, float(err))

    return check


def check_loraga(layers, before, original, ctx, **_):
    """ArB2r against an independent full-model gradient: mean over the first 8 examples at batch 1 (teacher-forced loss)."""
    model = copy.deepcopy(original).train()
    grads = {}
    for feature in ctx.train_features[:8]:
        model.zero_grad()
        model(**ctx.collate_fn([feature])).loss.backward()
        for name in layers:
            grads[name] = grads.get(name, 0) + model.get_submodule(name).weight.grad.detach().double() / 8
    for name, layer in layers.items():
        U, S, Vh = torch.linalg.svd(grads[name], full_matrices=False)
        A, B = layer.lora_A["default"].weight.detach().double(), layer.lora_B["default"].weight.detach().double()
        assert subspace_distance(B, U[:, RANK:2 * RANK]) < 0.05, name
        assert subspace_distance(A.T, Vh[:RANK].T) < 0.05, name


def check_astra(largest: bool):
    def check(layers, before, original, ctx, tokenizer):
        spec = CalibrationSpec.from_config(ctx.calibration, astra_options(ctx.options), where="output")
        covariances = collect_covariances(original, tokenizer, RECORDS, spec, TARGETS, ctx.cache_identity)
        for name, layer in layers.items():
            C = covariances[name].double()
            eigvals = np.linalg.eigvalsh(C.numpy())  # independent, ascending
            A, B = layer.lora_A["default"].weight.detach(), layer.lora_B["default"].weight.detach()
            torch.testing.assert_close(B.T @ B, torch.eye(RANK), rtol=0, atol=1e-5)  # B = V_r orthonormal
            torch.testing.assert_close(A, B.T @ before[name], rtol=0, atol=1e-5)  # A = V_rᵀ W
            energy = float(torch.trace(B.double().T @ C @ B.double()))
            expected = eigvals[-RANK:].sum() if largest else eigvals[:RANK].sum()
            assert energy == pytest.approx(expected, abs=1e-5 * eigvals[-1] * RANK), name

    return check


# case -> (method, options, use_rslora, subspace check). Astra "smallest" on a widening layer (wi: 64 -> 128) picks
# directions outside W's range, where VᵀW ~ 0: its adapter is legitimately ~zero there, so that check is skipped.
RESIDUAL_CASES = {
    "pissa": ("pissa", {}, False, None),
    "pissa_exact": ("pissa", {"svd": "exact"}, False, check_pissa_exact),
    "milora": ("milora", {}, False, check_milora),
    "corda_ipm": ("corda", {"mode": "ipm"}, False, check_corda("ipm")),
    "corda_kpm": ("corda", {"mode": "kpm"}, False, check_corda("kpm")),
    "loraga_original": ("loraga", {"flavour": "original"}, True, check_loraga),
    "loraga_peft": ("loraga", {"flavour": "peft"}, True, None),
    "astra": ("astra", {}, False, check_astra(largest=True)),
    "astra_smallest": ("astra", {"subspace": "smallest"}, False, check_astra(largest=False)),
}


@pytest.mark.parametrize("case", list(RESIDUAL_CASES))
def test_residual_inits_keep_outputs_and_pick_their_subspace(t5_cfg, case):
    method, options, use_rslora, check = RESIDUAL_CASES[case]
    model, tokenizer = load_model(t5_cfg)
    original = copy.deepcopy(model).eval()
    before = target_linears(model)
    batch = probe(tokenizer)
    ref = logits(original, batch)
    ctx = make_ctx(tokenizer, method, options, use_rslora=use_rslora)
    peft_model = get_method(method).initialize(model, ctx)
    assert get_method(method).residual_modifying
    assert peft_model.peft_config["default"].task_type == "SEQ_2_SEQ_LM"
    torch.testing.assert_close(logits(peft_model, batch), ref, rtol=1e-4, atol=2e-5)
    layers = lora_layers(peft_model)
    assert set(layers) == set(before)
    assert_covers_encoder_decoder_and_cross_attention(layers)
    for name, layer in layers.items():
        s = layer.scaling["default"]
        W_res = layer.get_base_layer().weight.detach()
        BA = layer.lora_B["default"].weight.detach() @ layer.lora_A["default"].weight.detach()
        W_norm = torch.linalg.matrix_norm(before[name])
        widening = before[name].shape[0] > before[name].shape[1]
        if not (case == "astra_smallest" and widening):
            assert torch.linalg.matrix_norm(s * BA) > 1e-3 * W_norm, f"{case}: {name} adapter is zero"
            assert torch.linalg.matrix_norm(W_res - before[name]) > 1e-3 * W_norm, f"{case}: {name} base weight not modified"
        torch.testing.assert_close(W_res + s * BA, before[name], atol=2e-5, rtol=1e-4)
    if check is not None:
        check(layers, before, original=original, ctx=ctx, tokenizer=tokenizer)


def test_fft_trains_every_parameter(t5_cfg):
    model, tokenizer = load_model(t5_cfg)
    for p in model.parameters():
        p.requires_grad_(False)
    out = get_method("fft").initialize(model, make_ctx(tokenizer, "fft"))
    assert out is model and all(p.requires_grad for p in model.parameters())


def test_saved_init_reloads_with_the_same_outputs(t5_cfg, tmp_path):
    """The runner's init files (residual base + initial adapter) for a T5: tied embeddings and the seq2seq PEFT class survive."""
    from peft import PeftModel
    from safetensors.torch import load_file

    from astra_repro import export

    model, tokenizer = load_model(t5_cfg)
    batch = probe(tokenizer)
    peft_model = get_method("astra").initialize(model, make_ctx(tokenizer, "astra"))
    export.save_initial_adapter(peft_model, tmp_path / "init", tokenizer=tokenizer)
    fresh, _ = load_model(t5_cfg)
    for shard in sorted((tmp_path / "init" / "base").glob("*.safetensors")):
        fresh.load_state_dict(load_file(str(shard)), strict=False)
    reloaded = PeftModel.from_pretrained(fresh, str(tmp_path / "init" / "adapter"), is_trainable=True)
    assert type(reloaded).__name__ == "PeftModelForSeq2SeqLM"
    torch.testing.assert_close(logits(reloaded, batch), logits(peft_model, batch), rtol=0, atol=1e-6)


# ------------------------------------------------------------------------------------------- calibration


def spec(**overrides):
    return CalibrationSpec(**{**{k: v for k, v in CALIBRATION.items() if k != "path"}, **overrides})


def test_teacher_forced_calibration_matches_a_hand_computed_covariance(t5_cfg):
    model, tokenizer = load_model(t5_cfg)
    covariances = collect_covariances(model, tokenizer, RECORDS, spec(), TARGETS, {"model": "tiny_t5"})
    assert_covers_encoder_decoder_and_cross_attention(covariances)
    for name, C in covariances.items():
        out_features = model.get_submodule(name).out_features
        assert C.shape == (out_features, out_features) and C.dtype == torch.float32 and torch.isfinite(C).all()
        assert torch.trace(C) > 0
    # Independent reference: x -> encoder, decoder input = [start] + y[:-1], batch 1, per-sample signed absmax.
    names = ["decoder.block.1.layer.0.SelfAttention.q",  # decoder positions
             "decoder.block.0.layer.1.EncDecAttention.k",  # encoder positions (cross-attention key)
             "encoder.block.1.layer.1.DenseReluDense.wo"]
    captured = {n: [] for n in names}
    handles = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: captured[n].append(o[0].clone())) for n in names]
    chosen = [RECORDS[i] for i in random.Random(42).sample(range(len(RECORDS)), CALIBRATION["n_samples"])]
    with torch.no_grad():
        for rec in chosen:
            x = tokenizer(rec["instruction"], truncation=True, max_length=CALIBRATION["seq_len"], return_tensors="pt")
            y = tokenizer(text_target=rec["output"], truncation=True, max_length=CALIBRATION["seq_len"])["input_ids"]
            model(**x, decoder_input_ids=torch.tensor([[0] + y[:-1]]))
            assert captured[names[0]][-1].shape[0] == len(y)
            assert captured[names[1]][-1].shape[0] == x["input_ids"].shape[1]
    for h in handles:
        h.remove()
    for n in names:
        expected = sum((Y / Y.max().abs()).T @ (Y / Y.max().abs()) for Y in captured[n]) / len(captured[n])
        torch.testing.assert_close(covariances[n], expected, rtol=1e-5, atol=1e-6)


def test_source_only_changes_decoder_statistics_only_and_batches_agree(t5_cfg):
    model, tokenizer = load_model(t5_cfg)
    forced = collect_covariances(model, tokenizer, RECORDS, spec(), TARGETS, {})
    source_only = collect_covariances(model, tokenizer, RECORDS, spec(seq2seq_forward="source_only"), TARGETS, {})
    batched = collect_covariances(model, tokenizer, RECORDS, spec(batch_size=4), TARGETS, {})  # pads in both streams
    batched_input = collect_covariances(model, tokenizer, RECORDS, spec(batch_size=4, where="input"), TARGETS, {})
    single_input = collect_covariances(model, tokenizer, RECORDS, spec(where="input"), TARGETS, {})
    for name in forced:
        if activation_stream(model, name) == "source":  # encoder layers and cross-attention k/v see only x
            torch.testing.assert_close(source_only[name], forced[name], rtol=1e-5, atol=1e-6)
        else:
            assert not torch.allclose(source_only[name], forced[name], rtol=1e-3), name
        torch.testing.assert_close(batched[name], forced[name], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(batched_input[name], single_input[name], rtol=1e-5, atol=1e-5)
    samples = build_samples(tokenizer, RECORDS, spec(seq2seq_forward="source_only"), decoder_start_token_id=0)
    assert samples.decoder_input_ids == [[0]] * CALIBRATION["n_samples"]


def test_seq2seq_samples_and_batches(t5_cfg):
    _, tokenizer = load_model(t5_cfg)
    samples = build_samples(tokenizer, RECORDS, spec(seq_len=16), decoder_start_token_id=0)
    first = RECORDS[random.Random(42).sample(range(len(RECORDS)), CALIBRATION["n_samples"])[0]]
    assert samples.input_ids[0] == tokenizer(first["instruction"], truncation=True, max_length=16)["input_ids"]
    assert len(samples.input_ids[0]) == 16 and samples.input_ids[0][-1] == tokenizer.eos_token_id  # truncated, EOS kept
    y = tokenizer(text_target=first["output"])["input_ids"]
    assert samples.decoder_input_ids[0] == [0] + y[:-1]
    inputs, masks = next(iterate_model_batches(samples, 2, tokenizer.pad_token_id))
    assert set(inputs) == {"input_ids", "attention_mask", "decoder_input_ids", "decoder_attention_mask"}
    assert set(masks) == {"source", "target"}
    assert masks["target"].shape == inputs["decoder_input_ids"].shape
    assert torch.equal(masks["target"], inputs["decoder_attention_mask"].bool())  # decoder pads never count


def test_wikitext2_on_seq2seq_needs_source_only(t5_cfg, tmp_path):
    _, tokenizer = load_model(t5_cfg)
    file = tmp_path / "wiki.raw"
    file.write_text("".join(f" = Heading {i} = \n Some text about item {i} , with words .\n" for i in range(30)))
    wiki = dict(source="wikitext2", path=str(file), n_samples=20, seq_len=32, padding="none")
    with pytest.raises(ConfigError, match="seq2seq_forward=source_only"):
        build_samples(tokenizer, [], CalibrationSpec(**wiki), decoder_start_token_id=0)
    samples = build_samples(tokenizer, [], CalibrationSpec(**wiki, seq2seq_forward="source_only"), decoder_start_token_id=0)
    assert len(samples) > 0 and samples.decoder_input_ids == [[0]] * len(samples)


def test_calibration_config_documents_the_seq2seq_option():
    for name, expected in (("task", "teacher_forced"), ("wikitext2", "source_only")):
        cfg = OmegaConf.load(CONFIG_DIR / "calibration" / f"{name}.yaml")
        assert cfg.seq2seq_forward == expected
    assert "OUR ASSUMPTION" in (CONFIG_DIR / "calibration" / "task.yaml").read_text()
    with pytest.raises(ConfigError, match="seq2seq_forward"):
        CalibrationSpec(seq2seq_forward="encoder")


TABLE1 = ["fft", "lora", "dora", "rslora", "pissa", "corda", "loraga", "astra", "milora"]


def test_t5_base_scale_gives_every_table1_method_its_glue_hyperparameters():
    """Table 7 / App. F.1: r = 8, alpha = 16, lr 1e-4 (DoRA 2e-4); FFT lr 1e-4. Calibration truncates at 128, with
    either calibration source."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for method in TABLE1:
            cfg = compose("config", overrides=["model=t5_base", "task=glue", f"method={method}"])
            expected = (0, 0) if method == "fft" else (8, 16)
            assert (cfg.rank, cfg.alpha) == expected, method
            assert cfg.lr == (2.0e-4 if method == "dora" else 1.0e-4), method
        for name in ("task", "wikitext2"):
            assert compose("config", overrides=["model=t5_base", "task=glue", f"calibration={name}"]).calibration.seq_len == 128
