"""Triton kernels for the causal depthwise convolution (forward, backward, decode step).

Layout as in the reference: ``x`` (B, D, T) contiguous in time, ``weight`` (D, L), state
(B, D, L-1) holding the last L-1 inputs. Work is tiled over (batch, channel block, time
block); every tap of the short filter is one shifted, masked load, so each input element
is read L times from cache and written once: the op is memory bound and the tiles are
sized for bandwidth. Arithmetic is float32; outputs come back in x's dtype.

Importing this module needs a working ``triton``; :mod:`edgesmith.kernels.short_conv.ops`
imports it only after the backend check.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

# Read by kernels/backend.py (module attribute): whether this module's kernels were built interpreted.
from ..triton_common import INTERPRETED  # noqa: F401

BLOCK_D = 16
BLOCK_T = 128


@triton.jit
def _conv_fwd_kernel(x_ptr, w_ptr, s_ptr, y_ptr, D, T,
                     L: tl.constexpr, HAS_STATE: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr):
    pid_b = tl.program_id(0).to(tl.int64)  # offsets past 2**31 elements stay exact
    pid_d = tl.program_id(1)
    pid_t = tl.program_id(2)
    d = pid_d * BD + tl.arange(0, BD)
    t = pid_t * BT + tl.arange(0, BT)
    dm = d < D
    acc = tl.zeros((BD, BT), dtype=tl.float32)
    x_base = x_ptr + pid_b * D * T + d[:, None] * T
    s_base = s_ptr + pid_b * D * (L - 1) + d[:, None] * (L - 1)
    for i in tl.static_range(L):
        # tap i reads x_ext[t + i] = x[t + i - (L - 1)], falling back to the state before time 0
        src = t + i - (L - 1)
        w = tl.load(w_ptr + d * L + i, mask=dm, other=0.0).to(tl.float32)
        xv = tl.load(x_base + src[None, :], mask=dm[:, None] & (src[None, :] >= 0) & (src[None, :] < T),
                     other=0.0).to(tl.float32)
        if HAS_STATE:
            sv = tl.load(s_base + (src[None, :] + (L - 1)),
                         mask=dm[:, None] & (src[None, :] < 0) & (src[None, :] + (L - 1) >= 0),
                         other=0.0).to(tl.float32)
            xv += sv
        acc += w[:, None] * xv
    tl.store(y_ptr + pid_b * D * T + d[:, None] * T + t[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=dm[:, None] & (t[None, :] < T))


@triton.jit
def _conv_bwd_input_kernel(dy_ptr, w_ptr, dx_ptr, ds_ptr, D, T,
                           L: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr):
    # Positions p index the extended input x_ext = [state, x] (length T + L - 1):
    # d x_ext[p] = sum_i w_i dy[p - i]. p < L - 1 is the initial state, the rest is x.
    pid_b = tl.program_id(0).to(tl.int64)  # offsets past 2**31 elements stay exact
    pid_d = tl.program_id(1)
    pid_t = tl.program_id(2)
    d = pid_d * BD + tl.arange(0, BD)
    p = pid_t * BT + tl.arange(0, BT)
    dm = d < D
    acc = tl.zeros((BD, BT), dtype=tl.float32)
    dy_base = dy_ptr + pid_b * D * T + d[:, None] * T
    for i in tl.static_range(L):
        src = p - i
        w = tl.load(w_ptr + d * L + i, mask=dm, other=0.0).to(tl.float32)
        g = tl.load(dy_base + src[None, :], mask=dm[:, None] & (src[None, :] >= 0) & (src[None, :] < T),
                    other=0.0).to(tl.float32)
        acc += w[:, None] * g
    tx = p - (L - 1)
    tl.store(dx_ptr + pid_b * D * T + d[:, None] * T + tx[None, :], acc.to(dx_ptr.dtype.element_ty),
             mask=dm[:, None] & (tx[None, :] >= 0) & (tx[None, :] < T))
    tl.store(ds_ptr + pid_b * D * (L - 1) + d[:, None] * (L - 1) + p[None, :], acc.to(ds_ptr.dtype.element_ty),
             mask=dm[:, None] & (p[None, :] < L - 1))


@triton.jit
def _conv_bwd_weight_kernel(x_ptr, s_ptr, dy_ptr, dw_ptr, D, T, NT,
                            L: tl.constexpr, HAS_STATE: tl.constexpr, BD: tl.constexpr, BT: tl.constexpr):
    # Partial dw for one (batch, time block): dw[d, i] = sum_t dy[t] * x_ext[t + i]; the
    # partials are summed by the caller, which keeps the kernel free of atomics.
    pid_b = tl.program_id(0).to(tl.int64)  # offsets past 2**31 elements stay exact
    pid_d = tl.program_id(1)
    pid_t = tl.program_id(2)
    d = pid_d * BD + tl.arange(0, BD)
    t = pid_t * BT + tl.arange(0, BT)
    dm = d < D
    tm = t < T
    g = tl.load(dy_ptr + pid_b * D * T + d[:, None] * T + t[None, :], mask=dm[:, None] & tm[None, :],
                other=0.0).to(tl.float32)
    x_base = x_ptr + pid_b * D * T + d[:, None] * T
    s_base = s_ptr + pid_b * D * (L - 1) + d[:, None] * (L - 1)
    out = dw_ptr + ((pid_b * NT + pid_t) * D + d) * L
    for i in tl.static_range(L):
        src = t + i - (L - 1)
        xv = tl.load(x_base + src[None, :], mask=dm[:, None] & (src[None, :] >= 0) & (src[None, :] < T),
                     other=0.0).to(tl.float32)
        if HAS_STATE:
            xv += tl.load(s_base + (src[None, :] + (L - 1)),
                          mask=dm[:, None] & (src[None, :] < 0) & (src[None, :] + (L - 1) >= 0),
                          other=0.0).to(tl.float32)
        tl.store(out + i, tl.sum(g * xv, axis=1), mask=dm)


@triton.jit
def _conv_step_kernel(x_ptr, s_ptr, w_ptr, y_ptr, ns_ptr, D,
                      L: tl.constexpr, LP: tl.constexpr, BD: tl.constexpr):
    # One decode step: window = [state, x_t]; y = window . w; new state = window[1:].
    pid_b = tl.program_id(0).to(tl.int64)  # offsets past 2**31 elements stay exact
    pid_d = tl.program_id(1)
    d = pid_d * BD + tl.arange(0, BD)
    j = tl.arange(0, LP)
    dm = d < D
    in_state = j < L - 1
    sv = tl.load(s_ptr + pid_b * D * (L - 1) + d[:, None] * (L - 1) + j[None, :],
                 mask=dm[:, None] & in_state[None, :], other=0.0)
    xv = tl.load(x_ptr + pid_b * D + d, mask=dm, other=0.0)
    window = tl.where(j[None, :] == L - 1, xv[:, None].to(tl.float32), sv.to(tl.float32))
    w = tl.load(w_ptr + d[:, None] * L + j[None, :], mask=dm[:, None] & (j[None, :] < L), other=0.0).to(tl.float32)
    y = tl.sum(window * w, axis=1)
    tl.store(y_ptr + pid_b * D + d, y.to(y_ptr.dtype.element_ty), mask=dm)
    # new_state[j - 1] = window[j] for j = 1 .. L - 1
    tl.store(ns_ptr + pid_b * D * (L - 1) + d[:, None] * (L - 1) + (j[None, :] - 1),
             window.to(ns_ptr.dtype.element_ty), mask=dm[:, None] & (j[None, :] >= 1) & (j[None, :] < L))


def _grid(B: int, D: int, length: int) -> tuple[int, int, int]:
    return (B, triton.cdiv(D, BLOCK_D), triton.cdiv(length, BLOCK_T))


class CausalConv1dFunction(torch.autograd.Function):
    """Causal depthwise conv ``y`` with Triton forward and backward (grads for x, weight, initial state)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, initial_state: torch.Tensor | None) -> torch.Tensor:
        x = x.contiguous()
        weight = weight.contiguous()
        B, D, T = x.shape
        L = weight.shape[1]
        has_state = initial_state is not None and L > 1
        state = initial_state.to(x.dtype).contiguous() if has_state else x.new_zeros(1)
        y = torch.empty_like(x)
        if T > 0:
            _conv_fwd_kernel[_grid(B, D, T)](x, weight, state, y, D, T, L=L, HAS_STATE=has_state,
                                             BD=BLOCK_D, BT=BLOCK_T)
        ctx.save_for_backward(x, weight, state)
        ctx.has_state = has_state
        ctx.state_meta = None if initial_state is None else (initial_state.dtype, initial_state.shape)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, weight, state = ctx.saved_tensors
        B, D, T = x.shape
        L = weight.shape[1]
        dy = dy.contiguous()
        dx = torch.empty_like(x)
        dstate = x.new_empty(B, D, max(L - 1, 0))
        if T + L - 1 > 0:
            _conv_bwd_input_kernel[_grid(B, D, T + L - 1)](dy, weight, dx, dstate, D, T, L=L,
                                                           BD=BLOCK_D, BT=BLOCK_T)
        nt = triton.cdiv(max(T, 1), BLOCK_T)
        partial = torch.zeros(B * nt, D, L, dtype=torch.float32, device=x.device)
        if T > 0:
            _conv_bwd_weight_kernel[_grid(B, D, T)](x, state, dy, partial, D, T, nt, L=L,
                                                    HAS_STATE=ctx.has_state, BD=BLOCK_D, BT=BLOCK_T)
        dweight = partial.sum(0).to(weight.dtype)
        dinit = None
        if ctx.state_meta is not None and ctx.needs_input_grad[2]:
            dinit = dstate.to(ctx.state_meta[0]).reshape(ctx.state_meta[1])
        return dx, dweight, dinit


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor,
                  initial_state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton version of :func:`edgesmith.kernels.short_conv.reference.causal_conv1d`."""
    y = CausalConv1dFunction.apply(x, weight, initial_state)
    width = weight.shape[-1] - 1
    # The final state is a slice of [state, x] (no arithmetic): autograd routes its gradient.
    if x.shape[-1] >= width:
        final_state = x[:, :, x.shape[-1] - width:]
    else:
        prev = x.new_zeros(x.shape[0], x.shape[1], width) if initial_state is None else initial_state.to(x.dtype)
        final_state = torch.cat([prev, x], dim=-1)[:, :, x.shape[-1]:]
    return y, final_state


def causal_conv1d_step(x_t: torch.Tensor, state: torch.Tensor,
                       weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton decode step; with autograd on, it runs as a length-1 convolution so gradients flow."""
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x_t, state, weight)):
        y, new_state = causal_conv1d(x_t.unsqueeze(-1), weight, state)
        return y.squeeze(-1), new_state
    B, D = x_t.shape
    L = weight.shape[-1]
    x_t = x_t.contiguous()
    state = state.to(x_t.dtype).contiguous()
    y = torch.empty_like(x_t)
    new_state = torch.empty(B, D, L - 1, dtype=x_t.dtype, device=x_t.device)
    _conv_step_kernel[(B, triton.cdiv(D, 64))](x_t, state, weight.contiguous(), y, new_state, D,
                                               L=L, LP=triton.next_power_of_2(L), BD=64)
    return y, new_state
