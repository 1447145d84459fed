"""The recurrent token mixers ``gated_deltanet`` and ``linear_attn``.

Prefill then decode equals the full forward; left padding does not leak into the state;
state accounting matches the real state in every dtype and stays constant in the context;
gated DeltaNet matches the transformers Qwen3-Next layer given its weights. (Gradients and
parameter counts: the operator contract suite, tests/test_model_operators.py.)
"""

from __future__ import annotations

import pytest
import torch

from edgesmith.core.errors import CheckpointError, ConfigError
from edgesmith.core.operator import ModelDims
from edgesmith.core.plugin_manager import get_plugin_manager
from edgesmith.plugins.interop.qwen3_next import load_qwen3_next_weights
from edgesmith.plugins.operators.gated_deltanet import GatedDeltaNet
from edgesmith.plugins.operators.linear_attn import LinearAttention

DIMS = ModelDims(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
OPERATORS = {
    "gated_deltanet": {"num_heads": 2, "num_v_heads": 4, "head_v_dim": 6, "conv_length": 4, "chunk_size": 8},
    "linear_attn": {"chunk_size": 8},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def _build(name: str, raw: dict | None = None, dims: ModelDims = DIMS, seed: int = 0):
    cls = get_plugin_manager().get("operator", name)
    options = cls.parse_options(OPERATORS[name] if raw is None else raw, dims, f"model.layers[0].{name}")
    torch.manual_seed(seed)
    op = cls(dims, options).eval()
    with torch.no_grad():  # away from init so every parameter matters in the comparisons
        for p in op.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return op


def test_both_are_registered_operators():
    pm = get_plugin_manager()
    assert pm.get("operator", "gated_deltanet") is GatedDeltaNet
    assert pm.get("operator", "linear_attn") is LinearAttention


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_left_padding_does_not_leak(name):
    """A left-padded row gives the same outputs and state as the same prompt alone."""
    op = _build(name)
    prompt, pad, cont = torch.randn(1, 9, DIMS.hidden_size), 5, torch.randn(1, 4, DIMS.hidden_size)
    garbage = 50.0 * torch.randn(1, pad, DIMS.hidden_size)  # padding embeddings must not matter
    with torch.no_grad():
        alone, s_alone = op(prompt, op.init_state(1, prompt.device, prompt.dtype))
        mask = torch.cat([torch.zeros(1, pad), torch.ones(1, 9)], dim=1).long()
        padded, s_pad = op(torch.cat([garbage, prompt], dim=1), op.init_state(1, prompt.device, prompt.dtype),
                           attention_mask=mask)
        assert (padded[:, pad:] - alone).abs().max().item() <= 1e-5
        for key in s_alone:
            assert (s_pad[key] - s_alone[key]).abs().max().item() <= 1e-5
        # decode continues identically, the mask growing with the context
        for t in range(4):
            mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
            a, s_alone = op(cont[:, t:t + 1], s_alone)
            b, s_pad = op(cont[:, t:t + 1], s_pad, attention_mask=mask)
            assert (a - b).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_masked_steps_leave_the_recurrent_state_unchanged(name):
    """Masked positions are no-ops for the recurrence even on a non-empty state (beta = g = 0, k = 0)."""
    op = _build(name)
    x = torch.randn(2, 10, DIMS.hidden_size)
    with torch.no_grad():
        _, state = op(x[:, :7], op.init_state(2, x.device, x.dtype))
        before = state["recurrent"].clone()
        mask = torch.ones(2, 10, dtype=torch.long)
        mask[:, 7:] = 0
        for sl in (slice(7, 10), slice(7, 8)):  # a chunk and a single step
            _, after = op(x[:, sl], dict(state), attention_mask=mask[:, :sl.stop])
            assert before.abs().max() > 0
            assert torch.equal(after["recurrent"], before)


@pytest.mark.parametrize("name", sorted(OPERATORS))
def test_batched_rows_are_independent(name):
    """Row 0 of a batch with a padded second row equals row 0 run alone (full-forward path too)."""
    op = _build(name)
    x = torch.randn(2, 12, DIMS.hidden_size)
    mask = torch.ones(2, 12, dtype=torch.long)
    mask[1, :4] = 0
    with torch.no_grad():
        both, _ = op(x, attention_mask=mask)
        row1, _ = op(x[1:, 4:])
        row0, _ = op(x[:1])
    assert (both[:1] - row0).abs().max().item() <= 1e-5
    assert (both[1:, 4:] - row1).abs().max().item() <= 1e-5


@pytest.mark.parametrize("name, raw", [
    ("gated_deltanet", {}), ("gated_deltanet", OPERATORS["gated_deltanet"]),
    ("linear_attn", {}), ("linear_attn", {"num_heads": 3, "head_dim": 5}),
])
def test_state_bytes_match_the_modules_and_stay_constant(name, raw):
    # param_count and float32 decode state for every operator: tests/test_model_operators.py
    op = _build(name, raw)
    cls, options = type(op), op.options
    for dtype in (torch.float32, torch.bfloat16):
        state = op.init_state(3, torch.device("cpu"), dtype)
        real = sum(t.numel() * t.element_size() for t in state.values())
        assert cls.state_bytes(DIMS, options, 10, batch_size=3, dtype_bytes=dtype.itemsize) == real
    # constant in context length: the point of a recurrent mixer
    assert cls.state_bytes(DIMS, options, 16) == cls.state_bytes(DIMS, options, 100_000)
    assert cls.flops_per_token(DIMS, options, 4096) > 2 * cls.param_count(DIMS, options)


def test_bf16_forward_runs_and_stays_close():
    for name in OPERATORS:
        op = _build(name)
        x = torch.randn(2, 11, DIMS.hidden_size)
        with torch.no_grad():
            ref, _ = op(x)
            out, state = op.to(torch.bfloat16)(x.bfloat16(), op.init_state(2, x.device, torch.bfloat16))
        assert out.dtype == torch.bfloat16 and state["recurrent"].dtype == torch.float32
        assert (out.float() - ref).abs().max().item() < 0.1 * ref.abs().max().item()


@pytest.mark.parametrize("name, raw, key", [
    ("gated_deltanet", {"num_heads": 3, "num_v_heads": 4}, "num_v_heads"),
    ("gated_deltanet", {"conv_length": 1}, "conv_length"),
    ("gated_deltanet", {"chunk_size": 0}, "chunk_size"),
    ("gated_deltanet", {"head_k_dim": -1}, "head_k_dim"),
    ("gated_deltanet", {"window": 3}, "window"),
    ("linear_attn", {"eps": 0.0}, "eps"),
    ("linear_attn", {"num_heads": 2.5}, "num_heads"),
])
def test_bad_options_name_the_key(name, raw, key):
    cls = get_plugin_manager().get("operator", name)
    with pytest.raises(ConfigError, match=rf"layers\[1\]\.{key}") as info:
        cls.parse_options(raw, DIMS, "layers[1]")
    assert "accepted" in str(info.value)


# --- Qwen3-Next parity ---------------------------------------------------------------

def _qwen_pair(num_k_heads: int, num_v_heads: int, seed: int = 0):
    from transformers import Qwen3NextConfig
    from transformers.models.qwen3_next.modeling_qwen3_next import Qwen3NextGatedDeltaNet

    config = Qwen3NextConfig(
        hidden_size=32, num_hidden_layers=1, layer_types=["linear_attention"], vocab_size=64,
        num_attention_heads=4, num_key_value_heads=2, head_dim=8, intermediate_size=64,
        linear_num_key_heads=num_k_heads, linear_num_value_heads=num_v_heads,
        linear_key_head_dim=8, linear_value_head_dim=6, linear_conv_kernel_dim=4, rms_norm_eps=1e-6,
    )
    torch.manual_seed(seed)
    reference = Qwen3NextGatedDeltaNet(config, layer_idx=0).eval()
    with torch.no_grad():  # random everything, incl. the norm weight the init leaves at one
        for p in reference.parameters():
            p.normal_(0.0, 0.3)
    dims = ModelDims(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8, norm_eps=1e-6)
    options = GatedDeltaNet.parse_options(
        {"num_heads": num_k_heads, "num_v_heads": num_v_heads, "head_k_dim": 8, "head_v_dim": 6,
         "conv_length": 4, "chunk_size": 16}, dims, "layers[0]",
    )
    ours = GatedDeltaNet(dims, options).eval()
    load_qwen3_next_weights(ours, reference.state_dict())
    return reference, ours, dims, options


@pytest.mark.parametrize("num_k_heads, num_v_heads", [(2, 4), (2, 2)])
def test_qwen3_next_parity(num_k_heads, num_v_heads):
    reference, ours, dims, options = _qwen_pair(num_k_heads, num_v_heads)
    assert GatedDeltaNet.param_count(dims, options) == sum(p.numel() for p in reference.parameters())
    x = torch.randn(2, 37, 32)
    with torch.no_grad():
        expected = reference(x)
        full, _ = ours(x)
        state = ours.init_state(2, x.device, x.dtype)
        prefix, state = ours(x[:, :30], state)
        steps = []
        for t in range(30, 37):
            out, state = ours(x[:, t:t + 1], state)
            steps.append(out)
    assert expected.abs().max().item() > 0.1
    assert (full - expected).abs().max().item() <= 1e-4
    assert (torch.cat([prefix, *steps], dim=1) - expected).abs().max().item() <= 1e-4


def test_qwen3_next_parity_with_left_padding():
    reference, ours, _, _ = _qwen_pair(2, 4, seed=1)
    x = torch.randn(2, 20, 32)
    mask = torch.ones(2, 20, dtype=torch.long)
    mask[0, :6] = 0
    with torch.no_grad():
        expected = reference(x, attention_mask=mask)
        got, _ = ours(x, attention_mask=mask)
    assert (got[0, 6:] - expected[0, 6:]).abs().max().item() <= 1e-4
    assert (got[1] - expected[1]).abs().max().item() <= 1e-4


def test_qwen3_next_weights_that_do_not_fit_are_named():
    reference, ours, _, _ = _qwen_pair(2, 4)
    weights = dict(reference.state_dict())
    weights["dt_bias"] = weights["dt_bias"][:3]
    del weights["out_proj.weight"]
    weights["extra.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError) as info:
        load_qwen3_next_weights(ours, weights)
    message = str(info.value)
    assert "missing out_proj.weight" in message and "unexpected extra.weight" in message and "dt_bias" in message
