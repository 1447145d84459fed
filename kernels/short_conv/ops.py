"""The causal depthwise convolution that operators call: torch reference or Triton, per backend.

Same signatures as :mod:`.reference` plus ``backend`` (``auto`` / ``torch`` / ``triton``;
``None`` uses the process default, see :mod:`edgesmith.kernels.backend`).
"""

from __future__ import annotations

import torch

from ..backend import dtype_problem, resolve_backend
from . import reference

_TRITON_MODULE = __name__.rsplit(".", 1)[0] + ".triton"


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, initial_state: torch.Tensor | None = None,
                  backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise conv; returns ``(y (B, D, T), final_state (B, D, L-1))``. See :func:`.reference.causal_conv1d`."""
    if resolve_backend(backend, x.device, _TRITON_MODULE, dtype_problem(x, weight)) == "triton":
        from . import triton as kernels

        return kernels.causal_conv1d(x, weight, initial_state)
    return reference.causal_conv1d(x, weight, initial_state)


def causal_conv1d_step(x_t: torch.Tensor, state: torch.Tensor, weight: torch.Tensor,
                       backend: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step; returns ``(y_t (B, D), new_state (B, D, L-1))``. See :func:`.reference.causal_conv1d_step`."""
    if resolve_backend(backend, x_t.device, _TRITON_MODULE, dtype_problem(x_t, weight)) == "triton":
        from . import triton as kernels

        return kernels.causal_conv1d_step(x_t, state, weight)
    return reference.causal_conv1d_step(x_t, state, weight)
