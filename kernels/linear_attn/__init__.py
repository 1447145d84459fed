"""Causal linear attention: the pure-torch reference (chunked and recurrent forms).

Triton kernels, when present, live beside it and are held to it by tests.
"""

from .reference import chunk_linear_attn, recurrent_linear_attn

__all__ = ["chunk_linear_attn", "recurrent_linear_attn"]
