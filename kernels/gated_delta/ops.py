"""The gated delta rule that operators call: torch reference or Triton, per backend.

Same signatures as :mod:`.reference` plus ``backend`` (``auto`` / ``torch`` / ``triton``;
``None`` uses the process default). The Triton path has one chunkwise implementation; the
recurrent form (a decode step) runs it on the short sequence, which is the same function.
"""

from __future__ import annotations

import torch

from ..backend import dtype_problem, resolve_backend
from . import reference

_TRITON_MODULE = __name__.rsplit(".", 1)[0] + ".triton"
MAX_HEAD_DIM = 256


def _problem(q: torch.Tensor, v: torch.Tensor) -> str | None:
    problem = dtype_problem(q, v)
    if problem is None and max(q.shape[-1], v.shape[-1]) > MAX_HEAD_DIM:
        problem = f"head dims K={q.shape[-1]}, V={v.shape[-1]} exceed the kernel's limit of {MAX_HEAD_DIM}"
    return problem


def _triton(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size):
    from . import triton as kernels

    dtype = v.dtype
    return kernels.chunk_gated_delta_rule(q.to(dtype), k.to(dtype), v, g, beta, scale, initial_state,
                                          output_final_state, chunk_size)


def chunk_gated_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                           beta: torch.Tensor, scale: float | None = None,
                           initial_state: torch.Tensor | None = None, output_final_state: bool = True,
                           chunk_size: int = 64, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Chunkwise gated delta rule; see :func:`.reference.chunk_gated_delta_rule`."""
    if resolve_backend(backend, q.device, _TRITON_MODULE, _problem(q, v)) == "triton":
        return _triton(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size)
    return reference.chunk_gated_delta_rule(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size)


def recurrent_gated_delta_rule(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
                               beta: torch.Tensor, scale: float | None = None,
                               initial_state: torch.Tensor | None = None, output_final_state: bool = True,
                               chunk_size: int = 64, backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Token-by-token gated delta rule; see :func:`.reference.recurrent_gated_delta_rule`."""
    if resolve_backend(backend, q.device, _TRITON_MODULE, _problem(q, v)) == "triton":
        return _triton(q, k, v, g, beta, scale, initial_state, output_final_state, chunk_size)
    return reference.recurrent_gated_delta_rule(q, k, v, g, beta, scale, initial_state, output_final_state,
                                                chunk_size)
