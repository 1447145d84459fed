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
    batch, channels, length = x.shape
    width = weight.shape[-1] - 1
    kernel = weight.unsqueeze(1).to(x.dtype)
    if initial_state is None:  # zero history: let conv1d pad instead of materializing it
        y = F.conv1d(x, kernel, padding=width, groups=channels)[:, :, :length]
        tail = x[:, :, max(length - width, 0):]
        final_state = F.pad(tail, (width - tail.shape[-1], 0)) if tail.shape[-1] < width else tail
        return y, final_state.contiguous()
    extended = torch.cat([initial_state.to(x.dtype), x], dim=-1)
    y = F.conv1d(extended, kernel, groups=channels)
    # contiguous: a view would keep the whole sequence alive in the decode cache
    final_state = extended[:, :, extended.shape[-1] - width:].contiguous()
    return y, final_state


def causal_conv1d_step(
    x_t: torch.Tensor, state: torch.Tensor, weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One decode step: ``x_t`` is (batch, channels); returns ``y_t`` (batch, channels) and the new state."""
    window = torch.cat([state.to(x_t.dtype), x_t.unsqueeze(-1)], dim=-1)  # (batch, channels, L)
    y_t = (window * weight.to(x_t.dtype)).sum(dim=-1)
    return y_t, window[:, :, 1:].contiguous()
