"""The ``edgesmith eval`` command: evaluates a model directory into the Hydra run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from edgesmith.core.command import command_options
from edgesmith.core.errors import ConfigError

from .options import EvalOptions


def options_from_cfg(cfg: Any) -> tuple[str, EvalOptions]:
    """``model_path`` and the validated :class:`EvalOptions` of a composed ``eval`` config."""
    options, extra = command_options(cfg, EvalOptions, "eval", also=("model_path",))  # eval's keys are top-level
    model_path = extra.get("model_path")
    if not model_path:
        raise ConfigError("model_path", model_path, "a model directory: edgesmith eval model_path=DIR")
    return str(model_path), options


def eval_command(cfg: Any, run_dir: Path) -> dict[str, Any]:
    from .evaluate import evaluate
    from .report import markdown_table

    model_path, options = options_from_cfg(cfg)
    results = evaluate(options, model_path, out_dir=run_dir)
    console = Console()
    console.print(markdown_table(results), highlight=False)
    console.print(f"report: {Path(run_dir) / 'report.md'}, {Path(run_dir) / 'report.png'}, "
                  f"{Path(run_dir) / 'results.json'}")
    return results
