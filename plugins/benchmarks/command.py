"""The ``bench`` command: runs one benchmark from the ``edgesmith_benchmarks`` registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

from edgesmith.core.errors import ConfigError
from edgesmith.core.plugin_manager import get_plugin_manager


def bench_command(cfg: Any, run_dir: Path) -> dict:
    """Looks up ``cfg.bench`` among the registered benchmarks and runs it in ``run_dir``.

    An unknown name is an error listing the registered benchmarks.
    """
    name = OmegaConf.select(cfg, "bench", default=None)
    plugins = get_plugin_manager()
    if not isinstance(name, str) or not name:
        raise ConfigError("bench", name, f"a registered benchmark: {', '.join(plugins.names('benchmark'))}")
    benchmark = plugins.get("benchmark", name, key="bench")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    result = benchmark(cfg, run_dir)
    Console(stderr=True).print(f"benchmark '{name}' results in {run_dir}", highlight=False)
    return result
