"""Pure-torch reference for the causal depthwise convolution of the gated short conv.

Shapes follow the channels-first layout of ``torch.nn.functional.conv1d``: ``x`` is
(batch, channels, time), ``weight`` is (channels, kernel_length) and the carried state is
the last ``kernel_length - 1`` inputs, (batch, channels, kernel_length - 1). A zero state
is the same as starting the sequence, so a prefill with ``initial_state=None`` and a
decode continuing from ``final_state`` give the full-sequence result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_conv1d(
    x: torch.Tensor, weight: torch.Tensor, initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Causal depthwise conv: ``y[:, d, t] = sum_i weight[d, i] * x_ext[:, d, t + i]``.

    ``x_ext`` is ``x`` with ``initial_state`` (zeros when ``None``) prepended. Returns ``y``
    (batch, channels, time) and the final state (batch, channels, kernel_length - 1).
    """
    batch, channels, _ = x.shape
    width = weight.shape[-1] - 1
    if initial_state is None:
        initial_state = x.new_zeros(batch, channels, width)
    extended = torch.cat([initial_state.to(x.dtype), x], dim=-1)
    y = F.conv1d(extended, weight.unsqueeze(1).to(x.dtype), groups=channels)
    final_state = extended[:, :, extended.shape[-1] - width:]
    return y, final_state


def causal_conv1d_step(
    x_t: torch.Tensor, state: torch.Tensor, weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step: ``x_t`` is (batch, channels); returns ``y_t`` (batch, channels) and the new state."""
    window = torch.cat([state.to(x_t.dtype), x_t.unsqueeze(-1)], dim=-1)  # (batch, channels, L)
    y_t = (window * weight.to(x_t.dtype)).sum(dim=-1)
    return y_t, window[:, :, 1:]
