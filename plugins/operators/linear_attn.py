"""``linear_attn``: causal linear attention with a positive feature map.

Variant (Katharopoulos et al. 2020 with an output norm): per head,
``phi(x) = elu(x) + 1`` on q and k, and

    o_t = phi(q_t)^T S_t / (phi(q_t) . z_t + eps),   S_t = sum_{j<=t} phi(k_j) v_j^T,
                                                     z_t = sum_{j<=t} phi(k_j)

followed by a per-head RMSNorm (learned weight) and the output projection. Numerator and
denominator come from one call of the linear-attention kernel (kernels/linear_attn): v
gets a ones column appended, so the state is (head_dim x (head_dim + 1)) per head and the
last output column is the denominator. Full sequences use the chunkwise-parallel form, a
single decode step the recurrent one; the state is constant in context length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from edgesmith.core.errors import ConfigError
from edgesmith.core.linear import Linear
from edgesmith.core.operator import ModelDims, OperatorOptions, TokenMixer
from edgesmith.kernels.linear_attn.ops import chunk_linear_attn, recurrent_linear_attn


@dataclass
class LinearAttnOptions(OperatorOptions):
    """Options of ``linear_attn``; a size left at 0 is derived from the model dims.

    num_heads: heads (default: the model's attention heads).
    head_dim: per-head size of q, k and v (default: the model's head_dim).
    eps: added to the normalizer phi(q) . sum phi(k).
    chunk_size: tokens per chunk of the chunkwise-parallel form.
    norm_eps: epsilon of the output RMSNorm (0: the model's norm_eps).
    """

    num_heads: int = 0
    head_dim: int = 0
    eps: float = 1e-6
    chunk_size: int = 64
    norm_eps: float = 0.0

    def resolved(self, dims: ModelDims) -> "LinearAttnOptions":
        """A copy with every derived size filled in from ``dims``."""
        return LinearAttnOptions(
            num_heads=self.num_heads or dims.num_attention_heads,
            head_dim=self.head_dim or dims.head_dim,
            eps=self.eps, chunk_size=self.chunk_size, norm_eps=self.norm_eps or dims.norm_eps,
        )

    def validate(self, dims: ModelDims, key: str) -> None:
        for name in ("num_heads", "head_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key}.{name}", value, "a positive integer, or 0 to derive it from the model dims")
        if not isinstance(self.eps, (int, float)) or self.eps <= 0:
            raise ConfigError(f"{key}.eps", self.eps, "a float > 0")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ConfigError(f"{key}.chunk_size", self.chunk_size, "an integer >= 1")
        if not isinstance(self.norm_eps, (int, float)) or self.norm_eps < 0:
            raise ConfigError(f"{key}.norm_eps", self.norm_eps, "a float >= 0 (0: the model's norm_eps)")


class LinearAttention(TokenMixer):
    """Causal linear attention layer (see the module docstring).

    State (``init_state``): ``{"recurrent": (B, H, D, D + 1) float32}``, the running
    ``sum phi(k) [v, 1]^T``.
    """

    options_class = LinearAttnOptions

    def __init__(self, dims: ModelDims, options: LinearAttnOptions, layer_idx: int = 0):
        super().__init__(dims, options, layer_idx)
        o = options.resolved(dims)
        self.num_heads, self.head_dim = o.num_heads, o.head_dim
        self.eps, self.chunk_size, self.norm_eps = o.eps, o.chunk_size, o.norm_eps
        inner = o.num_heads * o.head_dim
        self.qkv_proj = Linear(dims.hidden_size, 3 * inner, bias=False)
        self.norm_weight = nn.Parameter(torch.ones(o.head_dim))
        self.out_proj = Linear(inner, dims.hidden_size, bias=False)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initializes the non-Linear parameters (skipping one already loaded from a checkpoint)."""
        init.ones_(self.norm_weight)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        # float32 whatever the model dtype: the sums grow with the context
        return {"recurrent": torch.zeros(
            batch_size, self.num_heads, self.head_dim, self.head_dim + 1, device=device, dtype=torch.float32,
        )}

    def forward(
        self, hidden_states: torch.Tensor, state: dict[str, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        B, T, _ = hidden_states.shape
        # float32 math (float64 stays float64, for gradcheck)
        cd = torch.float64 if hidden_states.dtype == torch.float64 else torch.float32
        q, k, v = self.qkv_proj(hidden_states).to(cd).reshape(B, T, 3, self.num_heads, self.head_dim).unbind(2)
        q, k = F.elu(q) + 1.0, F.elu(k) + 1.0
        v = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)            # last column: the normalizer
        if attention_mask is not None:
            if attention_mask.dim() != 2 or attention_mask.shape[0] != B or attention_mask.shape[1] < T:
                raise ValueError(
                    f"attention_mask must be (batch={B}, length >= {T}); got {tuple(attention_mask.shape)}"
                )
            # phi(k) is positive even for a zero input: zero it at padding so the sums skip it
            k = k * attention_mask[:, -T:].to(k.dtype)[..., None, None]

        initial = None if state is None else state["recurrent"]
        kernel = recurrent_linear_attn if T == 1 else chunk_linear_attn
        o, final = kernel(q, k, v, scale=1.0, initial_state=initial, output_final_state=state is not None,
                          chunk_size=self.chunk_size)
        o = o[..., :-1] / (o[..., -1:] + self.eps)
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.norm_eps) * self.norm_weight.to(cd)
        out = self.out_proj(o.reshape(B, T, -1).to(hidden_states.dtype))
        if state is None:
            return out, None
        return out, {"recurrent": final.to(state["recurrent"].dtype)}

    @classmethod
    def param_count(cls, dims: ModelDims, options: LinearAttnOptions) -> int:
        o = options.resolved(dims)
        inner = o.num_heads * o.head_dim
        return 4 * dims.hidden_size * inner + o.head_dim

    @classmethod
    def state_bytes(
        cls, dims: ModelDims, options: LinearAttnOptions, context_length: int,
        batch_size: int = 1, dtype_bytes: int = 2,
    ) -> int:
        o = options.resolved(dims)
        return batch_size * o.num_heads * o.head_dim * (o.head_dim + 1) * 4  # float32, see init_state

    @classmethod
    def flops_per_token(cls, dims: ModelDims, options: LinearAttnOptions, context_length: int) -> int:
        o = options.resolved(dims)
        # per head and step: rank-one write and one read of a D x (D + 1) state
        recurrence = 2 * o.num_heads * o.head_dim * (o.head_dim + 1)
        return 2 * (cls.param_count(dims, options) + recurrence)
