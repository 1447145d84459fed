"""The torch references in kernels/ (what Triton kernels are held to) against their definitions."""

from __future__ import annotations

import pytest
import torch

from edgesmith.kernels.short_conv import causal_conv1d, causal_conv1d_step
from edgesmith.kernels.swa import sliding_window_attention


@pytest.mark.parametrize("length", [1, 2, 3, 4])
def test_causal_conv1d_is_the_causal_sum(length):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 9, generator=g, dtype=torch.float64)
    w = torch.randn(5, length, generator=g, dtype=torch.float64)
    init = torch.randn(2, 5, length - 1, generator=g, dtype=torch.float64)
    y, final = causal_conv1d(x, w, init)
    ext = torch.cat([init, x], dim=-1)
    expected = torch.stack([(ext[:, :, t:t + length] * w).sum(-1) for t in range(9)], dim=-1)
    assert torch.allclose(y, expected, atol=1e-12)
    assert torch.equal(final, ext[:, :, 9:])  # the last L-1 inputs
    # zero initial state == no initial state
    assert torch.allclose(causal_conv1d(x, w)[0], causal_conv1d(x, w, torch.zeros_like(init))[0])


def test_causal_conv1d_step_continues_the_sequence():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 8, generator=g)
    w = torch.randn(4, 3, generator=g)
    full, full_state = causal_conv1d(x, w)
    y, state = causal_conv1d(x[:, :, :5], w)
    steps = [y]
    for t in range(5, 8):
        y_t, state = causal_conv1d_step(x[:, :, t], state, w)
        steps.append(y_t.unsqueeze(-1))
    assert (torch.cat(steps, dim=-1) - full).abs().max() <= 1e-6
    assert torch.equal(state, full_state)


@pytest.mark.parametrize("window", [1, 3, 16])
def test_sliding_window_attention_matches_per_query_softmax(window):
    g = torch.Generator().manual_seed(2)
    B, H, Hkv, T, D = 2, 4, 2, 10, 8
    q = torch.randn(B, H, T, D, generator=g, dtype=torch.float64)
    k = torch.randn(B, Hkv, T, D, generator=g, dtype=torch.float64)
    v = torch.randn(B, Hkv, T, D, generator=g, dtype=torch.float64)
    out = sliding_window_attention(q, k, v, window, scale=0.3)
    kk, vv = k.repeat_interleave(H // Hkv, dim=1), v.repeat_interleave(H // Hkv, dim=1)
    expected = torch.empty_like(q)
    for t in range(T):
        lo = max(0, t - window + 1)
        scores = (q[:, :, t:t + 1] @ kk[:, :, lo:t + 1].transpose(-1, -2)) * 0.3
        expected[:, :, t] = (scores.softmax(-1) @ vv[:, :, lo:t + 1])[:, :, 0]
    assert torch.allclose(out, expected, atol=1e-10)


def test_sliding_window_attention_rejects_bad_shapes():
    q = torch.randn(1, 3, 4, 8)
    k = torch.randn(1, 2, 4, 8)
    with pytest.raises(ValueError, match="multiple"):
        sliding_window_attention(q, k, k, 2)
    with pytest.raises(ValueError, match="window"):
        sliding_window_attention(q, q, q, 0)
