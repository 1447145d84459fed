"""Pure-torch reference for causal sliding-window attention with grouped KV heads.

Query position ``t`` attends key positions ``t - window + 1 .. t``. ``q`` is
(batch, heads, time, head_dim); ``k`` and ``v`` are (batch, kv_heads, time, head_dim) with
``heads`` divisible by ``kv_heads`` (each KV head serves ``heads // kv_heads`` query heads,
in order, as in ``repeat_interleave``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sliding_window_mask(length: int, window: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (length, length) mask, True where query ``i`` may attend key ``j``."""
    i = torch.arange(length, device=device).unsqueeze(1)
    j = torch.arange(length, device=device).unsqueeze(0)
    return (j <= i) & (j > i - window)


def sliding_window_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, scale: float | None = None,
) -> torch.Tensor:
    """Returns the attention output (batch, heads, time, head_dim)."""
    if window < 1:
        raise ValueError(f"window must be a positive integer, got {window}")
    heads, kv_heads = q.shape[1], k.shape[1]
    if heads % kv_heads:
        raise ValueError(f"query heads ({heads}) must be a multiple of key/value heads ({kv_heads})")
    mask = sliding_window_mask(q.shape[2], window, device=q.device)
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, scale=scale, enable_gqa=heads != kv_heads,
    )
