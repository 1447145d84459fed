"""The search space: turns an Optuna trial into an ``EdgeConfig`` dict.

Every choice goes through ``trial.suggest_*`` so any Optuna sampler can drive it and a
retried trial (whose parameters are already fixed) rebuilds exactly the same candidate.
Operators come from the plugin registry, so a third-party operator is searchable as soon
as its package is installed and named in ``search.space.operators``.
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import check_keys
from edgesmith.core.plugin_manager import PluginManager, get_plugin_manager

from .config import SpaceConfig


def attention_positions(num_layers: int, count: int, placement: str) -> list[int]:
    """Layer indices of ``count`` attention layers in a stack of ``num_layers``.

    ``spread`` places them evenly with the last one at the top of the stack (LFM2 keeps
    the first layers convolutional and ends with attention); ``start`` and ``end`` group them.
    """
    count = max(0, min(count, num_layers))
    if count == 0:
        return []
    if placement == "start":
        return list(range(count))
    if placement == "end":
        return list(range(num_layers - count, num_layers))
    step = num_layers / count
    return sorted({num_layers - 1 - int(math.floor(i * step)) for i in range(count)})


class SearchSpace:
    """Samples candidates of a :class:`SpaceConfig` over the registered operators."""

    def __init__(self, config: SpaceConfig, plugins: PluginManager | None = None):
        self.config = config
        self.plugins = plugins or get_plugin_manager()
        registered = self.plugins.names("operator")
        raw = dict(config.operators) if config.operators else {name: {} for name in registered}
        self.operators: dict[str, dict[str, list[Any]]] = {}
        for name, options in raw.items():
            key = f"search.space.operators.{name}"
            cls = self.plugins.get("operator", name, key=key)
            options = dict(options or {})
            # The values here are lists of candidates, so only the keys are the operator's options.
            check_keys(cls.options_class, options, key)
            self.operators[name] = {k: list(v) for k, v in options.items()}
        if config.norm_eps is not None and not config.norm_eps > 0:
            raise ConfigError("search.space.norm_eps", config.norm_eps, "null (the model's default) or a positive number")
        self.attention = [op for op in self.operators if op in config.attention_operators]
        self.others = [op for op in self.operators if op not in config.attention_operators]
        if config.layout == "pattern":
            if config.num_attention[1] > 0 and not self.attention:
                raise ConfigError("search.space.attention_operators", list(config.attention_operators),
                                  f"at least one of search.space.operators ({', '.join(self.operators)}) "
                                  "when search.space.num_attention allows attention layers")
            if config.num_attention[0] < config.num_layers[0] and not self.others:
                raise ConfigError("search.space.operators", list(self.operators),
                                  "at least one non-attention operator when some layers are not attention "
                                  f"(search.space.num_attention={list(config.num_attention)})")

    def _layer(self, trial: optuna.Trial, op: str, chosen: dict[str, dict[str, Any]]) -> dict[str, Any]:
        # One value per (operator, option) for the whole stack, as LFM2 does for its convs.
        if op not in chosen:
            chosen[op] = {opt: trial.suggest_categorical(f"{op}.{opt}", choices)
                          for opt, choices in self.operators[op].items()}
        return {"op": op, **chosen[op]}

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggests one candidate and returns its ``EdgeConfig`` keyword arguments."""
        c = self.config
        num_layers = trial.suggest_int("num_layers", c.num_layers[0], c.num_layers[1])
        hidden = trial.suggest_categorical("hidden_size", list(c.hidden_size))
        ffn_ratio = trial.suggest_categorical("ffn_ratio", [float(r) for r in c.ffn_ratio])
        heads = trial.suggest_categorical("num_attention_heads", list(c.num_attention_heads))
        kv_choice = trial.suggest_categorical("num_key_value_heads", list(c.num_key_value_heads))
        vocab = trial.suggest_categorical("vocab_size", list(c.vocab_size))
        tied = trial.suggest_categorical("tie_word_embeddings", list(c.tie_word_embeddings))
        chosen: dict[str, dict[str, Any]] = {}
        if c.layout == "free":
            names = list(self.operators)
            ops = [trial.suggest_categorical(f"layer_{i}", names) for i in range(num_layers)]
        else:
            # A fixed distribution (clamped afterwards) keeps the parameter usable by
            # samplers that model it across trials of different depths.
            n_attn = 0
            if self.attention:
                n_attn = min(trial.suggest_int("num_attention", c.num_attention[0], c.num_attention[1]),
                             num_layers)
            positions = set()
            attn_op = base_op = None
            if n_attn:
                placement = trial.suggest_categorical("placement", list(c.placements))
                positions = set(attention_positions(num_layers, n_attn, placement))
                attn_op = trial.suggest_categorical("attention_op", self.attention)
            if n_attn < num_layers:
                base_op = trial.suggest_categorical("base_op", self.others)
            ops = [attn_op if i in positions else base_op for i in range(num_layers)]
        layers = [self._layer(trial, op, chosen) for op in ops]
        # A KV-head count that does not divide the heads falls back to the largest one that does.
        kv = math.gcd(heads, kv_choice)
        intermediate = max(8, int(round(hidden * ffn_ratio / 8)) * 8)
        candidate = {
            "vocab_size": vocab,
            "hidden_size": hidden,
            "intermediate_size": intermediate,
            "num_attention_heads": heads,
            "num_key_value_heads": kv,
            "max_position_embeddings": c.max_position_embeddings,
            "tie_word_embeddings": tied,
            "layers": layers,
        }
        if c.norm_eps is not None:  # absent otherwise, so existing studies' candidates keep their keys
            candidate["norm_eps"] = c.norm_eps
        return candidate


def layer_pattern(model_config: dict[str, Any]) -> str:
    """A compact layer string, e.g. ``short_conv x2, gqa, short_conv`` (for tables)."""
    parts: list[tuple[str, int]] = []
    for layer in model_config.get("layers", []):
        op = layer["op"]
        if parts and parts[-1][0] == op:
            parts[-1] = (op, parts[-1][1] + 1)
        else:
            parts.append((op, 1))
    return ", ".join(op if n == 1 else f"{op} x{n}" for op, n in parts)
