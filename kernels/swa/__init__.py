"""Causal sliding-window attention: torch reference (Triton beside it)."""

from .reference import sliding_window_attention

__all__ = ["sliding_window_attention"]
