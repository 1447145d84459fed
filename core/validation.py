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
    try:
        return EdgeConfig(**raw)
    except TypeError as exc:
        raise ConfigError("model", sorted(raw), "EdgeConfig fields", detail=str(exc)) from exc


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
