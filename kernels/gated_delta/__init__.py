"""Gated delta rule: the pure-torch reference (chunked and recurrent forms).

Triton kernels, when present, live beside it and are held to it by tests.
"""

from .reference import chunk_gated_delta_rule, recurrent_gated_delta_rule

__all__ = ["chunk_gated_delta_rule", "recurrent_gated_delta_rule"]
