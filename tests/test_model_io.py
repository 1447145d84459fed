"""Saving, loading, Auto* registration, strict checkpoints, config errors, dtypes,
gradient checkpointing and the parameter breakdown."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForCausalLM

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import CheckpointError, ConfigError, PluginError
from edgesmith.core.modeling import EdgeForCausalLM, EdgeModel

HYBRID = [{"op": "short_conv"}, {"op": "gqa"}, {"op": "swa", "window": 4}, {"op": "short_conv", "conv_length": 4}]


def make(tie: bool = True, **overrides) -> EdgeForCausalLM:
    torch.manual_seed(0)
    fields = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                  num_key_value_heads=2, layers=HYBRID, tie_word_embeddings=tie, eos_token_id=None)
    fields.update(overrides)
    return EdgeForCausalLM(EdgeConfig(**fields)).eval()


IDS = torch.randint(3, 64, (2, 7), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("tie", [True, False])
def test_save_and_load_round_trip_with_safetensors(tmp_path, tie):
    model = make(tie)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    saved = load_file(tmp_path / "model.safetensors")
    assert ("lm_head.weight" in saved) == (not tie)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "edgesmith"

    for loaded in (EdgeForCausalLM.from_pretrained(tmp_path), AutoModelForCausalLM.from_pretrained(tmp_path)):
        assert type(loaded) is EdgeForCausalLM
        assert loaded.config.layers == model.config.layers
        assert (loaded.lm_head.weight is loaded.model.embed_tokens.weight) == tie
        with torch.no_grad():
            assert torch.equal(loaded.eval()(IDS).logits, model(IDS).logits)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), EdgeConfig)


def test_auto_model_from_config_builds_edge_classes():
    config = make().config
    assert type(AutoModelForCausalLM.from_config(config)) is EdgeForCausalLM
    from transformers import AutoModel
    assert type(AutoModel.from_config(config)) is EdgeModel


def _rewrite_checkpoint(path, edit):
    tensors = load_file(path / "model.safetensors")
    edit(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.parametrize("edit, names", [
    (lambda t: t.pop("model.layers.1.operator.k_proj.weight"), ["missing", "model.layers.1.operator.k_proj.weight"]),
    (lambda t: t.update({"model.layers.0.operator.surplus": torch.zeros(3)}),
     ["unexpected", "model.layers.0.operator.surplus"]),
    (lambda t: t.update({"model.layers.3.operator.conv.weight": torch.zeros(32, 1, 3)}),
     ["wrong shape", "model.layers.3.operator.conv.weight", "(32, 1, 3)", "(32, 1, 4)"]),
])
def test_checkpoint_that_does_not_fit_names_the_tensors(tmp_path, edit, names):
    make(tie=False).save_pretrained(tmp_path)
    _rewrite_checkpoint(tmp_path, edit)
    with pytest.raises(CheckpointError) as info:
        EdgeForCausalLM.from_pretrained(tmp_path)
    for name in names:
        assert name in str(info.value)
    with pytest.raises(CheckpointError):
        AutoModelForCausalLM.from_pretrained(tmp_path)


def test_unknown_operator_lists_the_registered_ones():
    config = EdgeConfig(layers=[{"op": "short_conv"}, {"op": "mamba9"}])
    with pytest.raises(PluginError) as info:
        EdgeForCausalLM(config)
    message = str(info.value)
    assert "mamba9" in message and "model.layers[1].op" in message
    for name in ("short_conv", "gqa", "swa"):
        assert name in message


@pytest.mark.parametrize("fields, key", [
    (dict(hidden_size=30, num_attention_heads=4), "model.num_attention_heads"),
    (dict(num_attention_heads=4, num_key_value_heads=3), "model.num_key_value_heads"),
    (dict(vocab_size=0), "model.vocab_size"),
    (dict(layers=[]), "model.layers"),
    (dict(layers=[{"conv_length": 3}]), "model.layers[0]"),
])
def test_inconsistent_dims_rejected_when_config_is_built(fields, key):
    with pytest.raises(ConfigError) as info:
        EdgeConfig(**fields)
    assert info.value.key == key


@pytest.mark.parametrize("layer, key, accepted", [
    ({"op": "short_conv", "kernel": 3}, "model.layers[0].kernel", "conv_length"),
    ({"op": "gqa", "window": 8}, "model.layers[0].window", "qk_norm"),
    ({"op": "short_conv", "conv_length": 0}, "model.layers[0].conv_length", "positive"),
    ({"op": "swa", "window": -1}, "model.layers[0].window", "positive"),
    ({"op": "gqa", "qk_norm": "yes"}, "model.layers[0].qk_norm", "true or false"),
])
def test_bad_operator_options_rejected(layer, key, accepted):
    config = EdgeConfig(layers=[layer])
    with pytest.raises(ConfigError) as info:
        config.resolve_operators()
    assert info.value.key == key and accepted in info.value.accepted


def test_odd_head_dim_rejected_for_rope_operators():
    config = EdgeConfig(hidden_size=36, num_attention_heads=4, layers=[{"op": "gqa"}])  # head_dim 9
    with pytest.raises(ConfigError, match="model.head_dim"):
        config.resolve_operators()


def test_bf16_forward_and_generate():
    model = make()
    with torch.no_grad():
        reference = model(IDS).logits
        model = model.to(torch.bfloat16)
        logits = model(IDS).logits
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    assert (logits.float() - reference).abs().max() < 0.05 * reference.abs().max() + 0.05
    out = model.generate(IDS, max_new_tokens=4, do_sample=False)
    assert out.shape == (2, 11)


def test_gradient_checkpointing_gives_the_same_gradients():
    def grads(checkpointing: bool):
        model = make(tie=False).train()
        if checkpointing:
            model.activation_checkpointing_enable()
        loss = model(IDS, labels=IDS).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    loss_plain, plain = grads(False)
    loss_ckpt, ckpt = grads(True)
    assert torch.equal(loss_plain, loss_ckpt)
    assert plain.keys() == ckpt.keys()
    for name in plain:
        assert torch.allclose(plain[name], ckpt[name], atol=1e-6), name
    assert plain["model.layers.1.operator.k_proj.weight"].abs().sum() > 0


def test_training_loss_is_next_token_cross_entropy():
    model = make()
    out = model(IDS, labels=IDS)
    expected = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, 64), IDS[:, 1:].reshape(-1))
    assert torch.allclose(out.loss, expected, atol=1e-6)


@pytest.mark.parametrize("tie", [True, False])
def test_parameter_breakdown_sums_to_the_real_count(tie):
    model = make(tie)
    parts = model.parameter_breakdown()
    real = sum(p.numel() for p in model.parameters())  # tied weights are counted once
    assert parts["total"] == real
    assert sum(parts[k] for k in ("embedding", "operators", "feed_forward", "head", "norms")) == real
    assert parts["embedding"] == 64 * 32
    assert parts["head"] == (0 if tie else 64 * 32)
    assert parts["feed_forward"] == 4 * 3 * 32 * 48
    assert parts["norms"] == (2 * 4 + 1) * 32
    operators = sum(cls.param_count(model.config.dims, o) for cls, o in model.config.resolve_operators())
    assert parts["operators"] == operators
    assert parts["embedding_share"] == pytest.approx(64 * 32 / real)


def test_the_tiny_preset_builds_and_runs():
    from importlib.resources import files

    from omegaconf import OmegaConf

    from edgesmith.core.validation import model_config_from_cfg

    section = OmegaConf.load(str(files("edgesmith.conf") / "model" / "tiny.yaml"))
    model = EdgeForCausalLM(model_config_from_cfg(section)).eval()
    assert [type(b.operator).__name__ for b in model.model.layers] == [
        "ShortConv", "ShortConv", "GroupedQueryAttention", "ShortConv"]
    with torch.no_grad():
        assert model(IDS).logits.shape == (2, 7, 512)


def test_attention_mask_must_be_two_dimensional():
    with pytest.raises(ValueError, match="2-D padding mask"):
        make()(IDS, attention_mask=torch.ones(2, 1, 7, 7))


def test_auto_model_loads_the_body_of_a_causal_lm_checkpoint(tmp_path):
    from transformers import AutoModel

    model = make(tie=False)
    model.save_pretrained(tmp_path)
    body = AutoModel.from_pretrained(tmp_path).eval()
    assert type(body) is EdgeModel
    with torch.no_grad():
        assert torch.equal(body(IDS).last_hidden_state, model.model(IDS).last_hidden_state)
