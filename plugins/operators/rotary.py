"""Rotary position embedding shared by the attention operators (``gqa``, ``swa``).

The arithmetic is LFM2's (transformers ``Lfm2RotaryEmbedding`` with the default rope):
``inv_freq = 1 / theta^(2i/d)`` computed in float32, the angle table duplicated over both
halves of the head, and ``rotate_half`` pairing dim ``i`` with ``i + d/2``.
"""

from __future__ import annotations

import torch


def rope_cos_sin(
    position_ids: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of shape (batch or 1, time, head_dim) for integer ``position_ids`` (batch or 1, time)."""
    device = position_ids.device
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float, device=device) / head_dim))
    freqs = position_ids[..., None].float() * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotates ``q`` (B, H, T, D) and ``k`` (B, Hkv, T, D) by the angles of their positions."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
