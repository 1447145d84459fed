"""Causal depthwise convolution of the gated short conv: torch reference (Triton beside it)."""

from .reference import causal_conv1d, causal_conv1d_step

__all__ = ["causal_conv1d", "causal_conv1d_step"]
