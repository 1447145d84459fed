"""Triton kernels for the chunkwise gated delta rule (forward and backward).

Math (see the reference's docstring): per chunk of C tokens entered with state ``S0``,
with ``c`` the in-chunk cumulative log-decay, ``A_ij = beta_i exp(c_i - c_j) k_i.k_j``
(j < i), ``Tinv = (I + A)^-1``, ``W = Tinv diag(beta e^c) K`` and ``U~ = Tinv diag(beta) V``:

    U   = U~ - W S0                                  (the delta-rule "pseudo-values")
    O   = diag(e^c) Qs S0 + (Qs K^T * decay * causal) U          (Qs = scale * Q)
    S_C = e^{c_C} S0 + (diag(e^{c_C - c}) K)^T U

Forward, two kernels:

1. ``_prepare`` (parallel over chunks): cumulative decay, A, Tinv by forward substitution,
   W and U~. Nothing here depends on the state.
2. ``_forward`` (one program per batch x head x value block, chunks in order): the state
   hand-off above; keeps S in registers, writes O, and stores each chunk's entering state
   for the backward.

Backward, two kernels:

3. ``_state_grads`` (chunks in reverse): carries dS, writes each chunk's leaving-state
   gradient dS_C and ``dU = P^T dO + diag(e^{c_C - c}) K dS_C``.
4. ``_chunk_grads`` (parallel over chunks): every input gradient of one chunk from S0,
   dS_C and dU, going back through U = U~ - W S0, W and U~, the triangular inverse
   (``dA = -Tinv^T dTinv Tinv^T``), A, and finally the in-chunk cumsum of g.

Layouts follow the reference: q, k (B, T, H, K); v (B, T, H, V); g, beta (B, T, H); the
state (B, H, K, V) in float32.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..triton_common import INTERPRETED, mm

MAX_HEAD_DIM = 256
# The triangular inverse is the numerically delicate step: three TF32 passes give float32
# accuracy on tensor cores (plain TF32 keeps only 10 mantissa bits).
INVERSE_PRECISION = "tf32x3"


@triton.jit
def _prepare_kernel(k_ptr, v_ptr, g_ptr, beta_ptr, gc_ptr, w_ptr, u_ptr, tinv_ptr, T, H, K, V, NC,
                    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, F32: tl.constexpr,
                    PRECISION: tl.constexpr):
    pid_c = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    rows = tl.arange(0, C)
    t = pid_c * C + rows
    tm = t < T
    kk = tl.arange(0, BK)
    vv = tl.arange(0, BV)
    k_off = b * T * H * K + t[:, None] * (H * K) + h * K + kk[None, :]
    v_off = b * T * H * V + t[:, None] * (H * V) + h * V + vv[None, :]
    kmask = tm[:, None] & (kk[None, :] < K)
    vmask = tm[:, None] & (vv[None, :] < V)
    k = tl.load(k_ptr + k_off, mask=kmask, other=0.0)
    v = tl.load(v_ptr + v_off, mask=vmask, other=0.0).to(tl.float32)
    s_off = b * T * H + t * H + h
    g = tl.load(g_ptr + s_off, mask=tm, other=0.0).to(tl.float32)
    beta = tl.load(beta_ptr + s_off, mask=tm, other=0.0).to(tl.float32)
    gc = tl.cumsum(g, 0)
    tl.store(gc_ptr + s_off, gc, mask=tm)

    strict = rows[None, :] < rows[:, None]
    decay = tl.exp(tl.where(strict, gc[:, None] - gc[None, :], float("-inf")))
    A = beta[:, None] * mm(k, tl.trans(k), F32) * decay
    # Tinv = (I + A)^-1 in two steps, both made of C x C matmuls (tensor cores, not C serial
    # row updates): (1) forward substitution inside the 16 x 16 diagonal blocks, all blocks
    # at once: rows with in-block offset i are e_r - A_bd T; (2) with T_bd that block-diagonal
    # inverse and M = T_bd A_off (strictly block-lower, so M^(C/16) = 0):
    # (I + A)^-1 = (I + M)^-1 T_bd = (I - M + M^2 - ...) T_bd.
    eye = (rows[:, None] == rows[None, :]).to(tl.float32)
    same_block = (rows[:, None] // 16) == (rows[None, :] // 16)
    a_diag = tl.where(same_block, A, 0.0)
    a_off = tl.where(same_block, 0.0, A)
    tinv = eye
    for i in range(1, 16):
        update = eye - tl.dot(a_diag, tinv, input_precision=PRECISION)
        tinv = tl.where((rows % 16 == i)[:, None], update, tinv)
    m = tl.dot(tinv, a_off, input_precision=PRECISION)
    term = tinv
    for _ in range(1, C // 16):
        term = -tl.dot(m, term, input_precision=PRECISION)
        tinv += term
    tl.store(tinv_ptr + ((b * H + h) * NC + pid_c) * C * C + rows[:, None] * C + rows[None, :], tinv)

    x = (beta * tl.exp(gc))[:, None] * k.to(tl.float32)
    y = beta[:, None] * v
    w = tl.dot(tinv, x)
    u = tl.dot(tinv, y)
    tl.store(w_ptr + k_off, w.to(w_ptr.dtype.element_ty), mask=kmask)
    tl.store(u_ptr + v_off, u.to(u_ptr.dtype.element_ty), mask=vmask)


@triton.jit
def _forward_kernel(q_ptr, k_ptr, w_ptr, u_ptr, gc_ptr, s0_ptr, o_ptr, hs_ptr, sT_ptr, T, H, K, V, NC, scale,
                    C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, HAS_INIT: tl.constexpr,
                    STORE_FINAL: tl.constexpr, F32: tl.constexpr):
    pid_v = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    rows = tl.arange(0, C)
    kk = tl.arange(0, BK)
    vv = pid_v * BV + tl.arange(0, BV)
    km = kk < K
    vm = vv < V
    causal = rows[None, :] <= rows[:, None]
    state_off = kk[:, None] * V + vv[None, :]
    smask = km[:, None] & vm[None, :]
    S = tl.zeros((BK, BV), dtype=tl.float32)
    if HAS_INIT:
        S += tl.load(s0_ptr + (b * H + h) * K * V + state_off, mask=smask, other=0.0).to(tl.float32)
    for c in range(0, NC):
        t = c * C + rows
        tm = t < T
        tl.store(hs_ptr + ((b * H + h) * NC + c) * K * V + state_off, S.to(hs_ptr.dtype.element_ty), mask=smask)
        k_off = b * T * H * K + t[:, None] * (H * K) + h * K + kk[None, :]
        v_off = b * T * H * V + t[:, None] * (H * V) + h * V + vv[None, :]
        kmask = tm[:, None] & km[None, :]
        vmask = tm[:, None] & vm[None, :]
        q = tl.load(q_ptr + k_off, mask=kmask, other=0.0)
        k = tl.load(k_ptr + k_off, mask=kmask, other=0.0)
        w = tl.load(w_ptr + k_off, mask=kmask, other=0.0)
        u_tilde = tl.load(u_ptr + v_off, mask=vmask, other=0.0).to(tl.float32)
        gc = tl.load(gc_ptr + b * T * H + t * H + h, mask=tm, other=0.0)
        last = tl.minimum(T - c * C, C) - 1
        g_last = tl.load(gc_ptr + b * T * H + (c * C + last) * H + h)
        S_in = S.to(q.dtype)
        u = u_tilde - mm(w, S_in, F32)
        decay = tl.exp(tl.where(causal, gc[:, None] - gc[None, :], float("-inf")))
        p = mm(q, tl.trans(k), F32) * decay
        o = (mm(q, S_in, F32) * tl.exp(gc)[:, None] + mm(p.to(q.dtype), u.to(q.dtype), F32)) * scale
        tl.store(o_ptr + v_off, o.to(o_ptr.dtype.element_ty), mask=vmask)
        k_end = (k.to(tl.float32) * tl.exp(g_last - gc)[:, None]).to(k.dtype)
        S = S * tl.exp(g_last) + mm(tl.trans(k_end), u.to(k.dtype), F32)
    if STORE_FINAL:
        tl.store(sT_ptr + (b * H + h) * K * V + state_off, S, mask=smask)


@triton.jit
def _state_grads_kernel(q_ptr, k_ptr, w_ptr, gc_ptr, do_ptr, dsT_ptr, dhs_ptr, du_ptr, ds0_ptr,
                        T, H, K, V, NC, scale, C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                        HAS_DFINAL: tl.constexpr, F32: tl.constexpr):
    pid_v = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    rows = tl.arange(0, C)
    kk = tl.arange(0, BK)
    vv = pid_v * BV + tl.arange(0, BV)
    km = kk < K
    vm = vv < V
    causal = rows[None, :] <= rows[:, None]
    state_off = kk[:, None] * V + vv[None, :]
    smask = km[:, None] & vm[None, :]
    dS = tl.zeros((BK, BV), dtype=tl.float32)
    if HAS_DFINAL:
        dS += tl.load(dsT_ptr + (b * H + h) * K * V + state_off, mask=smask, other=0.0).to(tl.float32)
    for n in range(0, NC):
        c = NC - 1 - n
        t = c * C + rows
        tm = t < T
        tl.store(dhs_ptr + ((b * H + h) * NC + c) * K * V + state_off, dS.to(dhs_ptr.dtype.element_ty), mask=smask)
        k_off = b * T * H * K + t[:, None] * (H * K) + h * K + kk[None, :]
        v_off = b * T * H * V + t[:, None] * (H * V) + h * V + vv[None, :]
        kmask = tm[:, None] & km[None, :]
        vmask = tm[:, None] & vm[None, :]
        q = tl.load(q_ptr + k_off, mask=kmask, other=0.0)
        k = tl.load(k_ptr + k_off, mask=kmask, other=0.0)
        w = tl.load(w_ptr + k_off, mask=kmask, other=0.0)
        do = tl.load(do_ptr + v_off, mask=vmask, other=0.0)
        gc = tl.load(gc_ptr + b * T * H + t * H + h, mask=tm, other=0.0)
        last = tl.minimum(T - c * C, C) - 1
        g_last = tl.load(gc_ptr + b * T * H + (c * C + last) * H + h)
        decay = tl.exp(tl.where(causal, gc[:, None] - gc[None, :], float("-inf")))
        p = mm(q, tl.trans(k), F32) * decay * scale
        k_end = (k.to(tl.float32) * tl.exp(g_last - gc)[:, None]).to(k.dtype)
        du = mm(tl.trans(p.to(do.dtype)), do, F32) + mm(k_end, dS.to(k.dtype), F32)
        tl.store(du_ptr + v_off, du, mask=vmask)
        q_dec = (q.to(tl.float32) * (tl.exp(gc) * scale)[:, None]).to(q.dtype)
        dS = dS * tl.exp(g_last) + mm(tl.trans(q_dec), do, F32) - mm(tl.trans(w), du.to(w.dtype), F32)
    tl.store(ds0_ptr + (b * H + h) * K * V + state_off, dS, mask=smask)


@triton.jit
def _chunk_grads_kernel(q_ptr, k_ptr, v_ptr, gc_ptr, beta_ptr, tinv_ptr, w_ptr, u_ptr, hs_ptr, dhs_ptr, du_ptr,
                        do_ptr, dq_ptr, dk_ptr, dv_ptr, dg_ptr, dbeta_ptr, T, H, K, V, NC, scale,
                        C: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    # Everything here is float32: the chunk's matrices are small and the gradient through
    # the triangular inverse is the numerically delicate part. The value dimension is
    # walked in blocks of BV, accumulating what sums over it, so no (K, V) tile is whole.
    pid_c = tl.program_id(0)
    pid_bh = tl.program_id(1)
    b = (pid_bh // H).to(tl.int64)
    h = (pid_bh % H).to(tl.int64)
    rows = tl.arange(0, C)
    t = pid_c * C + rows
    tm = t < T
    kk = tl.arange(0, BK)
    km = kk < K
    k_off = b * T * H * K + t[:, None] * (H * K) + h * K + kk[None, :]
    kmask = tm[:, None] & km[None, :]
    s_off = b * T * H + t * H + h

    qs = tl.load(q_ptr + k_off, mask=kmask, other=0.0).to(tl.float32) * scale
    k = tl.load(k_ptr + k_off, mask=kmask, other=0.0).to(tl.float32)
    w = tl.load(w_ptr + k_off, mask=kmask, other=0.0).to(tl.float32)
    gc = tl.load(gc_ptr + s_off, mask=tm, other=0.0)
    beta = tl.load(beta_ptr + s_off, mask=tm, other=0.0).to(tl.float32)
    tinv = tl.load(tinv_ptr + ((b * H + h) * NC + pid_c) * C * C + rows[:, None] * C + rows[None, :])
    last = tl.minimum(T - pid_c * C, C) - 1
    g_last = tl.load(gc_ptr + b * T * H + (pid_c * C + last) * H + h)
    causal = rows[None, :] <= rows[:, None]
    strict = rows[None, :] < rows[:, None]
    decay = tl.exp(tl.where(causal, gc[:, None] - gc[None, :], float("-inf")))
    e_g = tl.exp(gc)
    e_end = tl.exp(g_last - gc)

    do_s0 = tl.zeros((C, BK), dtype=tl.float32)     # dO S0^T
    u_ds = tl.zeros((C, BK), dtype=tl.float32)      # U dS_C^T: row j is dS_C u_j
    dw = tl.zeros((C, BK), dtype=tl.float32)        # dW = -dU S0^T
    dp = tl.zeros((C, C), dtype=tl.float32)         # dO U^T
    dtinv = tl.zeros((C, C), dtype=tl.float32)      # dU Y^T (the dW X^T part is added below)
    dbeta = tl.zeros((C,), dtype=tl.float32)
    s0_dsc = tl.zeros((C,), dtype=tl.float32)       # <S0, dS_C>, kept as a vector, summed at the end
    state_base = ((b * H + h) * NC + pid_c) * K * V
    for v0 in range(0, V, BV):
        vv = v0 + tl.arange(0, BV)
        vm = vv < V
        v_off = b * T * H * V + t[:, None] * (H * V) + h * V + vv[None, :]
        vmask = tm[:, None] & vm[None, :]
        smask = km[:, None] & vm[None, :]
        state_off = state_base + kk[:, None] * V + vv[None, :]
        v = tl.load(v_ptr + v_off, mask=vmask, other=0.0).to(tl.float32)
        u_tilde = tl.load(u_ptr + v_off, mask=vmask, other=0.0).to(tl.float32)
        du = tl.load(du_ptr + v_off, mask=vmask, other=0.0)
        do = tl.load(do_ptr + v_off, mask=vmask, other=0.0).to(tl.float32)
        s0 = tl.load(hs_ptr + state_off, mask=smask, other=0.0).to(tl.float32)
        dsc = tl.load(dhs_ptr + state_off, mask=smask, other=0.0).to(tl.float32)
        u = u_tilde - tl.dot(w, s0)
        do_s0 += tl.dot(do, tl.trans(s0))
        dp += tl.dot(do, tl.trans(u))
        u_ds += tl.dot(u, tl.trans(dsc))
        s0_dsc += tl.where(rows == 0, tl.sum(tl.sum(s0 * dsc, 1), 0), 0.0)
        dw -= tl.dot(du, tl.trans(s0))
        # U~ = Tinv Y with Y = diag(beta) V
        y = beta[:, None] * v
        dtinv += tl.dot(du, tl.trans(y))
        dy = tl.dot(tl.trans(tinv), du)
        dbeta += tl.sum(dy * v, 1)
        tl.store(dv_ptr + v_off, (beta[:, None] * dy).to(dv_ptr.dtype.element_ty), mask=vmask)

    # O = diag(e^c) Qs S0 + P U, with P = (Qs K^T) * decay
    dqs = do_s0 * e_g[:, None]
    dgam = tl.sum(dqs * qs, 1)
    p = tl.dot(qs, tl.trans(k)) * decay
    dp = tl.where(causal, dp, 0.0)
    dpd = dp * decay
    dqs += tl.dot(dpd, k)
    dk = tl.dot(tl.trans(dpd), qs)
    dpp = dp * p
    dgam += tl.sum(dpp, 1) - tl.sum(dpp, 0)

    # S_C = e^{c_C} S0 + (diag(e^{c_C - c}) K)^T U
    dk += u_ds * e_end[:, None]
    t_j = tl.sum(k * u_ds, 1) * e_end
    dgam -= t_j
    d_last = tl.exp(g_last) * tl.sum(s0_dsc, 0) + tl.sum(t_j, 0)
    dgam += tl.where(rows == last, d_last, 0.0)

    # W = Tinv X with X = diag(beta e^c) K
    x = (beta * e_g)[:, None] * k
    dtinv += tl.dot(dw, tl.trans(x))
    dx = tl.dot(tl.trans(tinv), dw)
    dx_k = tl.sum(dx * k, 1)
    dbeta += e_g * dx_k
    dk += (beta * e_g)[:, None] * dx
    dgam += beta * e_g * dx_k

    # Tinv = (I + A)^-1  =>  dA = -Tinv^T dTinv Tinv^T on the strict lower triangle
    da = -tl.dot(tl.dot(tl.trans(tinv), dtinv), tl.trans(tinv))
    da = tl.where(strict, da, 0.0)
    kk_mat = tl.dot(k, tl.trans(k))
    sdecay = tl.where(strict, decay, 0.0)
    gmat = da * sdecay                                        # dL/d(beta_i kk_ij)
    dbeta += tl.sum(gmat * kk_mat, 1)
    gb = beta[:, None] * gmat                                 # dL/d(kk_ij)
    dk += tl.dot(gb, k) + tl.dot(tl.trans(gb), k)
    a_mat = beta[:, None] * kk_mat * sdecay
    daa = da * a_mat
    dgam += tl.sum(daa, 1) - tl.sum(daa, 0)

    # c = cumsum(g) inside the chunk  =>  dg_t = sum_{s >= t} dc_s (over real tokens only)
    dgam = tl.where(tm, dgam, 0.0)
    dg = tl.cumsum(dgam, 0, reverse=True)

    tl.store(dq_ptr + k_off, (dqs * scale).to(dq_ptr.dtype.element_ty), mask=kmask)
    tl.store(dk_ptr + k_off, dk.to(dk_ptr.dtype.element_ty), mask=kmask)
    tl.store(dg_ptr + s_off, dg.to(dg_ptr.dtype.element_ty), mask=tm)
    tl.store(dbeta_ptr + s_off, dbeta.to(dbeta_ptr.dtype.element_ty), mask=tm)


def _sizes(q: torch.Tensor, v: torch.Tensor) -> tuple[int, int, int, int]:
    K, V = q.shape[-1], v.shape[-1]
    if K > MAX_HEAD_DIM or V > MAX_HEAD_DIM:
        raise ValueError(f"the Triton gated delta kernels support head dims up to {MAX_HEAD_DIM}; "
                         f"got K={K}, V={V} (use backend='torch')")
    BK = max(16, triton.next_power_of_2(K))
    BVF = max(16, triton.next_power_of_2(V))
    BV = min(32, BVF)
    return BK, BVF, BV, triton.cdiv(V, BV)


class ChunkGatedDeltaRuleFunction(torch.autograd.Function):
    """Chunkwise gated delta rule with Triton forward and backward; returns (o, final_state)."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, scale: float, initial_state, chunk_size: int):
        q, k, v, g, beta = (x.contiguous() for x in (q, k, v, g, beta))
        B, T, H, K = q.shape
        V = v.shape[-1]
        C = chunk_size
        NC = triton.cdiv(T, C)
        BK, BVF, BV, NV = _sizes(q, v)
        dev = q.device
        gc = torch.empty(B, T, H, dtype=torch.float32, device=dev)
        w = torch.empty_like(k)
        u = torch.empty_like(v)
        tinv = torch.empty(B, H, NC, C, C, dtype=torch.float32, device=dev)
        _prepare_kernel[(NC, B * H)](k, v, g, beta, gc, w, u, tinv, T, H, K, V, NC,
                                     C=C, BK=BK, BV=BVF, F32=INTERPRETED, PRECISION=INVERSE_PRECISION)
        o = torch.empty_like(v)
        hs = torch.empty(B, H, NC, K, V, dtype=k.dtype, device=dev)
        final = torch.empty(B, H, K, V, dtype=torch.float32, device=dev)
        init = initial_state.contiguous() if initial_state is not None else final
        _forward_kernel[(NV, B * H)](q, k, w, u, gc, init, o, hs, final, T, H, K, V, NC, scale,
                                     C=C, BK=BK, BV=BV, HAS_INIT=initial_state is not None,
                                     STORE_FINAL=True, F32=INTERPRETED)
        ctx.save_for_backward(q, k, v, beta, gc, w, u, tinv, hs, initial_state)
        ctx.scale, ctx.chunk_size, ctx.g_dtype = scale, C, g.dtype
        return o, final

    @staticmethod
    def backward(ctx, do, dfinal):
        q, k, v, beta, gc, w, u, tinv, hs, initial_state = ctx.saved_tensors
        B, T, H, K = q.shape
        V = v.shape[-1]
        C = ctx.chunk_size
        NC = triton.cdiv(T, C)
        BK, BVF, BV, NV = _sizes(q, v)
        do = do.contiguous()
        dev = q.device
        dhs = torch.empty(B, H, NC, K, V, dtype=k.dtype, device=dev)
        du = torch.empty(B, T, H, V, dtype=torch.float32, device=dev)
        ds0 = torch.empty(B, H, K, V, dtype=torch.float32, device=dev)
        dsT = dfinal.float().contiguous() if dfinal is not None else ds0
        _state_grads_kernel[(NV, B * H)](q, k, w, gc, do, dsT, dhs, du, ds0, T, H, K, V, NC, ctx.scale,
                                         C=C, BK=BK, BV=BV, HAS_DFINAL=dfinal is not None, F32=INTERPRETED)
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        dg = torch.empty(B, T, H, dtype=torch.float32, device=dev)
        dbeta = torch.empty(B, T, H, dtype=torch.float32, device=dev)
        _chunk_grads_kernel[(NC, B * H)](q, k, v, gc, beta, tinv, w, u, hs, dhs, du, do,
                                         dq, dk, dv, dg, dbeta, T, H, K, V, NC, ctx.scale,
                                         C=C, BK=BK, BV=min(BVF, 64), num_warps=8)
        dinit = None
        if initial_state is not None and ctx.needs_input_grad[6]:
            dinit = ds0.to(initial_state.dtype)
        return dq, dk, dv, dg.to(ctx.g_dtype), dbeta.to(beta.dtype), None, dinit, None


def chunk_gated_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                           beta: torch.Tensor, scale: float | None = None,
                           initial_state: torch.Tensor | None = None, output_final_state: bool = True,
                           chunk_size: int = 64) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Triton version of :func:`edgesmith.kernels.gated_delta.reference.chunk_gated_delta_rule`.

    The chunk size only changes the work split, not the result; it is rounded to a power
    of two in [16, 64] (the tile sizes the kernels are built for).
    """
    if q.dim() != 4 or q.shape != k.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k must be (B, T, H, K) and v (B, T, H, V); got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    if g.shape != q.shape[:3] or beta.shape != q.shape[:3]:
        raise ValueError(f"g and beta must be (B, T, H)={tuple(q.shape[:3])}; got g {tuple(g.shape)}, "
                         f"beta {tuple(beta.shape)}")
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    C = min(64, max(16, triton.next_power_of_2(chunk_size)))
    if q.shape[1] == 0:
        from .reference import chunk_gated_delta_rule as reference
        return reference(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size)
    o, final = ChunkGatedDeltaRuleFunction.apply(q, k, v, g, beta, scale, initial_state, C)
    return o, (final if output_final_state else None)

