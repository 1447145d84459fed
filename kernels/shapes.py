"""Input checks and the accumulation dtype shared by the recurrent-state kernel references.

Gated delta rule and linear attention share one layout: q, k (B, T, H, K); v (B, T, H, V);
per-token gates (B, T, H); state (B, H, K, V).
"""

from __future__ import annotations

import torch


def check_qkv_state(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, initial_state: torch.Tensor | None,
                    g: torch.Tensor | None = None, beta: torch.Tensor | None = None) -> None:
    """Raises ValueError naming the tensor whose shape does not fit the layout above."""
    if q.dim() != 4 or q.shape != k.shape:
        raise ValueError(f"q and k must both be (B, T, H, K); got q {tuple(q.shape)}, k {tuple(k.shape)}")
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"v must be (B, T, H, V) matching q's (B, T, H)={tuple(q.shape[:3])}; got {tuple(v.shape)}")
    for name, x in (("g", g), ("beta", beta)):
        if x is not None and x.shape != q.shape[:3]:
            raise ValueError(f"{name} must be (B, T, H)={tuple(q.shape[:3])}; got {tuple(x.shape)}")
    if initial_state is not None:
        expected = (q.shape[0], q.shape[2], q.shape[3], v.shape[3])
        if tuple(initial_state.shape) != expected:
            raise ValueError(f"initial_state must be (B, H, K, V)={expected}; got {tuple(initial_state.shape)}")


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 for float64 inputs (so gradcheck can run); float32 accumulation for everything else."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32
