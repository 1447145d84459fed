"""The pure-torch recurrent kernels: gated delta rule and causal linear attention.

Chunked form == recurrent form == a textbook float64 formula, for any length, with and
without an initial state; gradients checked against finite differences (float64) and
between the two forms.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from edgesmith.kernels.gated_delta import chunk_gated_delta_rule, recurrent_gated_delta_rule
from edgesmith.kernels.linear_attn import chunk_linear_attn, recurrent_linear_attn


pytestmark = pytest.mark.usefixtures("one_thread")


def _inputs(B=2, T=9, H=3, K=5, V=4, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, T, H, K, generator=gen, dtype=dtype)
    k = F.normalize(torch.randn(B, T, H, K, generator=gen, dtype=dtype), dim=-1)
    v = torch.randn(B, T, H, V, generator=gen, dtype=dtype)
    g = -torch.rand(B, T, H, generator=gen, dtype=dtype) * 1.5
    beta = torch.rand(B, T, H, generator=gen, dtype=dtype)
    s0 = torch.randn(B, H, K, V, generator=gen, dtype=dtype)
    return q, k, v, g, beta, s0


def _textbook_gated_delta(q, k, v, g, beta, scale, s0):
    """S_t = exp(g_t) (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T, o_t = scale S_t^T q_t, float64."""
    q, k, v, g, beta, S = (x.double() for x in (q, k, v, g, beta, s0))
    B, T, H, K = q.shape
    eye = torch.eye(K, dtype=torch.float64)
    out = torch.zeros(B, T, H, v.shape[-1], dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            s = S[b, h].clone()
            for t in range(T):
                kt = k[b, t, h][:, None]
                s = g[b, t, h].exp() * (eye - beta[b, t, h] * kt @ kt.T) @ s + beta[b, t, h] * kt @ v[b, t, h][None]
                out[b, t, h] = scale * s.T @ q[b, t, h]
            S[b, h] = s
    return out, S


def _textbook_linear_attn(q, k, v, scale, s0):
    """o_t = scale * (q_t^T S0 + sum_{j<=t} (q_t . k_j) v_j): the quadratic form, float64."""
    q, k, v, s0 = (x.double() for x in (q, k, v, s0))
    T = q.shape[1]
    scores = torch.einsum("bthk,bshk->bhts", q, k).masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), 0.0)
    o = scale * (torch.einsum("bhts,bshv->bthv", scores, v) + torch.einsum("bthk,bhkv->bthv", q, s0))
    return o, s0 + torch.einsum("bthk,bthv->bhkv", k, v)


@pytest.mark.parametrize("T", [1, 7, 16, 33, 50])
@pytest.mark.parametrize("with_state", [False, True])
def test_gated_delta_chunked_equals_recurrent_and_textbook(T, with_state):
    q, k, v, g, beta, s0 = _inputs(T=T)
    s0 = s0 if with_state else None
    o_r, s_r = recurrent_gated_delta_rule(q, k, v, g, beta, initial_state=s0)
    o_c, s_c = chunk_gated_delta_rule(q, k, v, g, beta, initial_state=s0, chunk_size=16)
    o_t, s_t = _textbook_gated_delta(q, k, v, g, beta, 5 ** -0.5, torch.zeros(2, 3, 5, 4) if s0 is None else s0)
    assert o_c.shape == (2, T, 3, 4) and s_c.shape == (2, 3, 5, 4)
    torch.testing.assert_close(o_c, o_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_c, s_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o_r.double(), o_t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_r.double(), s_t, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("T", [1, 7, 16, 33, 50])
@pytest.mark.parametrize("with_state", [False, True])
def test_linear_attn_chunked_equals_recurrent_and_textbook(T, with_state):
    q, k, v, _, _, s0 = _inputs(T=T)
    s0 = s0 if with_state else None
    o_r, s_r = recurrent_linear_attn(q, k, v, initial_state=s0)
    o_c, s_c = chunk_linear_attn(q, k, v, initial_state=s0, chunk_size=16)
    o_t, s_t = _textbook_linear_attn(q, k, v, 5 ** -0.5, torch.zeros(2, 3, 5, 4) if s0 is None else s0)
    torch.testing.assert_close(o_c, o_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_c, s_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o_c.double(), o_t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s_c.double(), s_t, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunked, recurrent", [
    (chunk_gated_delta_rule, recurrent_gated_delta_rule), (chunk_linear_attn, recurrent_linear_attn),
])
def test_split_sequence_with_carried_state_equals_whole(chunked, recurrent):
    """Prefill a prefix, then continue from its final state (chunked and single steps)."""
    q, k, v, g, beta, _ = _inputs(T=40)
    gated = chunked is chunk_gated_delta_rule

    def run(fn, sl, state):
        args = (q[:, sl], k[:, sl], v[:, sl]) + ((g[:, sl], beta[:, sl]) if gated else ())
        return fn(*args, initial_state=state, chunk_size=8)

    o_full, s_full = run(chunked, slice(0, 40), None)
    o1, s = run(chunked, slice(0, 21), None)
    outs = [o1]
    for t in range(21, 25):
        o, s = run(recurrent, slice(t, t + 1), s)
        outs.append(o)
    o, s = run(chunked, slice(25, 40), s)
    outs.append(o)
    torch.testing.assert_close(torch.cat(outs, dim=1), o_full, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s, s_full, atol=1e-5, rtol=1e-5)


def test_result_does_not_depend_on_chunk_size():
    q, k, v, g, beta, s0 = _inputs(T=29)
    ref = chunk_gated_delta_rule(q, k, v, g, beta, initial_state=s0, chunk_size=1)
    for C in (3, 8, 64):
        out = chunk_gated_delta_rule(q, k, v, g, beta, initial_state=s0, chunk_size=C)
        torch.testing.assert_close(out[0], ref[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(out[1], ref[1], atol=1e-5, rtol=1e-5)


def test_scale_and_output_final_state_flags():
    q, k, v, g, beta, _ = _inputs(T=6)
    o_default, _ = chunk_gated_delta_rule(q, k, v, g, beta)
    o_explicit, s = chunk_gated_delta_rule(q, k, v, g, beta, scale=2.0, output_final_state=False)
    assert s is None
    torch.testing.assert_close(o_explicit, o_default * 2.0 / 5 ** -0.5, atol=1e-5, rtol=1e-5)
    assert recurrent_linear_attn(q, k, v, output_final_state=False)[1] is None


def test_bf16_inputs_keep_dtype_and_stay_close():
    q, k, v, g, beta, _ = _inputs(T=20)
    o32, _ = chunk_gated_delta_rule(q, k, v, g, beta, chunk_size=8)
    o16, s16 = chunk_gated_delta_rule(*(x.bfloat16() for x in (q, k, v, g, beta)), chunk_size=8)
    assert o16.dtype == torch.bfloat16 and s16.dtype == torch.float32
    assert (o16.float() - o32).abs().max() < 0.1


def test_gradcheck_gated_delta_chunked_float64():
    q, k, v, g, beta, s0 = _inputs(B=1, T=5, H=2, K=3, V=2, dtype=torch.float64, seed=1)
    inputs = tuple(x.clone().requires_grad_() for x in (q, k, v, g, beta, s0))

    def fn(q, k, v, g, beta, s0):
        return chunk_gated_delta_rule(q, k, v, g, beta, initial_state=s0, chunk_size=2)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_gradcheck_linear_attn_chunked_float64():
    q, k, v, _, _, s0 = _inputs(B=1, T=5, H=2, K=3, V=2, dtype=torch.float64, seed=2)
    inputs = tuple(x.clone().requires_grad_() for x in (q, k, v, s0))

    def fn(q, k, v, s0):
        return chunk_linear_attn(q, k, v, initial_state=s0, chunk_size=2)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6)


def test_chunked_gradients_match_recurrent_gradients_fp32():
    q, k, v, g, beta, s0 = _inputs(T=37)
    weights = torch.randn(2, 37, 3, 4)

    def grads(fn):
        xs = [x.clone().requires_grad_() for x in (q, k, v, g, beta, s0)]
        o, s = fn(*xs[:5], initial_state=xs[5], chunk_size=16)
        ((o * weights).sum() + s.square().sum()).backward()
        return [x.grad for x in xs]

    for a, b in zip(grads(chunk_gated_delta_rule), grads(recurrent_gated_delta_rule)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_bad_shapes_are_named():
    q, k, v, g, beta, s0 = _inputs(T=4)
    with pytest.raises(ValueError, match="initial_state must be"):
        chunk_gated_delta_rule(q, k, v, g, beta, initial_state=s0[:, :, :2])
    with pytest.raises(ValueError, match="beta must be"):
        chunk_gated_delta_rule(q, k, v, g, beta[:, :2])
    with pytest.raises(ValueError, match="v must be"):
        chunk_linear_attn(q, k, v[:, :3])
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_linear_attn(q, k, v, chunk_size=0)
