"""``swa``: the ``gqa`` attention restricted to a sliding window of ``window`` positions.

Position ``t`` sees ``t - window + 1 .. t``. The decode state is a ring buffer of at most
``window`` entries, so memory stays flat however long the context grows::

    {"key": (B, Hkv, n, D), "value": (B, Hkv, n, D),
     "slot_pos": (B, n) int64,   # absolute index of the token in each slot, -1: empty or padding
     "seen": int}                # positions processed so far (padding included)

with ``n = min(window, cache_capacity(seen))`` slots (preallocated in blocks, like ``gqa``'s
buffers, and never more than the window; slots not yet written hold -1 in ``slot_pos``);
the token at absolute index ``p`` lives in slot ``p % window``.
Slot order does not matter to attention (keys are stored already rotated), only which
slots are valid and inside the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from edgesmith.core.cache import cache_capacity
from edgesmith.core.errors import ConfigError
from edgesmith.core.operator import ModelDims
from edgesmith.kernels.swa.ops import sliding_window_attention

from .gqa import GQAOptions, GroupedQueryAttention, attention, position_mask


@dataclass
class SWAOptions(GQAOptions):
    """``window``: how many positions (the current one included) each token sees."""

    window: int = 512

    def validate(self, dims: ModelDims, key: str) -> None:
        super().validate(dims, key)
        if not isinstance(self.window, int) or isinstance(self.window, bool) or self.window < 1:
            raise ConfigError(f"{key}.window", self.window, "a positive integer")


class SlidingWindowAttention(GroupedQueryAttention):
    """Sliding-window GQA with a ring-buffer decode state (see the module docstring)."""

    options_class = SWAOptions

    def init_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict:
        empty = torch.zeros(batch_size, self.num_kv_heads, 0, self.head_dim, device=device, dtype=dtype)
        return {"key": empty, "value": empty.clone(),
                "slot_pos": torch.full((batch_size, 0), -1, dtype=torch.long, device=device), "seen": 0}

    def forward(
        self, hidden_states: torch.Tensor, state: dict | None = None,
        attention_mask: torch.Tensor | None = None, position_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict | None]:
        B, T, _ = hidden_states.shape
        window = self.options.window
        past = 0 if state is None else state["seen"]
        device = hidden_states.device
        if position_ids is None:
            position_ids = torch.arange(past, past + T, device=device).unsqueeze(0)
        q, k, v = self.project(hidden_states, position_ids)

        new_pos = torch.arange(past, past + T, device=device).unsqueeze(0).expand(B, T)
        padded = attention_mask is not None and not bool(attention_mask[:, -T:].all())
        if padded:
            new_pos = torch.where(attention_mask[:, -T:].bool(), new_pos, -1)
        buffered = 0 if state is None else state["key"].shape[2]

        if buffered == 0:  # nothing cached: the whole-sequence kernel (or its masked form)
            if padded:
                query_pos = torch.arange(past, past + T, device=device).unsqueeze(0)
                mask = position_mask(query_pos, new_pos, self_index=torch.arange(T, device=device), window=window)
                o = attention(q, k, v, self.scale, mask=mask)
            else:
                o = sliding_window_attention(q, k, v, window, scale=self.scale)
        elif T == 1:  # write first: the slot taken is exactly the one leaving the window
            state = self._write(state, k, v, new_pos)
            slot = past % window
            slots = torch.arange(state["key"].shape[2], device=device)
            allowed = (state["slot_pos"] >= 0) | (slots == slot)
            mask = None if bool(allowed.all()) else allowed[:, None, None, :]
            o = attention(q, state["key"], state["value"], self.scale, mask=mask)
        else:  # chunk continuing from a cache: cached slots plus the chunk, masked by position
            keys = torch.cat([state["key"], k], dim=2)
            values = torch.cat([state["value"], v], dim=2)
            key_pos = torch.cat([state["slot_pos"], new_pos], dim=1)
            query_pos = torch.arange(past, past + T, device=device).unsqueeze(0)
            mask = position_mask(query_pos, key_pos, self_index=buffered + torch.arange(T, device=device),
                                 window=window)
            o = attention(q, keys, values, self.scale, mask=mask)

        if state is not None and state["seen"] != past + T:
            state = self._write(state, k, v, new_pos)
        return self.out_proj(o.transpose(1, 2).reshape(B, T, -1)), state

    def _write(self, state: dict, k: torch.Tensor, v: torch.Tensor, new_pos: torch.Tensor) -> dict:
        """Stores the last ``min(T, window)`` new tokens at slots ``p % window``."""
        window, T = self.options.window, k.shape[2]
        end = state["seen"] + T
        kept = min(T, window)
        key, value, slot_pos = state["key"], state["value"], state["slot_pos"]
        size = min(cache_capacity(end), window)
        if key.shape[2] < size:  # still filling up: grow by a block, at most to the window
            grow = size - key.shape[2]
            key = torch.cat([key, key.new_zeros(*key.shape[:2], grow, key.shape[3])], dim=2)
            value = torch.cat([value, value.new_zeros(*value.shape[:2], grow, value.shape[3])], dim=2)
            slot_pos = torch.cat([slot_pos, slot_pos.new_full((slot_pos.shape[0], grow), -1)], dim=1)
        slots = torch.arange(end - kept, end, device=k.device) % window
        new_k, new_v, new_p = k[:, :, T - kept:], v[:, :, T - kept:], new_pos[:, T - kept:]
        if torch.is_grad_enabled() and (new_k.requires_grad or key.requires_grad):
            key, value = key.index_copy(2, slots, new_k), value.index_copy(2, slots, new_v)
            slot_pos = slot_pos.index_copy(1, slots, new_p)
        else:  # decode: update the ring buffer in place, no allocation per step
            key.index_copy_(2, slots, new_k)
            value.index_copy_(2, slots, new_v)
            slot_pos.index_copy_(1, slots, new_p)
        return {"key": key, "value": value, "slot_pos": slot_pos, "seen": end}

    @classmethod
    def state_bytes(cls, dims, options, context_length, batch_size=1, dtype_bytes=2) -> int:
        held = min(cache_capacity(context_length), options.window)
        kv = 2 * batch_size * dims.num_key_value_heads * dims.head_dim * held * dtype_bytes
        return kv + 8 * batch_size * held  # int64 slot positions

    @classmethod
    def flops_per_token(cls, dims, options, context_length) -> int:
        return super().flops_per_token(dims, options, min(context_length, options.window))
