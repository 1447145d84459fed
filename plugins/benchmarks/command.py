"""The ``bench`` command: runs one benchmark from the ``edgesmith_benchmarks`` registry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

from edgesmith.core.command import command_options
from edgesmith.core.plugin_manager import get_plugin_manager


@dataclass
class BenchOptions:
    """``bench``: the registered benchmark to run. Its own options are the section named like it
    (``model_speed.repeats=3``), the layout some benchmarks measure the ``model`` group."""

    bench: str = "model_speed"


def bench_command(cfg: Any, run_dir: Path) -> dict:
    """Runs the benchmark ``cfg.bench`` names in ``run_dir``, with its section's validated options.

    An unknown name is an error listing the registered benchmarks; so is a top-level key that
    is neither ``bench``, ``model`` nor a benchmark's section.
    """
    plugins = get_plugin_manager()
    options, _ = command_options(cfg, BenchOptions, "bench", also=("model", *plugins.names("benchmark")))
    name = options.bench
    benchmark = plugins.get("benchmark", name, key="bench")
    bench_options = plugins.options("benchmark", name, OmegaConf.select(cfg, name, default=None), key=name)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    result = benchmark.function(bench_options, cfg, run_dir)
    Console(stderr=True).print(f"benchmark '{name}' results in {run_dir}", highlight=False)
    return result
