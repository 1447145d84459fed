"""Each Triton kernel against its torch reference: outputs and input gradients.

Without a GPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``, set here
before any kernel module is imported, because Triton decides at decoration time); with a
GPU the same tests run the compiled kernels on CUDA (scripts/gpu_check.sh).

Shapes are tiny but awkward: sequence lengths that are not multiples of the chunk or block
size, batch 2, several heads, channel counts and head dims that are not powers of two,
grouped KV heads, initial and final recurrent states, prefill followed by decode.

Tolerances, as ``max|triton - reference| <= tol * max|reference| + tol``, the reference
computed in float32 from the same (rounded) inputs:

- float32: 1e-4 in the interpreter (exact float32 products), 2e-2 on CUDA (tl.dot uses TF32);
- bfloat16: 4e-2 (inputs, stored intermediates and outputs are rounded to bfloat16).
"""

from __future__ import annotations

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from edgesmith.kernels.gated_delta import ops as gd_ops  # noqa: E402
from edgesmith.kernels.gated_delta import reference as gd_ref  # noqa: E402
from edgesmith.kernels.linear_attn import ops as la_ops  # noqa: E402
from edgesmith.kernels.linear_attn import reference as la_ref  # noqa: E402
from edgesmith.kernels.short_conv import ops as sc_ops  # noqa: E402
from edgesmith.kernels.short_conv import reference as sc_ref  # noqa: E402
from edgesmith.kernels.swa import ops as swa_ops  # noqa: E402
from edgesmith.kernels.swa import reference as swa_ref  # noqa: E402

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
DTYPES = [torch.float32, torch.bfloat16]


def tolerance(dtype: torch.dtype) -> float:
    if dtype == torch.bfloat16:
        return 4e-2
    return 2e-2 if DEVICE.type == "cuda" else 1e-4


pytestmark = pytest.mark.usefixtures("one_thread")


def assert_close(name: str, got: torch.Tensor, want: torch.Tensor, tol: float) -> None:
    assert got.shape == want.shape, f"{name}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    got, want = got.detach().float(), want.detach().float()
    assert torch.isfinite(got).all(), f"{name}: non-finite values"
    err = (got - want).abs().max().item()
    bound = tol * want.abs().max().item() + tol
    assert err <= bound, f"{name}: max abs error {err:.3g} > {bound:.3g}"


def leaves(tensors, dtype):
    """Kernel inputs in ``dtype`` and float32 copies of the same rounded values for the reference."""
    low = [t.to(DEVICE, dtype).requires_grad_() for t in tensors]
    ref = [t.detach().float().requires_grad_() for t in low]
    return low, ref


def cotangent(like: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A random float32 output gradient on the test device (same for kernel and reference)."""
    return torch.randn(like.shape, generator=gen).to(DEVICE)


def grads(outputs, cotangents, inputs):
    loss = sum((o.float() * c).sum() for o, c in zip(outputs, cotangents))
    return torch.autograd.grad(loss, inputs)


# ---------------------------------------------------------------- short convolution


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("T", [37, 2])
def test_short_conv_forward_backward(dtype, with_state, T):
    B, D, L = 2, 20, 4
    gen = torch.Generator().manual_seed(T)
    tensors = [torch.randn(B, D, T, generator=gen), torch.randn(D, L, generator=gen) / L]
    if with_state:
        tensors.append(torch.randn(B, D, L - 1, generator=gen))
    (x, w, *s), (rx, rw, *rs) = leaves(tensors, dtype)
    y, final = sc_ops.causal_conv1d(x, w, s[0] if s else None, backend="triton")
    ry, rfinal = sc_ref.causal_conv1d(rx, rw, rs[0] if rs else None)
    tol = tolerance(dtype)
    assert y.dtype == dtype and final.dtype == dtype
    assert type(y.grad_fn).__name__.startswith("CausalConv1dFunction")
    assert_close("y", y, ry, tol)
    assert_close("final_state", final, rfinal, tol)
    cot = [cotangent(y, gen), cotangent(final, gen)]
    names = ["dx", "dweight", "dinitial_state"]
    for name, a, b in zip(names, grads([y, final], cot, [x, w, *s]), grads([ry, rfinal], cot, [rx, rw, *rs])):
        assert_close(name, a, b, tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_short_conv_prefill_then_decode_steps(dtype):
    B, D, L, T, prefill = 2, 24, 3, 12, 9
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(B, D, T, generator=gen).to(DEVICE, dtype)
    w = torch.randn(D, L, generator=gen).to(DEVICE, dtype)
    want, want_final = sc_ref.causal_conv1d(x.float(), w.float())
    with torch.no_grad():
        y, state = sc_ops.causal_conv1d(x[:, :, :prefill], w, backend="triton")
        steps = [y]
        for t in range(prefill, T):
            y_t, state = sc_ops.causal_conv1d_step(x[:, :, t], state, w, backend="triton")
            assert y_t.dtype == dtype and state.shape == (B, D, L - 1)
            steps.append(y_t[:, :, None])
    assert_close("y (prefill + steps)", torch.cat(steps, -1), want, tolerance(dtype))
    assert_close("state after decode", state, want_final, tolerance(dtype))


def test_short_conv_step_with_autograd_matches_reference():
    B, D, L = 2, 18, 4
    gen = torch.Generator().manual_seed(2)
    (x, s, w), (rx, rs, rw) = leaves([torch.randn(B, D, generator=gen), torch.randn(B, D, L - 1, generator=gen),
                                      torch.randn(D, L, generator=gen)], torch.float32)
    y, ns = sc_ops.causal_conv1d_step(x, s, w, backend="triton")
    ry, rns = sc_ref.causal_conv1d_step(rx, rs, rw)
    assert_close("y_t", y, ry, tolerance(torch.float32))
    assert_close("new_state", ns, rns, tolerance(torch.float32))
    cot = [cotangent(y, gen), cotangent(ns, gen)]
    for name, a, b in zip(["dx_t", "dstate", "dweight"], grads([y, ns], cot, [x, s, w]),
                          grads([ry, rns], cot, [rx, rs, rw])):
        assert_close(name, a, b, tolerance(torch.float32))


# ---------------------------------------------------------------- sliding-window attention


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,kv_heads,window", [(4, 2, 7), (2, 2, 64), (3, 1, 1)])
def test_swa_forward_backward(dtype, heads, kv_heads, window):
    B, T, D = 2, 45, 24
    gen = torch.Generator().manual_seed(window)
    tensors = [torch.randn(B, heads, T, D, generator=gen), torch.randn(B, kv_heads, T, D, generator=gen),
               torch.randn(B, kv_heads, T, D, generator=gen)]
    (q, k, v), (rq, rk, rv) = leaves(tensors, dtype)
    o = swa_ops.sliding_window_attention(q, k, v, window, backend="triton")
    ro = swa_ref.sliding_window_attention(rq, rk, rv, window)
    tol = tolerance(dtype)
    assert o.dtype == dtype
    assert type(o.grad_fn).__name__.startswith("SlidingWindowAttnFunction")
    assert_close("o", o, ro, tol)
    cot = cotangent(o, gen)
    for name, a, b in zip(["dq", "dk", "dv"], grads([o], [cot], [q, k, v]), grads([ro], [cot], [rq, rk, rv])):
        assert_close(name, a, b, tol)


# ---------------------------------------------------------------- linear attention


def _linear_attn_inputs(B, T, H, K, V, gen):
    return [torch.randn(B, T, H, K, generator=gen), torch.randn(B, T, H, K, generator=gen),
            torch.randn(B, T, H, V, generator=gen)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_linear_attn_forward_backward(dtype, with_state):
    B, T, H, K, V = 2, 37, 3, 16, 17         # V = head_dim + 1, as the operator's normalizer column
    gen = torch.Generator().manual_seed(3)
    tensors = _linear_attn_inputs(B, T, H, K, V, gen)
    if with_state:
        tensors.append(torch.randn(B, H, K, V, generator=gen))
    (q, k, v, *s), (rq, rk, rv, *rs) = leaves(tensors, dtype)
    if s:  # the recurrent state stays float32, as the operators carry it
        s = [s[0].detach().float().requires_grad_()]
        rs = [s[0].detach().clone().requires_grad_()]
    o, final = la_ops.chunk_linear_attn(q, k, v, initial_state=s[0] if s else None, chunk_size=16,
                                        backend="triton")
    ro, rfinal = la_ref.chunk_linear_attn(rq, rk, rv, initial_state=rs[0] if rs else None)
    tol = tolerance(dtype)
    assert o.dtype == dtype and final.dtype == torch.float32
    assert_close("o", o, ro, tol)
    assert_close("final_state", final, rfinal, tol)
    cot = [cotangent(o, gen), cotangent(final, gen)]
    names = ["dq", "dk", "dv", "dinitial_state"]
    for name, a, b in zip(names, grads([o, final], cot, [q, k, v, *s]),
                          grads([ro, rfinal], cot, [rq, rk, rv, *rs])):
        assert_close(name, a, b, tol)


def test_linear_attn_prefill_then_decode():
    B, T, H, K, V, prefill = 2, 23, 2, 32, 80, 19      # V = 80: two value blocks, the last ragged
    gen = torch.Generator().manual_seed(4)
    q, k, v = (t.to(DEVICE) for t in _linear_attn_inputs(B, T, H, K, V, gen))
    want, want_final = la_ref.recurrent_linear_attn(q, k, v)
    with torch.no_grad():
        o, state = la_ops.chunk_linear_attn(q[:, :prefill], k[:, :prefill], v[:, :prefill], backend="triton")
        outs = [o]
        for t in range(prefill, T):
            o_t, state = la_ops.recurrent_linear_attn(q[:, t:t + 1], k[:, t:t + 1], v[:, t:t + 1],
                                                      initial_state=state, backend="triton")
            outs.append(o_t)
    tol = tolerance(torch.float32)
    assert_close("o (prefill + decode)", torch.cat(outs, 1), want, tol)
    assert_close("state after decode", state, want_final, tol)


# ---------------------------------------------------------------- gated delta rule


def _gated_delta_inputs(B, T, H, K, V, gen):
    return [torch.randn(B, T, H, K, generator=gen),
            F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1),
            torch.randn(B, T, H, V, generator=gen),
            -F.softplus(torch.randn(B, T, H, generator=gen)),
            torch.rand(B, T, H, generator=gen)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("with_state", [False, True])
def test_gated_delta_forward_backward(dtype, with_state):
    B, T, H, K, V = 2, 37, 2, 16, 24
    gen = torch.Generator().manual_seed(5)
    tensors = _gated_delta_inputs(B, T, H, K, V, gen)
    (q, k, v, g, beta), (rq, rk, rv, rg, rbeta) = leaves(tensors, dtype)
    s = rs = []
    if with_state:
        s0 = torch.randn(B, H, K, V, generator=gen)
        s, rs = [s0.to(DEVICE).requires_grad_()], [s0.to(DEVICE).requires_grad_()]
    o, final = gd_ops.chunk_gated_delta_rule(q, k, v, g, beta, initial_state=s[0] if s else None,
                                             chunk_size=16, backend="triton")
    ro, rfinal = gd_ref.chunk_gated_delta_rule(rq, rk, rv, rg, rbeta, initial_state=rs[0] if rs else None)
    tol = tolerance(dtype)
    assert o.dtype == dtype and final.dtype == torch.float32
    assert type(o.grad_fn).__name__.startswith("ChunkGatedDeltaRuleFunction")
    assert_close("o", o, ro, tol)
    assert_close("final_state", final, rfinal, tol)
    cot = [cotangent(o, gen), cotangent(final, gen)]
    names = ["dq", "dk", "dv", "dg", "dbeta", "dinitial_state"]
    got = grads([o, final], cot, [q, k, v, g, beta, *s])
    want = grads([ro, rfinal], cot, [rq, rk, rv, rg, rbeta, *rs])
    for name, a, b in zip(names, got, want):
        assert_close(name, a, b, tol)


def test_gated_delta_default_chunk_of_64():
    # two chunks of 64 with a ragged tail (the blocked triangular inverse at full size) and
    # V = 80: several value blocks in every kernel, the last one ragged
    B, T, H, K, V = 1, 70, 1, 32, 80
    gen = torch.Generator().manual_seed(6)
    (q, k, v, g, beta), (rq, rk, rv, rg, rbeta) = leaves(_gated_delta_inputs(B, T, H, K, V, gen), torch.float32)
    o, final = gd_ops.chunk_gated_delta_rule(q, k, v, g, beta, backend="triton")
    ro, rfinal = gd_ref.recurrent_gated_delta_rule(rq, rk, rv, rg, rbeta)
    tol = tolerance(torch.float32)
    assert_close("o", o, ro, tol)
    assert_close("final_state", final, rfinal, tol)
    cot = cotangent(o, gen)
    for name, a, b in zip(["dq", "dk", "dv", "dg", "dbeta"], grads([o], [cot], [q, k, v, g, beta]),
                          grads([ro], [cot], [rq, rk, rv, rg, rbeta])):
        assert_close(name, a, b, tol)


def test_gated_delta_prefill_then_decode():
    B, T, H, K, V, prefill = 2, 20, 2, 16, 16, 18
    gen = torch.Generator().manual_seed(7)
    q, k, v, g, beta = (t.to(DEVICE) for t in _gated_delta_inputs(B, T, H, K, V, gen))
    want, want_final = gd_ref.recurrent_gated_delta_rule(q, k, v, g, beta)
    with torch.no_grad():
        o, state = gd_ops.chunk_gated_delta_rule(q[:, :prefill], k[:, :prefill], v[:, :prefill], g[:, :prefill],
                                                 beta[:, :prefill], backend="triton")
        outs = [o]
        for t in range(prefill, T):
            sl = slice(t, t + 1)
            o_t, state = gd_ops.recurrent_gated_delta_rule(q[:, sl], k[:, sl], v[:, sl], g[:, sl], beta[:, sl],
                                                           initial_state=state, backend="triton")
            outs.append(o_t)
    tol = tolerance(torch.float32)
    assert_close("o (prefill + decode)", torch.cat(outs, 1), want, tol)
    assert_close("state after decode", state, want_final, tol)
