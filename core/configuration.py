"""``EdgeConfig``: shared dims plus a per-layer list of operator specs.

Any mix and order of operators is one config: ``layers=[{"op": "short_conv",
"conv_length": 3}, {"op": "gqa"}, ...]``. Inconsistent dims are rejected when the config
is built, with the key, the value and what is accepted.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from transformers import PretrainedConfig

from .errors import ConfigError
from .operator import ModelDims

DEFAULT_LAYERS = [{"op": "short_conv"}, {"op": "gqa"}]


class EdgeConfig(PretrainedConfig):
    """Configuration of :class:`edgesmith.core.modeling.EdgeForCausalLM` (model_type ``edgesmith``)."""

    model_type = "edgesmith"
    keys_to_ignore_at_inference = ["past_key_values"]
    # No remote code: the classes are registered with the Auto* factories. TRL builds GRPO's
    # reference model (rl.beta > 0) through `config.auto_map` when transformers has no class of
    # the architecture's name, and the attribute must exist for that (and be a mapping for
    # transformers' own remote-code check).
    auto_map = MappingProxyType({})

    def __init__(
        self,
        vocab_size: int = 512,
        hidden_size: int = 64,
        intermediate_size: int | None = None,
        num_attention_heads: int = 4,
        num_key_value_heads: int | None = None,
        head_dim: int | None = None,
        layers: list[dict[str, Any]] | None = None,
        max_position_embeddings: int = 4096,
        rope_theta: float = 1_000_000.0,
        norm_eps: float = 1e-5,
        initializer_range: float = 0.02,
        tie_word_embeddings: bool = True,
        use_cache: bool = True,
        pad_token_id: int | None = 0,
        bos_token_id: int | None = 1,
        eos_token_id: int | list[int] | None = 2,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size if intermediate_size is not None else 3 * hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads if num_key_value_heads is not None else num_attention_heads
        self.head_dim = head_dim if head_dim is not None else (
            hidden_size // num_attention_heads if num_attention_heads else 0)
        self.layers = [dict(layer) for layer in (layers if layers is not None else DEFAULT_LAYERS)]
        self.num_hidden_layers = len(self.layers)
        self.max_position_embeddings = max_position_embeddings
        self.rope_theta = rope_theta
        self.norm_eps = norm_eps
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        self._validate()
        super().__init__(
            pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id,
            tie_word_embeddings=tie_word_embeddings, **kwargs,
        )

    def _validate(self) -> None:
        positive = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads",
                    "num_key_value_heads", "head_dim", "max_position_embeddings")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"model.{key}", value, "a positive integer")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError("model.num_attention_heads", self.num_attention_heads,
                              f"a divisor of model.hidden_size={self.hidden_size}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError("model.num_key_value_heads", self.num_key_value_heads,
                              f"a divisor of model.num_attention_heads={self.num_attention_heads}")
        if not self.layers:
            raise ConfigError("model.layers", self.layers, "a non-empty list of operator specs")
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, dict) or not isinstance(layer.get("op"), str):
                raise ConfigError(f"model.layers[{i}]", layer,
                                  "a mapping with an 'op' key naming a registered operator")
        if not self.norm_eps > 0:
            raise ConfigError("model.norm_eps", self.norm_eps, "a positive number")

    @property
    def dims(self) -> ModelDims:
        return ModelDims(
            hidden_size=self.hidden_size,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=self.rope_theta,
            norm_eps=self.norm_eps,
        )

    def operator_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """``(operator name, options)`` for every layer."""
        return [(layer["op"], {k: v for k, v in layer.items() if k != "op"}) for layer in self.layers]

    def resolve_operators(self, manager=None) -> list[tuple[type, Any]]:
        """Operator classes and validated options per layer; unknown names list the registered ones."""
        from .plugin_manager import get_plugin_manager

        manager = manager or get_plugin_manager()
        resolved = []
        for i, (name, raw) in enumerate(self.operator_specs()):
            cls = manager.get("operator", name, key=f"model.layers[{i}].op")
            resolved.append((cls, cls.parse_options(raw, self.dims, key=f"model.layers[{i}]")))
        return resolved
