"""``short_conv``: LFM2's double-gated short convolution.

``in_proj`` maps each token to three streams B, C and x; a causal depthwise convolution of
length ``conv_length`` runs over ``B * x``; the output is ``out_proj(C * conv)``. Names and
arithmetic are LFM2's (``Lfm2ShortConv``: ``in_proj``, ``conv``, ``out_proj``), so its weights
load one to one. Decode state: ``{"conv": (B, hidden, conv_length - 1)}``, the last
``conv_length - 1`` conv inputs. Padded positions feed zeros into the conv, which is what a
fresh sequence sees, so left padding leaves no trace in the state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgesmith.core.errors import ConfigError
from edgesmith.core.linear import Linear
from edgesmith.core.operator import ModelDims, OperatorOptions, TokenMixer
from edgesmith.kernels.short_conv.ops import causal_conv1d, causal_conv1d_step


@dataclass
class ShortConvOptions(OperatorOptions):
    """``conv_length``: taps of the causal conv (LFM2: 3). ``bias``: biases on projections and conv (LFM2: false)."""

    conv_length: int = 3
    bias: bool = False

    def validate(self, dims: ModelDims, key: str) -> None:
        if not isinstance(self.conv_length, int) or isinstance(self.conv_length, bool) or self.conv_length < 1:
            raise ConfigError(f"{key}.conv_length", self.conv_length, "a positive integer (LFM2 uses 3)")
        if not isinstance(self.bias, bool):
            raise ConfigError(f"{key}.bias", self.bias, "true or false")


class ShortConv(TokenMixer):
    """Double-gated short convolution (see the module docstring for the state)."""

    options_class = ShortConvOptions

    def __init__(self, dims: ModelDims, options: ShortConvOptions, layer_idx: int = 0):
        super().__init__(dims, options, layer_idx)
        d, length = dims.hidden_size, options.conv_length
        self.in_proj = Linear(d, 3 * d, bias=options.bias)
        self.conv = nn.Conv1d(d, d, kernel_size=length, groups=d, bias=options.bias, padding=length - 1)
        self.out_proj = Linear(d, d, bias=options.bias)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict:
        width = self.options.conv_length - 1
        return {"conv": torch.zeros(batch_size, self.dims.hidden_size, width, device=device, dtype=dtype)}

    def forward(
        self, hidden_states: torch.Tensor, state: dict | None = None,
        attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict | None]:
        T = hidden_states.shape[1]
        b, c, x = self.in_proj(hidden_states).transpose(-1, -2).chunk(3, dim=-2)  # each (B, D, T)
        bx = b * x
        if attention_mask is not None:  # padding must look like "nothing before the sequence"
            bx = bx.masked_fill(~attention_mask[:, None, -T:].bool(), 0.0)
        weight = self.conv.weight[:, 0, :]
        new_state = None
        if state is None:
            y, _ = causal_conv1d(bx, weight)
        elif T == 1:
            y, conv_state = causal_conv1d_step(bx[:, :, 0], state["conv"], weight)
            y, new_state = y.unsqueeze(-1), {"conv": conv_state}
        else:
            y, conv_state = causal_conv1d(bx, weight, state["conv"])
            new_state = {"conv": conv_state}
        if self.conv.bias is not None:
            y = y + self.conv.bias[:, None]
        return self.out_proj((c * y).transpose(-1, -2)), new_state

    @classmethod
    def param_count(cls, dims: ModelDims, options: ShortConvOptions) -> int:
        d, length = dims.hidden_size, options.conv_length
        bias = (3 * d + d + d) if options.bias else 0
        return 3 * d * d + d * length + d * d + bias

    @classmethod
    def state_bytes(cls, dims, options, context_length, batch_size=1, dtype_bytes=2) -> int:
        return batch_size * dims.hidden_size * (options.conv_length - 1) * dtype_bytes

    @classmethod
    def flops_per_token(cls, dims, options, context_length) -> int:
        return 2 * cls.param_count(dims, options) + 2 * dims.hidden_size  # plus the two gates
