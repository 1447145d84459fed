"""The operator contract, over every registered operator (built-in, third-party): a layer's
state continues its full pass, decode equals the full pass in the model, padding leaves no
trace, gradients match finite differences, and the cost model (param_count, state_bytes)
matches what the module really holds. Operator-specific behaviour (recurrent state,
windows) is tested in the operator family's own file."""

from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from edgesmith.core.cache import CACHE_BLOCK
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.modeling import EdgeForCausalLM
from edgesmith.core.operator import ModelDims
from edgesmith.core.plugin_manager import get_plugin_manager

OPERATORS = get_plugin_manager().names("operator")
# small windows so the sliding-window ring buffer wraps within the test sequences
OPTIONS = {"swa": {"window": 5}}
# one layer on its own: small chunks, so the chunked passes cross chunk boundaries and
# continue from a state; value heads outnumbering key heads
LAYER_DIMS = ModelDims(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, head_dim=8)
LAYER_OPTIONS = {
    **OPTIONS,
    "gated_deltanet": {"num_heads": 2, "num_v_heads": 4, "head_v_dim": 6, "conv_length": 4, "chunk_size": 8},
    "linear_attn": {"chunk_size": 8},
}


def tiny_config(op: str, **overrides) -> EdgeConfig:
    layer = {"op": op, **OPTIONS.get(op, {})}
    fields = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_attention_heads=4,
                  num_key_value_heads=2, layers=[layer, dict(layer)], eos_token_id=None,
                  initializer_range=0.2)  # weights large enough that a leak or a slip shows
    fields.update(overrides)
    return EdgeConfig(**fields)


def tiny_model(op: str, **overrides) -> EdgeForCausalLM:
    torch.manual_seed(0)
    return EdgeForCausalLM(tiny_config(op, **overrides)).eval()


def layer(op: str):
    """One operator layer, its weights moved off their init values so every parameter matters."""
    cls = get_plugin_manager().get("operator", op)
    options = cls.parse_options(LAYER_OPTIONS.get(op, {}), LAYER_DIMS, "model.layers[0]")
    torch.manual_seed(0)
    module = cls(LAYER_DIMS, options).eval()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return module


@pytest.mark.parametrize("op", OPERATORS)
def test_layer_state_continues_its_full_pass(op):
    """Prefill, token-by-token steps and a short chunk on a state equal one full pass (no state)."""
    module = layer(op)
    x = torch.randn(2, 30, LAYER_DIMS.hidden_size)
    with torch.no_grad():
        full, none_state = module(x)
        assert none_state is None
        out, state = module(x[:, :13], module.init_state(2, x.device, x.dtype))
        outs = [out]
        for t in range(13, 20):           # token by token
            out, state = module(x[:, t:t + 1], state)
            outs.append(out)
        out, state = module(x[:, 20:23], state)  # a short chunk on a state
        outs.append(out)
        for t in range(23, 30):
            out, state = module(x[:, t:t + 1], state)
            outs.append(out)
    assert (torch.cat(outs, dim=1) - full).abs().max().item() <= 1e-5
    assert full.abs().max().item() > 1e-2  # a non-trivial output


@pytest.mark.parametrize("op", OPERATORS)
def test_prefill_chunk_and_decode_equal_full_forward(op):
    model = tiny_model(op)
    ids = torch.randint(3, 64, (2, 14), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids, use_cache=False).logits
        out = model(ids[:, :5], use_cache=True)  # prefill
        pieces, cache = [out.logits], out.cache
        out = model(ids[:, 5:9], cache=cache)  # a chunk continuing from the cache
        pieces.append(out.logits)
        for t in range(9, 14):  # token by token, past the swa window
            out = model(ids[:, t:t + 1], cache=cache)
            pieces.append(out.logits)
    assert cache.get_seq_length() == 14
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() <= 1e-5


@pytest.mark.parametrize("op", OPERATORS)
def test_left_padding_leaves_no_trace(op):
    """Row 1 is row 0's last 10 tokens after 4 pads: its logits equal the unpadded run, in
    the full pass and in prefill + decode (padding must not leak into any state)."""
    model = tiny_model(op)
    # ordinary tokens under the padding: what is padded must not matter, whatever it holds
    # (the pad token's embedding row starts at zero, which would hide a leak)
    ids = torch.randint(3, 64, (2, 14), generator=torch.Generator().manual_seed(2))
    mask = torch.ones(2, 14, dtype=torch.long)
    mask[1, :4] = 0
    with torch.no_grad():
        alone = model(ids[1:, 4:], use_cache=False).logits[0]
        padded = model(ids, attention_mask=mask, use_cache=False).logits[1, 4:]
        out = model(ids[:, :7], attention_mask=mask[:, :7], use_cache=True)
        pieces = [out.logits[1, 4:]]
        for t in range(7, 14):
            out = model(ids[:, t:t + 1], attention_mask=mask[:, :t + 1], cache=out.cache)
            pieces.append(out.logits[1, -1])
    assert (padded - alone).abs().max().item() <= 1e-5
    assert (torch.cat([pieces[0], torch.stack(pieces[1:])]) - alone).abs().max().item() <= 1e-5


# gradients on 6 tokens: a window and chunks that small, so the windowed and chunked paths are crossed
GRAD_DIMS = ModelDims(hidden_size=8, num_attention_heads=2, num_key_value_heads=1, head_dim=4)
GRAD_OPTIONS = {"swa": {"window": 3}, "gated_deltanet": {"conv_length": 2, "chunk_size": 2},
                "linear_attn": {"chunk_size": 2}}
# gqa and swa normalise q and k in float32 (core/rmsnorm.py) even for float64 input: only these
# get finite differences with a larger step and looser tolerances
FLOAT32_INSIDE = {"gqa", "swa"}


@pytest.mark.parametrize("op", OPERATORS)
def test_gradients_match_finite_differences(op):
    """Analytic gradients of one operator layer (float64, tiny) against central differences,
    for the input and every parameter."""
    cls = get_plugin_manager().get("operator", op)
    options = cls.parse_options(GRAD_OPTIONS.get(op, {}), GRAD_DIMS, "model.layers[0]")
    torch.manual_seed(0)
    layer = cls(GRAD_DIMS, options).double()
    for p in layer.parameters():  # off the init values (ones for norms) so every path matters
        p.data.add_(0.1 * torch.randn_like(p))
    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in layer.parameters())
    x = torch.randn(2, 6, GRAD_DIMS.hidden_size, dtype=torch.float64, requires_grad=True)

    def run(x, *flat):
        return functional_call(layer, dict(zip(names, flat)), (x,))[0]

    tolerances = (dict(eps=1e-4, atol=1e-3, rtol=1e-2, fast_mode=True) if op in FLOAT32_INSIDE
                  else dict(eps=1e-6, atol=1e-5))
    assert torch.autograd.gradcheck(run, (x, *params), **tolerances)


# the cost model counts each operator's defaults and non-default head layouts
COUNTED = [(op, {}) for op in OPERATORS] + [
    ("gated_deltanet", LAYER_OPTIONS["gated_deltanet"]), ("linear_attn", {"num_heads": 3, "head_dim": 5})]


@pytest.mark.parametrize("op, raw", COUNTED)
def test_param_count_matches_real_parameters(op, raw):
    cls = get_plugin_manager().get("operator", op)
    options = cls.parse_options(raw, LAYER_DIMS, "model.layers[0]")
    assert cls.param_count(LAYER_DIMS, options) == sum(p.numel() for p in cls(LAYER_DIMS, options).parameters())


@pytest.mark.parametrize("op", OPERATORS)
def test_state_bytes_match_the_cache(op):
    """``state_bytes`` (the search's memory model) equals the bytes the decode state really holds."""
    model = tiny_model(op)
    config = model.config
    (cls, options), = config.resolve_operators()[:1]
    ids = torch.randint(3, 64, (3, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cache = model(ids[:, :4], use_cache=True).cache
        for context in range(4, 13):
            layer = cache.layers[0]
            assert layer.nbytes() == cls.state_bytes(config.dims, options, context, batch_size=3, dtype_bytes=4)
            if context < 12:
                model(ids[:, context:context + 1], cache=cache)


def test_swa_decode_state_stays_within_the_window():
    model = tiny_model("swa")  # window 5
    ids = torch.randint(3, 64, (1, 20), generator=torch.Generator().manual_seed(4))
    sizes = []
    with torch.no_grad():
        cache = model(ids[:, :2], use_cache=True).cache
        for t in range(2, 20):
            model(ids[:, t:t + 1], cache=cache)
            sizes.append((cache.layers[0].state["key"].shape[2], cache.layers[0].nbytes()))
    assert max(s for s, _ in sizes) == 5
    assert len({b for s, b in sizes if s == 5}) == 1  # flat once the window is full
    # a long prefill also keeps only the window
    with torch.no_grad():
        cache = model(ids, use_cache=True).cache
    assert cache.layers[0].state["key"].shape[2] == 5
    assert cache.layers[1].state["slot_pos"].tolist() == [[15, 16, 17, 18, 19]]


def test_swa_state_bytes_bounded_by_window_gqa_grows():
    config = tiny_config("swa")
    (swa, swa_opts), = config.resolve_operators()[:1]
    (gqa, gqa_opts), = tiny_config("gqa").resolve_operators()[:1]
    dims = config.dims
    assert swa.state_bytes(dims, swa_opts, 5) == swa.state_bytes(dims, swa_opts, 100_000)
    # gqa grows with the context, in whole preallocated blocks
    assert gqa.state_bytes(dims, gqa_opts, 1) == gqa.state_bytes(dims, gqa_opts, CACHE_BLOCK)
    assert gqa.state_bytes(dims, gqa_opts, 800 * CACHE_BLOCK) == 800 * gqa.state_bytes(dims, gqa_opts, 5)
    assert swa.flops_per_token(dims, swa_opts, 100_000) < gqa.flops_per_token(dims, gqa_opts, 100_000)
