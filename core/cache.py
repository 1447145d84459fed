"""``EdgeHybridCache``: the decode state of every layer of an :class:`EdgeForCausalLM`.

Each layer's operator owns the layout of its state (KV for ``gqa``, a ring buffer for
``swa``, the conv tail for ``short_conv``, a recurrent matrix for DeltaNet / linear
attention). The cache only relies on this contract, which every operator follows:

* a state is a ``dict`` mapping names to tensors whose dim 0 is the batch, or to plain
  Python values shared by the whole batch (e.g. a token counter);
* ``operator.init_state(batch, device, dtype)`` makes the empty state; ``forward`` returns
  the next one (it may update the given tensors in place; the old dict is then stale).

With that, beam search reordering, batch expansion and selection work for any operator,
third-party ones included. The cache also keeps the 2-D padding mask of all positions seen
so far, so a caller may pass only the new tokens' mask (or none) when decoding.

It subclasses transformers' ``Cache`` so ``GenerationMixin`` (and TRL) treat it as a cache;
the model creates it on the first forward with ``use_cache=True``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers.cache_utils import Cache

State = dict[str, Any]

CACHE_BLOCK = 128  # key/value buffers grow by whole blocks of this many positions


def cache_capacity(positions: int) -> int:
    """Positions a key/value buffer holding ``positions`` tokens is allocated for.

    Operators that keep a growing (or window-bounded) KV cache preallocate it in blocks of
    :data:`CACHE_BLOCK` and write each step in place, so a decode step copies nothing and
    allocates nothing; the buffer is regrown (one copy) every ``CACHE_BLOCK`` steps. Being
    a function of the token count alone, it is what ``state_bytes`` reports too.
    """
    return -(-max(positions, 1) // CACHE_BLOCK) * CACHE_BLOCK


def _map_tensors(state: State | None, fn: Callable[[torch.Tensor], torch.Tensor]) -> State | None:
    if state is None:
        return None
    return {name: fn(value) if isinstance(value, torch.Tensor) else value for name, value in state.items()}


class OperatorStateLayer:
    """One layer's slot in the cache: the operator's state (``None`` until the first forward)."""

    is_compileable = False
    is_sliding = False
    is_croppable = False
    supports_early_init = False

    def __init__(self) -> None:
        self.state: State | None = None

    @property
    def is_initialized(self) -> bool:
        return self.state is not None

    def reset(self) -> None:
        self.state = None

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self.state = _map_tensors(self.state, lambda t: t.index_select(0, beam_idx.to(t.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.state = _map_tensors(self.state, lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.state = _map_tensors(self.state, lambda t: t[indices.to(t.device)])

    def crop(self, tokens_to_remove: int) -> None:
        if tokens_to_remove:
            raise NotImplementedError(
                "EdgeHybridCache cannot drop tokens: recurrent and convolutional states cannot be rolled back")

    def offload(self) -> None:
        self.state = _map_tensors(self.state, lambda t: t.to("cpu", non_blocking=True))

    def prefetch(self) -> None:
        pass

    def get_max_length(self) -> int:
        return -1

    def nbytes(self) -> int:
        """Bytes of memory the state keeps alive (whole storages: a small view of a big tensor counts big)."""
        if self.state is None:
            return 0
        storages = {}
        for value in self.state.values():
            if isinstance(value, torch.Tensor):
                storage = value.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
        return sum(storages.values())

    def __repr__(self) -> str:
        if self.state is None:
            return "OperatorStateLayer(empty)"
        shapes = {k: tuple(v.shape) if isinstance(v, torch.Tensor) else v for k, v in self.state.items()}
        return f"OperatorStateLayer({shapes})"


class EdgeHybridCache(Cache):
    """Per-layer operator states plus the number of positions and the padding mask seen so far."""

    def __init__(self, num_layers: int):
        super().__init__(layers=[OperatorStateLayer() for _ in range(num_layers)])
        self.seen_tokens = 0
        self.padding_mask: torch.Tensor | None = None  # (batch, seen_tokens), None: no padding so far

    # -- what the model uses ------------------------------------------------------------
    def get_state(self, layer_idx: int) -> State | None:
        return self.layers[layer_idx].state

    def set_state(self, layer_idx: int, state: State | None) -> None:
        self.layers[layer_idx].state = state

    def full_padding_mask(self, attention_mask: torch.Tensor | None, batch: int, new_tokens: int) -> torch.Tensor | None:
        """The padding mask over all ``seen_tokens + new_tokens`` positions (``None``: no padding).

        ``attention_mask`` may cover all positions (what ``generate`` passes) or only the new
        ones; it is remembered for the next call. Call :meth:`advance` after the forward.
        """
        total = self.seen_tokens + new_tokens
        if attention_mask is None:
            if self.padding_mask is None:
                return None
            full = torch.cat([self.padding_mask, self.padding_mask.new_ones(batch, new_tokens)], dim=-1)
        elif attention_mask.shape[-1] == total:
            full = attention_mask
        elif attention_mask.shape[-1] == new_tokens:
            past = (self.padding_mask if self.padding_mask is not None
                    else attention_mask.new_ones(batch, self.seen_tokens))
            full = torch.cat([past, attention_mask], dim=-1)
        else:
            raise ValueError(
                f"attention_mask has {attention_mask.shape[-1]} columns; accepted: {total} (cached "
                f"{self.seen_tokens} + new {new_tokens}) or {new_tokens} (the new tokens only)")
        return None if bool(full.all()) else full

    def advance(self, new_tokens: int, full_mask: torch.Tensor | None) -> None:
        self.seen_tokens += new_tokens
        self.padding_mask = full_mask

    def nbytes(self) -> int:
        """Bytes held by all layers' states (tensors only)."""
        return sum(layer.nbytes() for layer in self.layers)

    # -- what transformers' generation asks of a Cache ------------------------------------
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def get_query_offset(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.seen_tokens + query_length, 0

    def has_previous_state(self, layer_idx: int | None = None, state_idx: int | None = None) -> bool:
        return self.seen_tokens > 0

    def reset(self) -> None:
        super().reset()
        self.seen_tokens, self.padding_mask = 0, None

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        super().reorder_cache(beam_idx)
        if self.padding_mask is not None:
            self.padding_mask = self.padding_mask.index_select(0, beam_idx.to(self.padding_mask.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        if self.padding_mask is not None:
            self.padding_mask = self.padding_mask.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        if self.padding_mask is not None:
            self.padding_mask = self.padding_mask[indices]

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)

    @property
    def is_compileable(self) -> bool:
        return False

    @property
    def is_croppable(self) -> bool:
        return False

    @property
    def is_linear(self) -> list[bool]:
        return [False] * len(self.layers)

    @property
    def batch_size(self) -> int:
        for layer in self.layers:
            for value in (layer.state or {}).values():
                if isinstance(value, torch.Tensor):
                    return value.shape[0]
        return -1
