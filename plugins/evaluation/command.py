"""The ``edgesmith eval`` command: evaluates a model directory into the Hydra run directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import build_options, check_keys

from .options import EvalOptions



def base_keys() -> set[str]:
    """Top-level keys every command shares (conf/base.yaml): not options of eval."""
    from importlib.resources import files

    base = OmegaConf.load(str(files("edgesmith.conf") / "base.yaml"))
    return set(base.keys()) | {"hydra"}


def options_from_cfg(cfg: Any) -> tuple[str, EvalOptions]:
    """``model_path`` and the validated :class:`EvalOptions` of a composed ``eval`` config."""
    raw = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    model_path = raw.pop("model_path", None)
    seed = raw.get("seed")  # base's seed is eval's seed
    for key in base_keys():
        raw.pop(key, None)
    if seed is not None:
        raw["seed"] = seed
    check_keys(EvalOptions, raw, key="", label="eval", also=("model_path",))  # eval's keys are top-level
    if not model_path:
        raise ConfigError("model_path", model_path, "a model directory: edgesmith eval model_path=DIR")
    return str(model_path), build_options(EvalOptions, raw, key="eval")


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
