"""The token-mixer (operator) interface: one layer's sequence mixing.

An operator knows how to build itself from the shared model dims and its own options, how
to run over a whole sequence (training, prefill), how to continue from a carried state
(decode), how to create that state, and what it costs (parameters, state bytes as a
function of context length) so the search can reason about memory without running it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from .options import build_options


@dataclass(frozen=True)
class ModelDims:
    """The dims every layer shares; operator-specific sizes live in the operator's options."""

    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    max_position_embeddings: int = 4096
    rope_theta: float = 1_000_000.0
    norm_eps: float = 1e-5


@dataclass
class OperatorOptions:
    """Base for an operator's options; subclasses add fields with defaults."""

    def validate(self, dims: ModelDims, key: str) -> None:
        """Raises :class:`ConfigError` naming ``key.<field>`` for values the operator cannot use."""


class TokenMixer(nn.Module):
    """Base class of every operator plugin.

    Subclasses set ``options_class`` and implement ``forward``, ``init_state``,
    ``param_count`` and ``state_bytes``.

    ``forward(hidden_states, state=None, attention_mask=None, position_ids=None)`` takes
    ``hidden_states`` of shape (batch, time, hidden). With ``state=None`` it is a
    full-sequence pass; with a state it continues from it (decode, or chunked prefill).
    ``attention_mask`` is the 2-D padding mask (batch, total length so far) with 0 at left
    padding; padded positions must not leak into any state. It returns
    ``(output, new_state)`` where ``new_state`` is ``None`` when ``use_cache`` was not asked for
    by passing a state (callers pass ``self.init_state(...)`` to start caching).
    """

    options_class: ClassVar[type[OperatorOptions]] = OperatorOptions

    def __init__(self, dims: ModelDims, options: OperatorOptions, layer_idx: int = 0):
        super().__init__()
        self.dims = dims
        self.options = options
        self.layer_idx = layer_idx

    @classmethod
    def parse_options(cls, raw: dict[str, Any] | None, dims: ModelDims, key: str) -> OperatorOptions:
        """Builds the options through the one options contract (:mod:`.options`), then checks them
        against the model dims; errors name ``key.<field>`` and what is accepted."""
        options = build_options(cls.options_class, raw, key)
        options.validate(dims, key)
        return options

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> Any:
        """An empty decode state for ``batch_size`` sequences."""
        raise NotImplementedError

    @classmethod
    def param_count(cls, dims: ModelDims, options: OperatorOptions) -> int:
        """Number of parameters of one layer of this operator (no forward pass needed)."""
        raise NotImplementedError

    @classmethod
    def state_bytes(
        cls, dims: ModelDims, options: OperatorOptions, context_length: int,
        batch_size: int = 1, dtype_bytes: int = 2,
    ) -> int:
        """Bytes of decode state one layer holds after ``context_length`` tokens."""
        raise NotImplementedError

    @classmethod
    def flops_per_token(cls, dims: ModelDims, options: OperatorOptions, context_length: int) -> int:
        """Approximate multiply-adds x2 for one decode step at ``context_length`` (analytic cost model)."""
        return 2 * cls.param_count(dims, options)
