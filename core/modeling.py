"""``EdgeForCausalLM``: a stack of pre-norm blocks, each one token mixer plus a SwiGLU MLP.

Read top to bottom: :class:`SwiGLU` -> :class:`EdgeBlock` -> :class:`EdgeModel` ->
:class:`EdgeForCausalLM`. Which mixer sits in which layer comes from
``config.resolve_operators()`` (the plugin registry), so any registered operator, a
third-party one included, can be placed anywhere. Operator detail lives in the operator's
own file; decode state lives in :class:`~edgesmith.core.cache.EdgeHybridCache`.

Module and parameter names follow transformers' LFM2 so LFM2 checkpoints map by name:
``model.embed_tokens``, ``model.layers.{i}.operator_norm`` / ``.operator`` / ``.ffn_norm`` /
``.feed_forward.{w1,w2,w3}``, ``model.norm`` (LFM2: ``model.embedding_norm``) and ``lm_head``.
Importing this module registers the model with ``AutoConfig``, ``AutoModel`` and
``AutoModelForCausalLM`` (the last lines below). That is the one place: code that loads a
model by Auto class writes ``import edgesmith.core.modeling  # noqa: F401  (Auto classes)``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PreTrainedModel
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPast, CausalLMOutputWithPast
from transformers.modeling_utils import slice_logits_to_keep
from transformers.utils import can_return_tuple
from transformers.utils.deprecation import deprecate_kwarg

from .cache import EdgeHybridCache
from .configuration import EdgeConfig
from .errors import CheckpointError
from .linear import Linear
from .operator import OperatorOptions, TokenMixer
from .rmsnorm import RMSNorm


class SwiGLU(nn.Module):
    """``w2(silu(w1 x) * w3 x)``, LFM2's feed-forward."""

    def __init__(self, hidden_size: int, intermediate_size: int):
        super().__init__()
        self.w1 = Linear(hidden_size, intermediate_size, bias=False)
        self.w3 = Linear(hidden_size, intermediate_size, bias=False)
        self.w2 = Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class EdgeBlock(GradientCheckpointingLayer):
    """``x + mixer(norm(x))``, then ``x + ffn(norm(x))``."""

    def __init__(self, config: EdgeConfig, layer_idx: int, operator_cls: type[TokenMixer], options: OperatorOptions):
        super().__init__()
        self.layer_idx = layer_idx
        self.operator_norm = RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.operator = operator_cls(config.dims, options, layer_idx)
        self.ffn_norm = RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.feed_forward = SwiGLU(config.hidden_size, config.intermediate_size)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None, cache: EdgeHybridCache | None = None,
    ) -> torch.Tensor:
        state = None
        if cache is not None:  # (gradient checkpointing drops the cache: a replay must not write it twice)
            state = cache.get_state(self.layer_idx)
            if state is None:
                state = self.operator.init_state(hidden_states.shape[0], hidden_states.device, hidden_states.dtype)
        mixed, state = self.operator(self.operator_norm(hidden_states), state=state,
                                     attention_mask=attention_mask, position_ids=position_ids)
        if cache is not None:
            cache.set_state(self.layer_idx, state)
        hidden_states = hidden_states + mixed
        return hidden_states + self.feed_forward(self.ffn_norm(hidden_states))


class EdgePreTrainedModel(PreTrainedModel):
    """Shared transformers plumbing: config class, weight init, strict checkpoint loading."""

    config_class = EdgeConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["EdgeBlock"]
    _is_stateful = True  # recurrent states cannot be rolled back (no assisted decoding)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # Linear / Conv1d / Embedding: normal(initializer_range); RMSNorm: ones
        if isinstance(module, TokenMixer) and hasattr(module, "reset_parameters"):
            module.reset_parameters()  # operators with their own parameters (decay gates, norms, ...)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # generate must not make a DynamicCache: our forward makes an EdgeHybridCache

    @classmethod
    def from_pretrained(cls, *args: Any, strict: bool = True, **kwargs: Any):
        """``PreTrainedModel.from_pretrained``, but a checkpoint that does not fit fails.

        transformers only warns about missing or unexpected tensors and re-initializes them,
        which would silently turn a bad checkpoint into a random model. With ``strict`` (the
        default) any missing, extra or mis-shaped tensor raises :class:`CheckpointError`
        naming every one of them.
        """
        want_info = kwargs.pop("output_loading_info", False)
        if strict:
            kwargs["ignore_mismatched_sizes"] = True  # so we can report them all, by name, below
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        if strict:
            problems = []
            if info.get("missing_keys"):
                problems.append(f"missing tensors: {', '.join(sorted(info['missing_keys']))}")
            if info.get("unexpected_keys"):
                problems.append(f"unexpected tensors: {', '.join(sorted(info['unexpected_keys']))}")
            if info.get("mismatched_keys"):
                shapes = [_describe_mismatch(m) for m in sorted(info["mismatched_keys"], key=str)]
                problems.append(f"tensors with the wrong shape: {', '.join(shapes)}")
            if problems:
                source = args[0] if args else kwargs.get("pretrained_model_name_or_path")
                raise CheckpointError(
                    f"checkpoint {source} does not fit {cls.__name__} built from its config: "
                    + "; ".join(problems)
                    + ". Accepted: exactly the tensors of model.state_dict() with their shapes "
                    "(pass strict=False to load anyway and re-initialize what is missing)")
        return (model, info) if want_info else model


def _describe_mismatch(entry: Any) -> str:
    if isinstance(entry, (tuple, list)) and len(entry) == 3:
        name, ckpt, model = entry
        return f"{name} (checkpoint {tuple(ckpt)}, model {tuple(model)})"
    return str(entry)


class EdgeModel(EdgePreTrainedModel):
    """Embeddings, the blocks and the final norm; returns hidden states and the cache."""

    _keys_to_ignore_on_load_unexpected = [r"lm_head\.weight"]  # loading the body of a causal-LM checkpoint

    def __init__(self, config: EdgeConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList(
            EdgeBlock(config, i, operator_cls, options)
            for i, (operator_cls, options) in enumerate(config.resolve_operators())
        )
        self.norm = RMSNorm(config.hidden_size, eps=config.norm_eps)
        self.gradient_checkpointing = False
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if attention_mask is not None and attention_mask.dim() != 2:
            raise ValueError(f"attention_mask of shape {tuple(attention_mask.shape)}; accepted: the 2-D padding "
                             "mask (batch, length) with 0 at padding (operators build their own causal masks)")
        hidden_states = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        batch, new_tokens = hidden_states.shape[:2]

        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        cache = self._edge_cache(cache, use_cache)
        if cache is not None:
            attention_mask = cache.full_padding_mask(attention_mask, batch, new_tokens)
        elif attention_mask is not None and bool(attention_mask.all()):
            attention_mask = None  # no padding: let the operators take their fast paths
        past = cache.seen_tokens if cache is not None else 0

        if position_ids is None:
            if attention_mask is not None:  # left padding: real tokens count from 0
                position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)[:, -new_tokens:]
            else:
                position_ids = torch.arange(past, past + new_tokens, device=hidden_states.device).unsqueeze(0)

        for block in self.layers:
            hidden_states = block(hidden_states, attention_mask=attention_mask, position_ids=position_ids, cache=cache)
        if cache is not None:
            cache.advance(new_tokens, attention_mask)
        return BaseModelOutputWithPast(last_hidden_state=self.norm(hidden_states), cache=cache)

    def _edge_cache(self, cache: Cache | None, use_cache: bool) -> EdgeHybridCache | None:
        if isinstance(cache, EdgeHybridCache):
            return cache
        if cache is not None and cache.get_seq_length() > 0:
            raise TypeError(
                f"{type(cache).__name__} with {cache.get_seq_length()} cached tokens cannot carry this model's "
                "operator states; accepted: an EdgeHybridCache, or nothing (one is made on the first forward)")
        if cache is not None or use_cache:  # an empty foreign cache (e.g. a DynamicCache from a trainer)
            return EdgeHybridCache(len(self.layers))
        return None


class EdgeForCausalLM(EdgePreTrainedModel, GenerationMixin):
    """The language model: :class:`EdgeModel` plus an LM head (tied to the embedding by default)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: EdgeConfig):
        super().__init__(config)
        self.model = EdgeModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast:
        outputs = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            cache=cache, inputs_embeds=inputs_embeds, use_cache=use_cache,
        )
        logits = self.lm_head(slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep))
        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=outputs.cache)

    def parameter_breakdown(self) -> dict[str, float]:
        """Parameter counts by part, the embedding's share of the total, and the total.

        ``head`` is 0 when the LM head is tied to the embedding (it adds no parameters).
        """
        def count(modules) -> int:
            return sum(p.numel() for m in modules for p in m.parameters())

        blocks = self.model.layers
        tied = self.lm_head.weight is self.model.embed_tokens.weight
        parts = {
            "embedding": count([self.model.embed_tokens]),
            "operators": count(b.operator for b in blocks),
            "feed_forward": count(b.feed_forward for b in blocks),
            "norms": count([self.model.norm, *(b.operator_norm for b in blocks), *(b.ffn_norm for b in blocks)]),
            "head": 0 if tied else count([self.lm_head]),
        }
        total = sum(parts.values())
        return {**parts, "total": total, "embedding_share": parts["embedding"] / total}


AutoConfig.register(EdgeConfig.model_type, EdgeConfig, exist_ok=True)
AutoModel.register(EdgeConfig, EdgeModel, exist_ok=True)
AutoModelForCausalLM.register(EdgeConfig, EdgeForCausalLM, exist_ok=True)
