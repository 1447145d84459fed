"""Pure-torch causal linear attention: the reference for kernels.

Per head, with a state ``S`` of shape (K, V)::

    S_t = S_{t-1} + k_t v_t^T
    o_t = scale * S_t^T q_t

No feature map and no normalization here: the operator applies its feature map to q and
k, and gets its normalizer from the same function by appending a ones column to v (the
last output column is then ``scale * q_t . sum_{j<=t} k_j``).

Two forms with one signature: :func:`recurrent_linear_attn` (token by token) and
:func:`chunk_linear_attn` (chunkwise parallel: a masked ``Q K^T`` inside a chunk plus the
carried state between chunks). Layouts: q, k (B, T, H, K); v (B, T, H, V); state
(B, H, K, V). ``scale`` defaults to ``K ** -0.5``. Computation runs in float32 (float64 for
float64 inputs); outputs come back in v's dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..shapes import check_qkv_state, compute_dtype


def recurrent_linear_attn(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
    initial_state: torch.Tensor | None = None, output_final_state: bool = True, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-by-token linear attention; returns ``(o (B, T, H, V), final_state or None)``.

    ``chunk_size`` is accepted so both forms share one signature; it is unused here.
    """
    check_qkv_state(q, k, v, initial_state)
    B, T, H, K = q.shape
    V = v.shape[-1]
    dt = compute_dtype(v)
    scale = K ** -0.5 if scale is None else scale
    q, k, v = (x.to(dt) for x in (q, k, v))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(dt)
    outs = []
    for t in range(T):
        S = S + k[:, t, :, :, None] * v[:, t, :, None, :]
        outs.append(scale * torch.einsum("bhk,bhkv->bhv", q[:, t], S))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V, dtype=dt)
    return o.to(v.dtype), (S if output_final_state else None)


def chunk_linear_attn(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None,
    initial_state: torch.Tensor | None = None, output_final_state: bool = True, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise-parallel linear attention; same contract as :func:`recurrent_linear_attn`.

    For a chunk entered with state ``S0``: ``O = scale * (Q S0 + (Q K^T * causal) V)`` and the
    state leaving it is ``S0 + K^T V``. Any T works (the tail chunk is zero-padded).
    """
    check_qkv_state(q, k, v, initial_state)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    B, T, H, K = q.shape
    V = v.shape[-1]
    if T == 0:
        return recurrent_linear_attn(q, k, v, scale, initial_state, output_final_state)
    dt = compute_dtype(v)
    scale = K ** -0.5 if scale is None else scale
    C = chunk_size
    n = -(-T // C)
    pad = n * C - T

    def heads_first(x: torch.Tensor) -> torch.Tensor:
        x = x.to(dt).movedim(1, 2)                                        # (B, H, T, D)
        if pad:
            x = F.pad(x, (0, 0, 0, pad))
        return x.reshape(B, H, n, C, x.shape[-1])

    qc, kc, vc = heads_first(q) * scale, heads_first(k), heads_first(v)
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    intra = ((qc @ kc.transpose(-1, -2)).masked_fill(~causal, 0.0) @ vc)  # (B, H, n, C, V)
    kv = kc.transpose(-1, -2) @ vc                                        # per-chunk K^T V

    S0 = q.new_zeros(B, H, K, V, dtype=dt) if initial_state is None else initial_state.to(dt)
    # no decay, so the state entering chunk i is an exclusive prefix sum: no sequential loop
    prefix = kv.cumsum(dim=2)
    exclusive = torch.cat([torch.zeros_like(kv[:, :, :1]), prefix[:, :, :-1]], dim=2)
    entering = S0[:, :, None] + exclusive                                 # (B, H, n, K, V)
    o = (qc @ entering + intra).reshape(B, H, n * C, V)[:, :, :T].movedim(1, 2)
    S = S0 + prefix[:, :, -1]
    return o.to(v.dtype), (S if output_final_state else None)
