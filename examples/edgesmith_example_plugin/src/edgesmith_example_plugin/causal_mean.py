"""``causal_mean``: each position mixes the running mean of the (projected) tokens so far.

The simplest recurrent token mixer there is: its decode state is a running sum and a
count, constant in the context length. Useful as a template for new operators.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgesmith.core.operator import ModelDims, OperatorOptions, TokenMixer


@dataclass
class CausalMeanOptions(OperatorOptions):
    """``gate``: multiply the mean by a learned sigmoid gate of the current token.

    edgesmith checks keys and types (``gate`` must be true or false); nothing is left for
    ``validate`` to check against the model dims.
    """

    gate: bool = True


class CausalMean(TokenMixer):
    """Running-mean token mixer (a minimal, real operator)."""

    options_class = CausalMeanOptions

    def __init__(self, dims: ModelDims, options: CausalMeanOptions, layer_idx: int = 0):
        super().__init__(dims, options, layer_idx)
        d = dims.hidden_size
        self.in_proj = nn.Linear(d, d, bias=False)
        self.gate_proj = nn.Linear(d, d, bias=False) if options.gate else None
        self.out_proj = nn.Linear(d, d, bias=False)

    def init_state(self, batch_size, device, dtype):
        d = self.dims.hidden_size
        return {"sum": torch.zeros(batch_size, d, device=device, dtype=dtype),
                "count": torch.zeros(batch_size, 1, device=device, dtype=dtype)}

    def forward(self, hidden_states, state=None, attention_mask=None, position_ids=None):
        x = self.in_proj(hidden_states)
        valid = torch.ones_like(x[..., :1])
        if attention_mask is not None:  # padding contributes nothing to the mean
            valid = attention_mask[:, -x.shape[1]:, None].to(x.dtype)
        x = x * valid
        prev_sum = state["sum"][:, None] if state is not None else 0
        prev_count = state["count"][:, None] if state is not None else 0
        sums = prev_sum + torch.cumsum(x, dim=1)
        counts = prev_count + torch.cumsum(valid, dim=1)
        y = sums / counts.clamp(min=1)
        if self.gate_proj is not None:
            y = y * torch.sigmoid(self.gate_proj(hidden_states))
        new_state = None
        if state is not None:
            new_state = {"sum": sums[:, -1], "count": counts[:, -1]}
        return self.out_proj(y), new_state

    @classmethod
    def param_count(cls, dims, options):
        d = dims.hidden_size
        return d * d * (3 if options.gate else 2)

    @classmethod
    def state_bytes(cls, dims, options, context_length, batch_size=1, dtype_bytes=2):
        return batch_size * (dims.hidden_size + 1) * dtype_bytes
