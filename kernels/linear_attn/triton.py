"""Triton kernel for chunkwise causal linear attention (forward and backward).

One program per (value block, batch x head) walks the chunks in order, keeping the (K, BV)
state in registers: per chunk ``O = scale * (Q S + (Q K^T * causal) V)`` and ``S += K^T V``.

The backward needs no kernel of its own: each input gradient is itself a causal linear
attention, forward or time-reversed, over the same tensors with roles swapped
(``o_t = scale * q_t^T S_t``, ``S_t = S_0 + sum_{s<=t} k_s v_s^T``):

- ``dq_t = scale * sum_{s<=t} (do_t . v_s) k_s + scale * S_0 do_t``  -> forward with (do, v, k), state S_0^T
- ``dk_s = scale * sum_{t>=s} (v_s . do_t) q_t + dS_T v_s``            -> reversed with (v, do, q), state dS_T^T / scale
- ``dv_s = scale * sum_{t>=s} (k_s . q_t) do_t + dS_T^T k_s``          -> reversed with (k, q, do), state dS_T / scale
- ``dS_0 = dS_T + scale * sum_t q_t do_t^T``                            -> scale * final state of the dv pass

so the three passes reuse the one kernel. Layouts follow the reference: q, k (B, T, H, K),
v (B, T, H, V), state (B, H, K, V) in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..triton_common import INTERPRETED, mm

MAX_HEAD_DIM = 256


@triton.jit
def _linear_attn_kernel(q_ptr, k_ptr, v_ptr, s0_ptr, o_ptr, sT_ptr, T, H, K, V, scale, state_scale,
                        C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, REVERSE: tl.constexpr,
                        HAS_INIT: tl.constexpr, STORE_FINAL: tl.constexpr,
                        F32: tl.constexpr):
    pid_v = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    kk = tl.arange(0, BK)
    vv = pid_v * BV + tl.arange(0, BV)
    km = kk < K
    vm = vv < V
    rows = tl.arange(0, C)
    if REVERSE:
        keep = rows[None, :] >= rows[:, None]   # position i sees j >= i
    else:
        keep = rows[None, :] <= rows[:, None]   # position i sees j <= i

    state_off = (b * H + h) * K * V + kk[:, None] * V + vv[None, :]
    S = tl.zeros((BK, BV), dtype=tl.float32)
    if HAS_INIT:
        S += tl.load(s0_ptr + state_off, mask=km[:, None] & vm[None, :], other=0.0).to(tl.float32) * state_scale

    qk_base = b * T * H * K + h * K
    v_base = b * T * H * V + h * V
    n_chunks = tl.cdiv(T, C)
    for n in range(0, n_chunks):
        if REVERSE:
            c = n_chunks - 1 - n
        else:
            c = n
        t = c * C + rows
        tm = t < T
        q = tl.load(q_ptr + qk_base + t[:, None] * (H * K) + kk[None, :], mask=tm[:, None] & km[None, :], other=0.0)
        k = tl.load(k_ptr + qk_base + t[:, None] * (H * K) + kk[None, :], mask=tm[:, None] & km[None, :], other=0.0)
        v = tl.load(v_ptr + v_base + t[:, None] * (H * V) + vv[None, :], mask=tm[:, None] & vm[None, :], other=0.0)
        scores = mm(q, tl.trans(k), F32)
        scores = tl.where(keep, scores, 0.0)
        out = mm(q, S.to(q.dtype), F32) + mm(scores.to(v.dtype), v, F32)
        tl.store(o_ptr + v_base + t[:, None] * (H * V) + vv[None, :], (out * scale).to(o_ptr.dtype.element_ty),
                 mask=tm[:, None] & vm[None, :])
        S += mm(tl.trans(k), v, F32)
    if STORE_FINAL:
        tl.store(sT_ptr + state_off, S, mask=km[:, None] & vm[None, :])


def _run(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, initial_state: torch.Tensor | None,
         state_scale: float, reverse: bool, want_final: bool, chunk_size: int,
         out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor | None]:
    B, T, H, K = q.shape
    V = v.shape[-1]
    if K > MAX_HEAD_DIM or V > MAX_HEAD_DIM:
        raise ValueError(f"the Triton linear attention kernel supports head dims up to {MAX_HEAD_DIM}; "
                         f"got K={K}, V={V} (use backend='torch')")
    q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
    o = torch.empty(B, T, H, V, dtype=out_dtype, device=q.device)
    final = torch.empty(B, H, K, V, dtype=torch.float32, device=q.device) if want_final else o
    init = initial_state.contiguous() if initial_state is not None else o
    BK = max(16, triton.next_power_of_2(K))
    BV = min(64, max(16, triton.next_power_of_2(V)))
    grid = (triton.cdiv(V, BV), B * H)
    _linear_attn_kernel[grid](q, k, v, init, o, final, T, H, K, V, float(scale), float(state_scale),
                              C=chunk_size, BK=BK, BV=BV, REVERSE=reverse,
                              HAS_INIT=initial_state is not None, STORE_FINAL=want_final,
                              F32=INTERPRETED)
    return o, (final if want_final else None)


class ChunkLinearAttnFunction(torch.autograd.Function):
    """Chunkwise linear attention with Triton forward and backward; returns (o, final_state)."""

    @staticmethod
    def forward(ctx, q, k, v, scale: float, initial_state, chunk_size: int):
        o, final = _run(q, k, v, scale, initial_state, 1.0, False, True, chunk_size, v.dtype)
        ctx.save_for_backward(q, k, v, initial_state)
        ctx.scale, ctx.chunk_size = scale, chunk_size
        return o, final

    @staticmethod
    def backward(ctx, do, dfinal):
        q, k, v, initial_state = ctx.saved_tensors
        scale, C = ctx.scale, ctx.chunk_size
        do = do.contiguous()
        init_t = None if initial_state is None else initial_state.float().transpose(-1, -2)
        dq, _ = _run(do, v, k, scale, init_t, 1.0, False, False, C, q.dtype)
        if dfinal is not None:
            dfinal = dfinal.float()
        # the reversed passes start from dS_T / scale because the kernel scales the whole read-out
        inv = 1.0 / scale
        dk, _ = _run(v, do, q, scale, None if dfinal is None else dfinal.transpose(-1, -2), inv,
                     True, False, C, k.dtype)
        dv, s_back = _run(k, q, do, scale, dfinal, inv, True, True, C, v.dtype)
        dinit = None
        if initial_state is not None and ctx.needs_input_grad[4]:
            dinit = (s_back * scale).to(initial_state.dtype)
        return dq, dk, dv, None, dinit, None


def chunk_linear_attn(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
                      initial_state: torch.Tensor | None = None, output_final_state: bool = True,
                      chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton version of :func:`edgesmith.kernels.linear_attn.reference.chunk_linear_attn`.

    The chunk size only changes the work split, not the result; it is rounded to a power
    of two in [16, 64] (the tile sizes the kernel is built for).
    """
    K = q.shape[-1]
    scale = K ** -0.5 if scale is None else float(scale)
    if scale == 0.0:
        raise ValueError("scale must be non-zero for the Triton linear attention backward")
    C = max(16, triton.next_power_of_2(chunk_size))
    C = min(C, 64)
    o, final = ChunkLinearAttnFunction.apply(q, k, v, scale, initial_state, C)
    return o, (final if output_final_state else None)
