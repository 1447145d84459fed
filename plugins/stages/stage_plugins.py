"""The plugins a stage names in its options: checked before any stage runs, built when it runs."""

from __future__ import annotations

from typing import Any

from edgesmith.core.environment import Environment
from edgesmith.core.errors import ConfigError
from edgesmith.core.stage import StageContext


def check_plugin_names(plugins: Any, kind: str, names: Any, key: str) -> None:
    """Before any stage runs: every name in ``names`` is a registered ``kind`` plugin (and there is one)."""
    names = list(names or [])
    if not names:
        raise ConfigError(key, names, f"a non-empty list of {kind}s from: {', '.join(plugins.names(kind))}")
    for i, name in enumerate(names):
        plugins.get(kind, name, key=f"{key}[{i}]")


def build_environments(ctx: StageContext, names: list[str], seed: int, difficulty: int = 1,
                       key: str | None = None) -> dict[str, Environment]:
    """Instantiates the named environment plugins (unknown names list the registered ones)."""
    key = key or f"{ctx.name}.environments"
    if not names:
        raise ConfigError(key, names, f"a non-empty list of environments from: "
                                      f"{', '.join(ctx.plugins.names('environment'))}")
    return {name: ctx.plugins.build("environment", name, key=f"{key}[{i}]", seed=seed, difficulty=difficulty)
            for i, name in enumerate(names)}
