"""Builds a stage's validated options from its section of the composed config."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError


def build_options(config_class: type, section: Any, key: str) -> Any:
    """Merges ``section`` (a mapping or None) into ``config_class`` and returns the dataclass.

    Type errors and unknown keys become :class:`ConfigError` naming ``key.<field>``; value
    checks are the dataclass's own ``__post_init__`` (which should raise ConfigError).
    """
    if section is None:
        section = {}
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    if not isinstance(section, dict):
        raise ConfigError(key, section, f"a mapping of {config_class.__name__} options")
    fields = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(section) - fields)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", section[unknown[0]],
                          f"options of {key}: {', '.join(sorted(fields)) or 'none'}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(config_class), section)
        return OmegaConf.to_object(merged)
    except ConfigError as exc:
        # An options class shared with a command (eval) names its keys bare: name the section too.
        if exc.key == key or exc.key.startswith(f"{key}."):
            raise
        raise ConfigError(f"{key}.{exc.key}", exc.value, exc.accepted, exc.detail) from exc
    except OmegaConfBaseException as exc:
        field = getattr(exc, "full_key", None) or "?"
        value = section.get(field.split(".")[-1], "?") if isinstance(field, str) else "?"
        raise ConfigError(f"{key}.{field}", value, "a value of the declared type",
                          detail=str(exc).splitlines()[0]) from exc


def require_at_least_one(options: Any, section: str, names: tuple[str, ...]) -> None:
    """Raises :class:`ConfigError` naming ``section.<name>`` for the first field below 1.

    The common check of counts (steps, batch sizes, lengths) in options dataclasses.
    """
    for name in names:
        value = getattr(options, name)
        if value < 1:
            raise ConfigError(f"{section}.{name}", value, "an integer >= 1")
