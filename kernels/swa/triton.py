"""Triton kernels for causal sliding-window attention with grouped KV heads (forward, backward).

FlashAttention-style tiling (Dao et al. 2022/2023): the forward streams key blocks through
an online softmax and stores the row log-sum-exp; the backward recomputes the
probabilities from it. The window makes each query block touch only the key blocks in
``[start - window + 1, end]``, so the work is O(T * window) instead of O(T^2).

The backward is two kernels so that nothing needs atomics: one program per key block
accumulates dK and dV over every query head of its KV group and every query block that
can see it; one program per query block accumulates dQ. Layouts as in the reference:
q (B, H, T, D), k and v (B, Hkv, T, D), query head h reading KV head ``h // (H // Hkv)``.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from ..triton_common import INTERPRETED, mm

LOG2E = 1.4426950408889634
MAX_HEAD_DIM = 256


@triton.jit
def _swa_fwd_kernel(q_ptr, k_ptr, v_ptr, o_ptr, lse_ptr, T, H, HKV, D, window, qk_scale,
                    BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, F32: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    hk = h // (H // HKV)
    rm = pid_m * BM + tl.arange(0, BM)
    rd = tl.arange(0, BD)
    dm = rd < D
    q_base = q_ptr + (b * H + h) * T * D
    kv_off = (b * HKV + hk) * T * D
    q = tl.load(q_base + rm[:, None] * D + rd[None, :], mask=(rm[:, None] < T) & dm[None, :], other=0.0)

    m_i = tl.zeros((BM,), dtype=tl.float32) - float("inf")
    l_i = tl.zeros((BM,), dtype=tl.float32)
    acc = tl.zeros((BM, BD), dtype=tl.float32)
    lo = tl.maximum(pid_m * BM - window + 1, 0) // BN * BN
    hi = tl.minimum((pid_m + 1) * BM, T)
    for start_n in range(lo, hi, BN):
        rn = start_n + tl.arange(0, BN)
        k = tl.load(k_ptr + kv_off + rn[:, None] * D + rd[None, :], mask=(rn[:, None] < T) & dm[None, :], other=0.0)
        v = tl.load(v_ptr + kv_off + rn[:, None] * D + rd[None, :], mask=(rn[:, None] < T) & dm[None, :], other=0.0)
        s = mm(q, tl.trans(k), F32) * qk_scale
        allowed = (rn[None, :] <= rm[:, None]) & (rn[None, :] > rm[:, None] - window) & (rn[None, :] < T)
        s = tl.where(allowed, s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, 1))
        # a row may see no key in this block yet: keep exp2 away from (-inf) - (-inf)
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
        p = tl.math.exp2(s - m_safe[:, None])
        alpha = tl.math.exp2(m_i - m_safe)
        l_i = l_i * alpha + tl.sum(p, 1)
        acc = acc * alpha[:, None] + mm(p.to(v.dtype), v, F32)
        m_i = m_new
    l_safe = tl.where(l_i == 0.0, 1.0, l_i)
    out = acc / l_safe[:, None]
    tl.store(o_ptr + (b * H + h) * T * D + rm[:, None] * D + rd[None, :], out.to(o_ptr.dtype.element_ty),
             mask=(rm[:, None] < T) & dm[None, :])
    tl.store(lse_ptr + (b * H + h) * T + rm, m_i + tl.math.log2(l_safe), mask=rm < T)


@triton.jit
def _swa_bwd_dkdv_kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dk_ptr, dv_ptr,
                         T, H, HKV, D, window, qk_scale, sm_scale,
                         BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, F32: tl.constexpr):
    pid_n = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // HKV).to(tl.int64)
    hk = (pid_bh % HKV).to(tl.int64)
    G = H // HKV
    rn = pid_n * BN + tl.arange(0, BN)
    rd = tl.arange(0, BD)
    dm = rd < D
    nm = rn < T
    kv_off = (b * HKV + hk) * T * D
    k = tl.load(k_ptr + kv_off + rn[:, None] * D + rd[None, :], mask=nm[:, None] & dm[None, :], other=0.0)
    v = tl.load(v_ptr + kv_off + rn[:, None] * D + rd[None, :], mask=nm[:, None] & dm[None, :], other=0.0)
    dk = tl.zeros((BN, BD), dtype=tl.float32)
    dv = tl.zeros((BN, BD), dtype=tl.float32)
    # query rows that can see this key block: [start, end + window - 1]
    lo = (pid_n * BN) // BM * BM
    hi = tl.minimum((pid_n + 1) * BN + window - 1, T)
    for g in range(0, G):
        h = hk * G + g
        q_base = (b * H + h) * T * D
        r_base = (b * H + h) * T
        for start_m in range(lo, hi, BM):
            rm = start_m + tl.arange(0, BM)
            mmask = rm < T
            q = tl.load(q_ptr + q_base + rm[:, None] * D + rd[None, :], mask=mmask[:, None] & dm[None, :], other=0.0)
            do = tl.load(do_ptr + q_base + rm[:, None] * D + rd[None, :], mask=mmask[:, None] & dm[None, :],
                         other=0.0)
            lse = tl.load(lse_ptr + r_base + rm, mask=mmask, other=0.0)
            delta = tl.load(delta_ptr + r_base + rm, mask=mmask, other=0.0)
            # transposed scores: rows are keys, columns are queries
            st = mm(k, tl.trans(q), F32) * qk_scale
            allowed = (rn[:, None] <= rm[None, :]) & (rn[:, None] > rm[None, :] - window) & mmask[None, :] & nm[:, None]
            pt = tl.where(allowed, tl.math.exp2(st - lse[None, :]), 0.0)
            dv += mm(pt.to(do.dtype), do, F32)
            dpt = mm(v, tl.trans(do), F32)
            dst = pt * (dpt - delta[None, :])
            dk += mm(dst.to(q.dtype), q, F32)
    tl.store(dk_ptr + kv_off + rn[:, None] * D + rd[None, :], (dk * sm_scale).to(dk_ptr.dtype.element_ty),
             mask=nm[:, None] & dm[None, :])
    tl.store(dv_ptr + kv_off + rn[:, None] * D + rd[None, :], dv.to(dv_ptr.dtype.element_ty),
             mask=nm[:, None] & dm[None, :])


@triton.jit
def _swa_bwd_dq_kernel(q_ptr, k_ptr, v_ptr, do_ptr, lse_ptr, delta_ptr, dq_ptr,
                       T, H, HKV, D, window, qk_scale, sm_scale,
                       BM: tl.constexpr, BN: tl.constexpr, BD: tl.constexpr, F32: tl.constexpr):
    pid_m = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    hk = h // (H // HKV)
    rm = pid_m * BM + tl.arange(0, BM)
    rd = tl.arange(0, BD)
    dm = rd < D
    mmask = rm < T
    q_base = (b * H + h) * T * D
    kv_off = (b * HKV + hk) * T * D
    q = tl.load(q_ptr + q_base + rm[:, None] * D + rd[None, :], mask=mmask[:, None] & dm[None, :], other=0.0)
    do = tl.load(do_ptr + q_base + rm[:, None] * D + rd[None, :], mask=mmask[:, None] & dm[None, :], other=0.0)
    lse = tl.load(lse_ptr + (b * H + h) * T + rm, mask=mmask, other=0.0)
    delta = tl.load(delta_ptr + (b * H + h) * T + rm, mask=mmask, other=0.0)
    dq = tl.zeros((BM, BD), dtype=tl.float32)
    lo = tl.maximum(pid_m * BM - window + 1, 0) // BN * BN
    hi = tl.minimum((pid_m + 1) * BM, T)
    for start_n in range(lo, hi, BN):
        rn = start_n + tl.arange(0, BN)
        k = tl.load(k_ptr + kv_off + rn[:, None] * D + rd[None, :], mask=(rn[:, None] < T) & dm[None, :], other=0.0)
        v = tl.load(v_ptr + kv_off + rn[:, None] * D + rd[None, :], mask=(rn[:, None] < T) & dm[None, :], other=0.0)
        s = mm(q, tl.trans(k), F32) * qk_scale
        allowed = (rn[None, :] <= rm[:, None]) & (rn[None, :] > rm[:, None] - window) & (rn[None, :] < T)
        p = tl.where(allowed, tl.math.exp2(s - lse[:, None]), 0.0)
        dp = mm(do, tl.trans(v), F32)
        ds = p * (dp - delta[:, None])
        dq += mm(ds.to(k.dtype), k, F32)
    tl.store(dq_ptr + q_base + rm[:, None] * D + rd[None, :], (dq * sm_scale).to(dq_ptr.dtype.element_ty),
             mask=mmask[:, None] & dm[None, :])


def _blocks(device: torch.device) -> tuple[int, int]:
    # Small tiles under the interpreter keep tests fast and exercise many block boundaries.
    return (16, 16) if INTERPRETED or device.type != "cuda" else (64, 64)


class SlidingWindowAttnFunction(torch.autograd.Function):
    """Sliding-window attention with Triton forward and backward (grads for q, k, v)."""

    @staticmethod
    def forward(ctx, q, k, v, window: int, scale: float):
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        B, H, T, D = q.shape
        HKV = k.shape[1]
        BM, BN = _blocks(q.device)
        BD = max(16, triton.next_power_of_2(D))
        o = torch.empty_like(q)
        lse = torch.empty(B, H, T, dtype=torch.float32, device=q.device)
        _swa_fwd_kernel[(triton.cdiv(T, BM), B * H)](q, k, v, o, lse, T, H, HKV, D, window, scale * LOG2E,
                                                     BM=BM, BN=BN, BD=BD, F32=INTERPRETED)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.window, ctx.scale = window, scale
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        do = do.contiguous()
        B, H, T, D = q.shape
        HKV = k.shape[1]
        BM, BN = _blocks(q.device)
        BD = max(16, triton.next_power_of_2(D))
        delta = (o.float() * do.float()).sum(-1)          # rowsum(dO * O), (B, H, T)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        args = (T, H, HKV, D, ctx.window, ctx.scale * LOG2E, ctx.scale)
        _swa_bwd_dkdv_kernel[(triton.cdiv(T, BN), B * HKV)](q, k, v, do, lse, delta, dk, dv, *args,
                                                           BM=BM, BN=BN, BD=BD, F32=INTERPRETED)
        _swa_bwd_dq_kernel[(triton.cdiv(T, BM), B * H)](q, k, v, do, lse, delta, dq, *args,
                                                       BM=BM, BN=BN, BD=BD, F32=INTERPRETED)
        return dq, dk, dv, None, None


def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                             scale: float | None = None) -> torch.Tensor:
    """Triton version of :func:`edgesmith.kernels.swa.reference.sliding_window_attention`."""
    if window < 1:
        raise ValueError(f"window must be a positive integer, got {window}")
    if q.dim() != 4 or k.shape != v.shape or k.shape[0] != q.shape[0] or k.shape[2:] != q.shape[2:]:
        raise ValueError(f"q must be (B, H, T, D) and k, v (B, Hkv, T, D); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"query heads ({q.shape[1]}) must be a multiple of key/value heads ({k.shape[1]})")
    if q.shape[-1] > MAX_HEAD_DIM:
        raise ValueError(f"the Triton SWA kernel supports head_dim up to {MAX_HEAD_DIM}; got {q.shape[-1]}")
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if q.shape[2] == 0:
        return q.new_empty(q.shape) + 0 * (k.sum() + v.sum())   # keeps the graph connected
    # a window past the sequence is plain causal attention; clamping keeps index math in int32
    return SlidingWindowAttnFunction.apply(q, k, v, min(int(window), q.shape[2]), scale)
