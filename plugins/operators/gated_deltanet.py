"""``gated_deltanet``: gated DeltaNet token mixer in the Qwen3-Next parametrization.

Per layer: one input projection to q, k, v (the recurrence inputs), z (output gate), b
(write strength, ``beta = sigmoid(b)``) and a (decay, ``g = -exp(A_log) * softplus(a +
dt_bias)``); a causal depthwise convolution with SiLU over q, k, v; L2-normalized q and k;
the gated delta rule (kernels/gated_delta); a gated RMSNorm ``rmsnorm(o) * silu(z)`` per
value head; an output projection. Value heads may outnumber key heads (a multiple of
them): each q/k head then serves ``num_v_heads // num_heads`` consecutive value heads.

Full sequences use the chunkwise-parallel form; a single decode step uses the recurrent
form. The decode state is constant in context length: the last ``conv_length - 1`` conv
inputs and one (head_k_dim x head_v_dim) matrix per value head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init

from edgesmith.core.errors import ConfigError
from edgesmith.core.linear import Linear
from edgesmith.core.operator import ModelDims, OperatorOptions, TokenMixer
from edgesmith.kernels.gated_delta.ops import chunk_gated_delta_rule, recurrent_gated_delta_rule
from edgesmith.kernels.short_conv.ops import causal_conv1d


@dataclass
class GatedDeltaNetOptions(OperatorOptions):
    """Options of ``gated_deltanet``; a size left at 0 is derived from the model dims.

    num_heads: q/k heads (default: the model's attention heads).
    num_v_heads: value heads, a multiple of num_heads (default: num_heads).
    head_k_dim / head_v_dim: per-head sizes (default: the model's head_dim).
    conv_length: width of the causal convolution on q, k, v (Qwen3-Next uses 4).
    chunk_size: tokens per chunk of the chunkwise-parallel form.
    norm_eps: epsilon of the gated output RMSNorm (0: the model's norm_eps).
    """

    num_heads: int = 0
    num_v_heads: int = 0
    head_k_dim: int = 0
    head_v_dim: int = 0
    conv_length: int = 4
    chunk_size: int = 64
    norm_eps: float = 0.0

    def resolved(self, dims: ModelDims) -> "GatedDeltaNetOptions":
        """A copy with every derived size filled in from ``dims``."""
        heads = self.num_heads or dims.num_attention_heads
        return GatedDeltaNetOptions(
            num_heads=heads,
            num_v_heads=self.num_v_heads or heads,
            head_k_dim=self.head_k_dim or dims.head_dim,
            head_v_dim=self.head_v_dim or dims.head_dim,
            conv_length=self.conv_length,
            chunk_size=self.chunk_size,
            norm_eps=self.norm_eps or dims.norm_eps,
        )

    def validate(self, dims: ModelDims, key: str) -> None:
        for name in ("num_heads", "num_v_heads", "head_k_dim", "head_v_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ConfigError(f"{key}.{name}", value, "a positive integer, or 0 to derive it from the model dims")
        if not isinstance(self.conv_length, int) or self.conv_length < 2:
            raise ConfigError(f"{key}.conv_length", self.conv_length, "an integer >= 2")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise ConfigError(f"{key}.chunk_size", self.chunk_size, "an integer >= 1")
        if not isinstance(self.norm_eps, (int, float)) or self.norm_eps < 0:
            raise ConfigError(f"{key}.norm_eps", self.norm_eps, "a float >= 0 (0: the model's norm_eps)")
        r = self.resolved(dims)
        if r.num_v_heads % r.num_heads:
            raise ConfigError(
                f"{key}.num_v_heads", r.num_v_heads,
                f"a multiple of num_heads={r.num_heads}", "each q/k head serves a whole group of value heads",
            )


def l2_normalize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """``x / sqrt(|x|^2 + eps)`` over the last dim (the epsilon inside, as Qwen3-Next and FLA do)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


class GatedDeltaNet(TokenMixer):
    """Gated DeltaNet layer (see the module docstring).

    State (``init_state``): a dict of batch-first tensors,
    ``{"conv": (B, 2*H*Dk + Hv*Dv, conv_length - 1) in the model dtype,
    "recurrent": (B, Hv, Dk, Dv) float32}``.
    """

    options_class = GatedDeltaNetOptions

    def __init__(self, dims: ModelDims, options: GatedDeltaNetOptions, layer_idx: int = 0):
        super().__init__(dims, options, layer_idx)
        o = options.resolved(dims)
        self.num_heads, self.num_v_heads = o.num_heads, o.num_v_heads
        self.head_k_dim, self.head_v_dim = o.head_k_dim, o.head_v_dim
        self.conv_length, self.chunk_size, self.norm_eps = o.conv_length, o.chunk_size, o.norm_eps
        self.key_dim = o.num_heads * o.head_k_dim
        self.value_dim = o.num_v_heads * o.head_v_dim
        self.conv_dim = 2 * self.key_dim + self.value_dim
        # one fused projection: [q | k | v | z | b | a], each head-major
        self.in_proj = Linear(dims.hidden_size, self.conv_dim + self.value_dim + 2 * o.num_v_heads, bias=False)
        self.conv_weight = nn.Parameter(torch.empty(self.conv_dim, o.conv_length))
        self.A_log = nn.Parameter(torch.empty(o.num_v_heads))
        self.dt_bias = nn.Parameter(torch.empty(o.num_v_heads))
        self.norm_weight = nn.Parameter(torch.ones(o.head_v_dim))
        self.out_proj = Linear(self.value_dim, dims.hidden_size, bias=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initializes the non-Linear parameters (the model's weight init calls this).

        Decay rates A in [1, 16] and time steps dt log-uniform in [1e-3, 1e-1] (dt_bias is
        softplus^-1(dt)), the Mamba-2 / gated DeltaNet recipe; the conv like nn.Conv1d.
        Written through transformers' ``initialization`` helpers, which skip a parameter
        already loaded from a checkpoint.
        """
        bound = 1.0 / math.sqrt(self.conv_length)
        init.uniform_(self.conv_weight, -bound, bound)
        init.copy_(self.A_log, torch.empty_like(self.A_log).uniform_(1.0, 16.0).log())
        dt = torch.exp(torch.empty_like(self.dt_bias).uniform_(math.log(1e-3), math.log(1e-1))).clamp_min(1e-4)
        init.copy_(self.dt_bias, dt + torch.log(-torch.expm1(-dt)))
        init.ones_(self.norm_weight)

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {
            "conv": torch.zeros(batch_size, self.conv_dim, self.conv_length - 1, device=device, dtype=dtype),
            # the recurrent matrix accumulates over the whole context: kept in float32 even in bf16
            "recurrent": torch.zeros(
                batch_size, self.num_v_heads, self.head_k_dim, self.head_v_dim, device=device, dtype=torch.float32,
            ),
        }

    def forward(
        self, hidden_states: torch.Tensor, state: dict[str, torch.Tensor] | None = None,
        attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        B, T, _ = hidden_states.shape
        keep = None
        if attention_mask is not None:
            if attention_mask.dim() != 2 or attention_mask.shape[0] != B or attention_mask.shape[1] < T:
                raise ValueError(
                    f"attention_mask must be (batch={B}, length >= {T}); got {tuple(attention_mask.shape)}"
                )
            keep = attention_mask[:, -T:].to(hidden_states.dtype)
            # zeroed inputs make the conv see padding as "nothing before the prompt"
            hidden_states = hidden_states * keep[..., None]

        proj = self.in_proj(hidden_states)
        qkv, z, b, a = proj.split([self.conv_dim, self.value_dim, self.num_v_heads, self.num_v_heads], dim=-1)
        conv_in = qkv.transpose(1, 2)
        conv_out, conv_tail = causal_conv1d(
            conv_in, self.conv_weight.to(conv_in.dtype), None if state is None else state["conv"],
        )
        q, k, v = F.silu(conv_out).transpose(1, 2).split([self.key_dim, self.key_dim, self.value_dim], dim=-1)
        # float32 math for the recurrence inputs (float64 stays float64, for gradcheck)
        cd = torch.float64 if hidden_states.dtype == torch.float64 else torch.float32
        q = l2_normalize(q.reshape(B, T, self.num_heads, self.head_k_dim).to(cd))
        k = l2_normalize(k.reshape(B, T, self.num_heads, self.head_k_dim).to(cd))
        v = v.reshape(B, T, self.num_v_heads, self.head_v_dim)
        if self.num_v_heads != self.num_heads:
            group = self.num_v_heads // self.num_heads
            q, k = q.repeat_interleave(group, dim=2), k.repeat_interleave(group, dim=2)

        beta = b.to(cd).sigmoid()
        g = -self.A_log.to(cd).exp() * F.softplus(a.to(cd) + self.dt_bias.to(cd))
        if keep is not None:
            # a padded step with beta = 0 and g = 0 leaves the recurrent state exactly as it was
            beta, g = beta * keep[..., None], g * keep[..., None]

        initial = None if state is None else state["recurrent"]
        rule = recurrent_gated_delta_rule if T == 1 else chunk_gated_delta_rule
        o, final = rule(q, k, v, g, beta, initial_state=initial, output_final_state=state is not None,
                        chunk_size=self.chunk_size)

        # gated RMSNorm per value head: rmsnorm(o) * silu(z), in float32 like the reference
        o = o.to(cd)
        o = o * torch.rsqrt(o.pow(2).mean(-1, keepdim=True) + self.norm_eps)
        o = (self.norm_weight.to(cd) * o) * F.silu(z.reshape(B, T, self.num_v_heads, self.head_v_dim).to(cd))
        out = self.out_proj(o.reshape(B, T, self.value_dim).to(hidden_states.dtype))
        if state is None:
            return out, None
        return out, {"conv": conv_tail.to(state["conv"].dtype), "recurrent": final.to(state["recurrent"].dtype)}

    @classmethod
    def param_count(cls, dims: ModelDims, options: GatedDeltaNetOptions) -> int:
        o = options.resolved(dims)
        key_dim, value_dim = o.num_heads * o.head_k_dim, o.num_v_heads * o.head_v_dim
        conv_dim = 2 * key_dim + value_dim
        in_proj = dims.hidden_size * (conv_dim + value_dim + 2 * o.num_v_heads)
        return in_proj + conv_dim * o.conv_length + 2 * o.num_v_heads + o.head_v_dim + value_dim * dims.hidden_size

    @classmethod
    def state_bytes(
        cls, dims: ModelDims, options: GatedDeltaNetOptions, context_length: int,
        batch_size: int = 1, dtype_bytes: int = 2,
    ) -> int:
        o = options.resolved(dims)
        conv_dim = 2 * o.num_heads * o.head_k_dim + o.num_v_heads * o.head_v_dim
        conv = conv_dim * (o.conv_length - 1) * dtype_bytes
        recurrent = o.num_v_heads * o.head_k_dim * o.head_v_dim * 4      # float32, see init_state
        return batch_size * (conv + recurrent)

    @classmethod
    def flops_per_token(cls, dims: ModelDims, options: GatedDeltaNetOptions, context_length: int) -> int:
        o = options.resolved(dims)
        # per value head and step: decay, read k^T S, rank-one write, read q^T S: ~4 K*V multiply-adds
        recurrence = 4 * o.num_v_heads * o.head_k_dim * o.head_v_dim
        return 2 * (cls.param_count(dims, options) + recurrence)
