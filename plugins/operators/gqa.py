"""``gqa``: causal grouped-query attention with RoPE and per-head RMSNorm on q and k (as in LFM2).

Projections and norms carry LFM2's names (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``,
``q_layernorm``, ``k_layernorm``) and the same arithmetic, so LFM2 attention weights load
one to one. Decode state::

    {"key": (B, Hkv, C, D), "value": (B, Hkv, C, D),   # preallocated buffers
     "length": int}                                    # S: positions written so far

holding the rotated keys and the values of all S positions seen so far (padding included,
masked out by the attention mask) in the first S of C = ``cache_capacity(S)`` slots. A
decode step writes its key and value in place; the buffers are regrown (one copy) only
when a block of ``CACHE_BLOCK`` positions is full. Under autograd the buffers are instead
concatenated out of place, exactly sized, since an in-place write would invalidate what
the backward pass saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from edgesmith.core.cache import cache_capacity
from edgesmith.core.errors import ConfigError
from edgesmith.core.linear import Linear
from edgesmith.core.operator import ModelDims, OperatorOptions, TokenMixer
from edgesmith.core.rmsnorm import RMSNorm

from .rotary import apply_rope, rope_cos_sin


@dataclass
class GQAOptions(OperatorOptions):
    """``qk_norm``: RMSNorm on each query and key head before RoPE (LFM2: true)."""

    qk_norm: bool = True

    def validate(self, dims: ModelDims, key: str) -> None:
        if not isinstance(self.qk_norm, bool):
            raise ConfigError(f"{key}.qk_norm", self.qk_norm, "true or false")
        if dims.head_dim % 2:
            raise ConfigError("model.head_dim", dims.head_dim,
                              f"an even number ({key} uses RoPE, which rotates pairs of dims)")


def position_mask(
    query_pos: torch.Tensor, key_pos: torch.Tensor, self_index: torch.Tensor, window: int | None = None,
) -> torch.Tensor:
    """Boolean (B, 1, T, S) mask: query at absolute index ``query_pos`` (B or 1, T) may see the key
    at ``key_pos`` (B or 1, S; -1 marks padding or an empty slot) when it is not in the future
    and, with a ``window``, less than ``window`` positions back.

    Each query may always see its own key (index ``self_index`` (T,) among the keys): a
    padded query would otherwise see nothing and its softmax would be NaN, and NaN at a
    padded position still poisons real ones through ``0 * NaN``.
    """
    keys = key_pos[:, None, :]
    queries = query_pos[:, :, None]
    allowed = (keys >= 0) & (keys <= queries)
    if window is not None:
        allowed = allowed & (keys > queries - window)
    own = torch.arange(key_pos.shape[-1], device=key_pos.device)[None, :] == self_index[:, None]
    return (allowed | own).unsqueeze(1)


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float,
    mask: torch.Tensor | None = None, causal: bool = False,
) -> torch.Tensor:
    """torch SDPA with grouped KV heads (no copy of K/V per query head)."""
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=mask, is_causal=causal, scale=scale, enable_gqa=q.shape[1] != k.shape[1],
    )


class GroupedQueryAttention(TokenMixer):
    """Causal GQA layer with a preallocated KV cache (see the module docstring for the state)."""

    options_class = GQAOptions

    def __init__(self, dims: ModelDims, options: GQAOptions, layer_idx: int = 0):
        super().__init__(dims, options, layer_idx)
        d, hd = dims.hidden_size, dims.head_dim
        self.head_dim = hd
        self.num_heads, self.num_kv_heads = dims.num_attention_heads, dims.num_key_value_heads
        self.scale = hd ** -0.5
        self.q_proj = Linear(d, self.num_heads * hd, bias=False)
        self.k_proj = Linear(d, self.num_kv_heads * hd, bias=False)
        self.v_proj = Linear(d, self.num_kv_heads * hd, bias=False)
        self.out_proj = Linear(self.num_heads * hd, d, bias=False)
        norm = (lambda: RMSNorm(hd, eps=dims.norm_eps)) if options.qk_norm else nn.Identity
        self.q_layernorm, self.k_layernorm = norm(), norm()

    def project(self, hidden_states: torch.Tensor, position_ids: torch.Tensor):
        """q (B, H, T, D), k and v (B, Hkv, T, D); q and k normed per head, then rotated."""
        B, T, _ = hidden_states.shape
        shape = (B, T, -1, self.head_dim)
        q = self.q_layernorm(self.q_proj(hidden_states).view(shape)).transpose(1, 2)
        k = self.k_layernorm(self.k_proj(hidden_states).view(shape)).transpose(1, 2)
        v = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        cos, sin = rope_cos_sin(position_ids, self.head_dim, self.dims.rope_theta, q.dtype)
        q, k = apply_rope(q, k, cos, sin)
        return q, k, v

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict:
        empty = torch.zeros(batch_size, self.num_kv_heads, 0, self.head_dim, device=device, dtype=dtype)
        return {"key": empty, "value": empty.clone(), "length": 0}

    def forward(
        self, hidden_states: torch.Tensor, state: dict | None = None,
        attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict | None]:
        B, T, _ = hidden_states.shape
        past = 0 if state is None else state["length"]
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=hidden_states.device).unsqueeze(0)
        q, k, v = self.project(hidden_states, position_ids)
        new_state = None
        if state is not None:
            new_state = self._append(state, k, v)
            k, v = new_state["key"][:, :, :past + T], new_state["value"][:, :, :past + T]
        o = self._causal_attention(q, k, v, attention_mask)
        return self.out_proj(o.transpose(1, 2).reshape(B, T, -1)), new_state

    @staticmethod
    def _append(state: dict, k: torch.Tensor, v: torch.Tensor) -> dict:
        """Writes the new keys and values after the ``length`` cached ones (see the module docstring)."""
        key, value, past = state["key"], state["value"], state["length"]
        end = past + k.shape[2]
        if torch.is_grad_enabled() and (k.requires_grad or key.requires_grad):
            return {"key": torch.cat([key[:, :, :past], k], dim=2),
                    "value": torch.cat([value[:, :, :past], v], dim=2), "length": end}
        if key.shape[2] < end:  # full: move to a buffer with room for the next block
            capacity = cache_capacity(end)
            grown_key = key.new_empty(*key.shape[:2], capacity, key.shape[3])
            grown_value = value.new_empty(*value.shape[:2], capacity, value.shape[3])
            grown_key[:, :, :past] = key[:, :, :past]
            grown_value[:, :, :past] = value[:, :, :past]
            key, value = grown_key, grown_value
        key[:, :, past:end] = k
        value[:, :, past:end] = v
        return {"key": key, "value": value, "length": end}

    def _causal_attention(self, q, k, v, attention_mask):
        T, S = q.shape[2], k.shape[2]
        past = S - T
        if attention_mask is None or bool(attention_mask.all()):
            if T == 1:  # one new query sees every key: no mask needed
                return attention(q, k, v, self.scale)
            if past == 0:
                return attention(q, k, v, self.scale, causal=True)
            key_pos = torch.arange(S, device=q.device).unsqueeze(0)
        else:
            if attention_mask.shape[-1] < S:
                raise ValueError(f"attention_mask covers {attention_mask.shape[-1]} positions, the keys {S}")
            index = torch.arange(S, device=q.device)
            key_pos = torch.where(attention_mask[:, -S:].bool(), index, -1)
        query_pos = torch.arange(past, S, device=q.device).unsqueeze(0)
        mask = position_mask(query_pos, key_pos, self_index=torch.arange(past, S, device=q.device))
        return attention(q, k, v, self.scale, mask=mask)

    @classmethod
    def param_count(cls, dims: ModelDims, options: GQAOptions) -> int:
        d, hd = dims.hidden_size, dims.head_dim
        q_out, kv_out = dims.num_attention_heads * hd, dims.num_key_value_heads * hd
        return 2 * d * q_out + 2 * d * kv_out + (2 * hd if options.qk_norm else 0)

    @classmethod
    def state_bytes(cls, dims, options, context_length, batch_size=1, dtype_bytes=2) -> int:
        held = cache_capacity(context_length)  # the preallocated buffers, not only the filled part
        return 2 * batch_size * dims.num_key_value_heads * dims.head_dim * held * dtype_bytes

    @classmethod
    def flops_per_token(cls, dims, options, context_length) -> int:
        # projections, plus q.k and p.v over every cached position
        return 2 * cls.param_count(dims, options) + 4 * dims.num_attention_heads * dims.head_dim * context_length
