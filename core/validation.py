"""Checks a composed config before any work starts.

Every error names the key, the value and what is accepted. Commands call these checks
first, so a typo costs seconds, not a half-finished run.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from .configuration import EdgeConfig
from .errors import ConfigError
from .plugin_manager import PluginManager


def model_config_from_cfg(section: Any) -> EdgeConfig:
    """Builds an :class:`EdgeConfig` from a ``model`` config section (validated)."""
    raw = OmegaConf.to_container(section, resolve=True) if not isinstance(section, dict) else dict(section)
    if not isinstance(raw, dict):
        raise ConfigError("model", raw, "a mapping of EdgeConfig fields")
    raw.pop("name", None)  # a preset's display name, not a model field
    for key, value in raw.items():
        check_model_field(key, value)
    try:
        return EdgeConfig(**raw)
    except TypeError as exc:
        raise ConfigError("model", sorted(raw), "EdgeConfig fields", detail=str(exc)) from exc


# What each model field accepts, so `model.hidden_size=abc` is named before EdgeConfig computes with it.
_INTEGER = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
            "head_dim", "max_position_embeddings")
_NULLABLE = ("intermediate_size", "num_key_value_heads", "head_dim", "pad_token_id", "bos_token_id", "eos_token_id")
_NUMBER = ("rope_theta", "norm_eps", "initializer_range")
_BOOLEAN = ("tie_word_embeddings", "use_cache")
_TOKEN_ID = ("pad_token_id", "bos_token_id", "eos_token_id")
MODEL_FIELDS = (*_INTEGER, *_NUMBER, *_BOOLEAN, *_TOKEN_ID, "layers")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_model_field(key: str, value: Any) -> None:
    """Raises ConfigError naming ``model.<key>`` when the value has the wrong type or the key is unknown."""
    if value is None and key in _NULLABLE:
        return
    if key in _INTEGER and not _is_int(value):
        raise ConfigError(f"model.{key}", value, "a positive integer")
    if key in _NUMBER and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        raise ConfigError(f"model.{key}", value, "a number")
    if key in _BOOLEAN and not isinstance(value, bool):
        raise ConfigError(f"model.{key}", value, "true or false")
    if key in _TOKEN_ID and not (_is_int(value) or (key == "eos_token_id" and isinstance(value, list)
                                                     and all(_is_int(v) for v in value))):
        raise ConfigError(f"model.{key}", value, "a token id (an integer) or null")
    if key == "layers" and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
        raise ConfigError("model.layers", value, "a list of operator specs ({op: NAME, ...options})")
    if key not in MODEL_FIELDS:
        raise ConfigError(f"model.{key}", value, f"a model field: {', '.join(sorted(MODEL_FIELDS))}")


def validate_model(cfg: Any, plugins: PluginManager) -> EdgeConfig | None:
    """Validates ``cfg.model`` (dims and per-layer operators with their options)."""
    section = OmegaConf.select(cfg, "model", default=None)
    if section is None:
        return None
    config = model_config_from_cfg(section)
    config.resolve_operators(plugins)
    return config


def validate_run_config(cfg: Any, plugins: PluginManager) -> None:
    """Everything ``edgesmith run`` checks up front: stages, their options, the model."""
    from .pipeline import plan_stages

    plan_stages(cfg, plugins)
    validate_model(cfg, plugins)
