"""Sliding-window attention that operators call: torch reference or Triton, per backend.

Same signature as :func:`.reference.sliding_window_attention` plus ``backend``
(``auto`` / ``torch`` / ``triton``; ``None`` uses the process default).
"""

from __future__ import annotations

import torch

from ..backend import dtype_problem, resolve_backend
from . import reference

_TRITON_MODULE = __name__.rsplit(".", 1)[0] + ".triton"
MAX_HEAD_DIM = 256


def sliding_window_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int,
                             scale: float | None = None, backend: str | None = None) -> torch.Tensor:
    """Causal attention of position t over t-window+1..t; q (B, H, T, D), k, v (B, Hkv, T, D)."""
    problem = dtype_problem(q, k, v)
    if problem is None and q.shape[-1] > MAX_HEAD_DIM:
        problem = f"head_dim {q.shape[-1]} is above the kernel's limit of {MAX_HEAD_DIM}"
    if problem is None and q.shape[2] != k.shape[2]:
        problem = "the kernel needs as many queries as keys (use the reference for cached decode)"
    if resolve_backend(backend, q.device, _TRITON_MODULE, problem) == "triton":
        from . import triton as kernels

        dtype = v.dtype
        return kernels.sliding_window_attention(q.to(dtype), k.to(dtype), v, window, scale)
    return reference.sliding_window_attention(q, k, v, window, scale)
