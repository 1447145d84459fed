"""Pure-torch gated delta rule (Yang, Kautz, Hatamizadeh 2024): the reference for kernels.

Per head, with a state ``S`` of shape (K, V), log-decay ``g_t <= 0`` and write strength
``beta_t`` in (0, 1)::

    S_t = exp(g_t) * (I - beta_t k_t k_t^T) S_{t-1} + beta_t k_t v_t^T
    o_t = scale * S_t^T q_t

Two forms with one signature:

- :func:`recurrent_gated_delta_rule` steps token by token (the readable reference, and the
  decode path for a single token);
- :func:`chunk_gated_delta_rule` is chunkwise parallel: inside a chunk of ``C`` tokens the
  product of rank-one updates is written in WY form, so the chunk needs one unit
  lower-triangular solve and a few matmuls; only the chunk-to-chunk state hand-off is
  sequential.

Layouts: q, k (B, T, H, K); v (B, T, H, V); g, beta (B, T, H); state (B, H, K, V).
``scale`` defaults to ``K ** -0.5`` and is applied to q here. q and k are used as given
(no L2 normalization here: the operator does it). Computation runs in float32 (or float64
when the inputs are float64); outputs come back in v's dtype, the state in float32/64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..shapes import check_qkv_state, compute_dtype


def recurrent_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: float | None = None, initial_state: torch.Tensor | None = None,
    output_final_state: bool = True, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-by-token gated delta rule; returns ``(o (B, T, H, V), final_state (B, H, K, V) or None)``.

    ``chunk_size`` is accepted so both forms share one signature; it is unused here.
    """
    check_qkv_state(q, k, v, initial_state, g, beta)
    B, T, H, K = q.shape
    V = v.shape[-1]
    dt = compute_dtype(v)
    scale = K ** -0.5 if scale is None else scale
    q, k, v, g, beta = (x.to(dt) for x in (q, k, v, g, beta))
    q = q * scale
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.to(dt)
    outs = []
    for t in range(T):
        k_t, q_t = k[:, t], q[:, t]                                        # (B, H, K)
        S = S * g[:, t].exp()[..., None, None]                             # decay first
        # delta rule: move the value read at k_t towards v_t by beta_t
        u = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhk,bhkv->bhv", k_t, S))
        S = S + k_t[..., :, None] * u[..., None, :]
        outs.append(torch.einsum("bhk,bhkv->bhv", q_t, S))
    o = torch.stack(outs, dim=1) if outs else v.new_zeros(B, 0, H, V)
    return o.to(v.dtype), (S if output_final_state else None)


def chunk_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: float | None = None, initial_state: torch.Tensor | None = None,
    output_final_state: bool = True, chunk_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise-parallel gated delta rule; same contract as :func:`recurrent_gated_delta_rule`.

    Within a chunk, with ``c_i`` the cumulative log-decay since the chunk start and ``S0``
    the state entering it, the state after token i is
    ``S_i = exp(c_i) S0 + sum_{j<=i} exp(c_i - c_j) k_j u_j^T`` where the "pseudo-values"
    ``u`` solve the unit lower-triangular system
    ``(I + A) U = diag(beta) V - diag(beta exp(c)) K S0`` with
    ``A_ij = beta_i exp(c_i - c_j) k_i.k_j`` for j < i. Any T works: the tail is padded
    with g = 0, beta = 0, k = 0, which leaves the state untouched.
    """
    check_qkv_state(q, k, v, initial_state, g, beta)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    B, T, H, K = q.shape
    V = v.shape[-1]
    dt = compute_dtype(v)
    scale = K ** -0.5 if scale is None else scale
    out_dtype = v.dtype
    C = chunk_size
    n = -(-T // C)
    pad = n * C - T
    if T == 0:
        return recurrent_gated_delta_rule(q, k, v, g, beta, scale, initial_state, output_final_state)

    def heads_first(x: torch.Tensor) -> torch.Tensor:
        # (B, T, H, ...) -> (B, H, n, C, ...), zero-padded in time to a whole number of chunks
        x = x.to(dt).movedim(1, 2)
        if pad:
            x = F.pad(x, (0, 0) * (x.dim() - 3) + (0, pad))
        return x.reshape(*x.shape[:2], n, C, *x.shape[3:])

    qc, kc, vc = heads_first(q) * scale, heads_first(k), heads_first(v)   # (B, H, n, C, K|V)
    gc, bc = heads_first(g), heads_first(beta)                            # (B, H, n, C)

    cum = gc.cumsum(-1)                                                   # c_i
    causal = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    # exp(c_i - c_j) only where j <= i; masking before exp keeps inf/nan out of values and grads
    decay = (cum[..., :, None] - cum[..., None, :]).masked_fill(~causal, float("-inf")).exp()
    strict = torch.ones(C, C, dtype=torch.bool, device=q.device).tril(-1)

    kk = kc @ kc.transpose(-1, -2)
    A = (bc[..., :, None] * decay * kk).masked_fill(~strict, 0.0)
    eye = torch.eye(C, dtype=dt, device=q.device)
    # T_inv = (I + A)^{-1} applied through a triangular solve, batched over all chunks at once
    rhs = torch.cat([bc[..., None] * vc, (bc * cum.exp())[..., None] * kc], dim=-1)
    sol = torch.linalg.solve_triangular(eye + A, rhs, upper=False, unitriangular=True)
    w_v, w_k = sol[..., :V], sol[..., V:]                                 # U = w_v - w_k @ S0

    qk = (qc @ kc.transpose(-1, -2)) * decay                              # causal incl. diagonal
    q_decayed = qc * cum.exp()[..., None]                                 # exp(c_i) q_i
    k_to_end = kc * (cum[..., -1:] - cum).exp()[..., None]                # exp(c_C - c_j) k_j
    chunk_decay = cum[..., -1].exp()                                      # (B, H, n)

    S = q.new_zeros(B, H, K, V, dtype=dt) if initial_state is None else initial_state.to(dt)
    outs = []
    for i in range(n):
        u = w_v[:, :, i] - w_k[:, :, i] @ S                               # (B, H, C, V)
        outs.append(q_decayed[:, :, i] @ S + qk[:, :, i] @ u)
        S = chunk_decay[:, :, i, None, None] * S + k_to_end[:, :, i].transpose(-1, -2) @ u
    o = torch.stack(outs, dim=2).reshape(B, H, n * C, V)[:, :, :T].movedim(1, 2)
    return o.to(out_dtype), (S if output_final_state else None)
