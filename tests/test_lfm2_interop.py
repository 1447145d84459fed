"""LFM2 interop: transformers' Lfm2ForCausalLM weights in EdgeForCausalLM and back."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import Lfm2Config, Lfm2ForCausalLM

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import CheckpointError
from edgesmith.core.modeling import EdgeForCausalLM
from edgesmith.plugins.interop.lfm2 import (
    ExportError,
    edge_config_to_lfm2,
    export_lfm2,
    import_lfm2,
    lfm2_config_to_edge,
)

# Random-init LFM2 configs that differ in what the mapping has to get right: layer order,
# GQA / MHA / MQA, head_dim, FFN-width rules, conv length and bias, tied or untied head.
TINY_CONFIGS = {
    "gqa-tied": dict(vocab_size=256, hidden_size=64, intermediate_size=192, num_hidden_layers=4,
                     num_attention_heads=4, num_key_value_heads=2, full_attn_idxs=[1, 3]),
    "mha-untied-bias-L4": dict(vocab_size=300, hidden_size=64, intermediate_size=96,
                               block_auto_adjust_ff_dim=False, num_hidden_layers=3,
                               num_attention_heads=4, num_key_value_heads=4,
                               layer_types=["full_attention", "conv", "conv"], conv_L_cache=4,
                               conv_bias=True, tie_word_embeddings=False, norm_eps=1e-6,
                               rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    "mqa-multiplier": dict(vocab_size=200, hidden_size=48, intermediate_size=160, num_hidden_layers=5,
                           num_attention_heads=2, num_key_value_heads=1, full_attn_idxs=[0, 4],
                           block_multiple_of=32, block_ffn_dim_multiplier=1.5, conv_L_cache=2),
}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; tiny shapes do not need more
    yield
    torch.set_num_threads(threads)


def random_lfm2(seed: int = 0, **kwargs) -> Lfm2ForCausalLM:
    torch.manual_seed(seed)
    return Lfm2ForCausalLM(Lfm2Config(**kwargs)).eval()


def greedy(model, ids: torch.Tensor, n: int = 32) -> torch.Tensor:
    return model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_import_matches_lfm2_and_export_round_trips(name, tmp_path):
    ref = random_lfm2(**TINY_CONFIGS[name])
    ref.save_pretrained(tmp_path / "lfm2")
    edge = import_lfm2(tmp_path / "lfm2", tmp_path / "edge")
    assert isinstance(edge, EdgeForCausalLM)
    assert edge.config.tie_word_embeddings == ref.config.tie_word_embeddings
    ids = torch.randint(0, ref.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ref(ids).logits
        assert (edge(ids).logits - expected).abs().max().item() <= 1e-4
    assert torch.equal(greedy(edge, ids[:1]), greedy(ref, ids[:1]))

    # The saved edgesmith directory is the same model, and exporting it loads in transformers.
    reloaded = EdgeForCausalLM.from_pretrained(tmp_path / "edge").eval()
    export_lfm2(tmp_path / "edge", tmp_path / "back")
    back = Lfm2ForCausalLM.from_pretrained(tmp_path / "back").eval()
    assert back.config.layer_types == ref.config.layer_types
    with torch.no_grad():
        assert (reloaded(ids).logits - expected).abs().max().item() <= 1e-4
        assert (back(ids).logits - expected).abs().max().item() <= 1e-4


def test_lfm2_350m_layout_parity(tmp_path):
    """The LFM2-350M layout at full shape (vocab 65536 included), on a short sequence."""
    torch.set_num_threads(2)  # the one heavy test here: use CI's two cores (one_thread restores)
    ref = random_lfm2(
        vocab_size=65536, hidden_size=1024, intermediate_size=6656, num_hidden_layers=16,
        num_attention_heads=16, num_key_value_heads=8, full_attn_idxs=[2, 5, 8, 10, 12, 14],
        conv_L_cache=3, tie_word_embeddings=True,
    )
    edge = import_lfm2(ref)  # from memory: no 1.4 GB round trip through the disk
    assert edge.config.intermediate_size == 4608  # LFM2's auto-adjusted FFN width
    assert [i for i, layer in enumerate(edge.config.layers) if layer["op"] == "gqa"] == [2, 5, 8, 10, 12, 14]
    assert edge.lm_head.weight is edge.model.embed_tokens.weight
    ids = torch.randint(0, 65536, (1, 8), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = ref(ids).logits
        assert (edge(ids).logits - expected).abs().max().item() <= 1e-4
    assert torch.equal(greedy(edge, ids), greedy(ref, ids))
    del ref
    export_lfm2(edge, tmp_path / "back")
    del edge
    back = Lfm2ForCausalLM.from_pretrained(tmp_path / "back").eval()
    with torch.no_grad():
        assert (back(ids).logits - expected).abs().max().item() <= 1e-4


def test_config_mapping_of_the_350m_config():
    lfm2 = Lfm2Config(vocab_size=65536, hidden_size=1024, intermediate_size=6656, num_hidden_layers=16,
                      num_attention_heads=16, num_key_value_heads=8, full_attn_idxs=[2, 5, 8, 10, 12, 14])
    edge = lfm2_config_to_edge(lfm2)
    assert edge.intermediate_size == 4608 and edge.head_dim == 64 and edge.num_key_value_heads == 8
    assert edge.layers[0] == {"op": "short_conv", "conv_length": 3, "bias": False}
    assert [layer["op"] for layer in edge.layers].count("gqa") == 6
    back = edge_config_to_lfm2(edge)
    assert back.layer_types == lfm2.layer_types and back.full_attn_idxs == [2, 5, 8, 10, 12, 14]
    assert back.block_auto_adjust_ff_dim is False and back.intermediate_size == 4608


def test_bad_tensors_are_named(tmp_path):
    ref = random_lfm2(**TINY_CONFIGS["gqa-tied"])
    ref.save_pretrained(tmp_path)
    (file,) = tmp_path.glob("*.safetensors")
    tensors = load_file(str(file))
    del tensors["model.layers.0.feed_forward.w2.weight"]
    tensors["model.layers.0.conv.surprise.weight"] = torch.zeros(3)
    tensors["model.layers.1.self_attn.q_proj.weight"] = torch.zeros(32, 64)
    save_file(tensors, str(file), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        import_lfm2(tmp_path)
    message = str(err.value)
    assert "missing tensors (1): model.layers.0.feed_forward.w2.weight" in message
    assert "unexpected tensors (1): model.layers.0.conv.surprise.weight" in message
    assert "mis-shaped tensor model.layers.1.self_attn.q_proj.weight: (32, 64), expected (64, 64)" in message


def test_not_an_lfm2_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no config.json"):
        import_lfm2(tmp_path)
    Lfm2Config(**TINY_CONFIGS["gqa-tied"]).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match=r"no \*\.safetensors"):
        import_lfm2(tmp_path)


def tiny_edge(layers) -> EdgeForCausalLM:
    torch.manual_seed(0)
    return EdgeForCausalLM(EdgeConfig(vocab_size=128, hidden_size=32, intermediate_size=64,
                                      num_attention_heads=4, num_key_value_heads=2, layers=layers))


def test_export_refuses_operators_lfm2_lacks(tmp_path):
    model = tiny_edge([{"op": "short_conv"}, {"op": "gated_deltanet"}, {"op": "gqa"},
                       {"op": "swa", "window": 8}])
    with pytest.raises(ExportError) as err:
        export_lfm2(model, tmp_path / "out")
    message = str(err.value)
    assert "layer 1 is gated_deltanet: LFM2 has no recurrent (DeltaNet) layer type" in message
    assert "layer 3 is swa: LFM2 attention is global" in message
    assert "layer 0" not in message and "layer 2" not in message
    assert not (tmp_path / "out").exists()  # nothing written


def test_export_refuses_mixed_conv_lengths_and_unnormed_attention(tmp_path):
    model = tiny_edge([{"op": "short_conv", "conv_length": 3}, {"op": "short_conv", "conv_length": 4},
                       {"op": "gqa", "qk_norm": False}])
    with pytest.raises(ExportError) as err:
        export_lfm2(model, tmp_path / "out")
    message = str(err.value)
    assert "conv_length=3, bias=false at layers [0]; conv_length=4, bias=false at layers [1]" in message
    assert "layer 2 is gqa with qk_norm=false" in message


def test_export_of_an_edgesmith_built_model_loads_in_transformers(tmp_path):
    model = tiny_edge([{"op": "gqa"}, {"op": "short_conv"}, {"op": "short_conv"}]).eval()
    export_lfm2(model, tmp_path)
    back = Lfm2ForCausalLM.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 128, (1, 12))
    with torch.no_grad():
        assert (back(ids).logits - model(ids).logits).abs().max().item() <= 1e-4


def test_bf16_checkpoint_stays_bf16(tmp_path):
    random_lfm2(**TINY_CONFIGS["gqa-tied"]).to(torch.bfloat16).save_pretrained(tmp_path)
    # Loaded, not cast: Module.to(bfloat16) would also round LFM2's RoPE inv_freq buffer.
    ref = Lfm2ForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    edge = import_lfm2(tmp_path)
    assert {p.dtype for p in edge.parameters()} == {torch.bfloat16}
    ids = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(edge(ids).logits, ref(ids).logits)  # same arithmetic, same rounding


def test_rope_scaling_is_rejected():
    config = Lfm2Config(**TINY_CONFIGS["gqa-tied"])
    config.rope_parameters = {"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}
    with pytest.raises(Exception, match="rope_parameters.rope_type='linear': accepted 'default'"):
        lfm2_config_to_edge(config)
