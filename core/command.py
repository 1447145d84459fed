"""Commands of the ``edgesmith`` console script beyond ``run`` and ``plugins``, and benchmarks.

Built-in commands (search, eval, convert, bench) register through the ``edgesmith_commands``
hook like any plugin, so the core does not import the layers above it; benchmarks (what
``bench=NAME`` runs) through ``edgesmith_benchmarks``. Both declare their options dataclass.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from .options import build_options, check_keys


@dataclass(frozen=True)
class Command:
    """A command word: its Hydra primary config and the function run with the composed config."""

    name: str
    help: str
    function: Callable[[Any, Path], Any]  # (cfg, run_dir) -> anything
    config_path: str = "pkg://edgesmith.conf"
    config_name: str | None = None  # defaults to the command's name
    #: the command's top-level options dataclass: its defaults are stored as the config
    #: ``<name>_options`` (list it in the command's YAML defaults), so they are written only there
    options_class: type | None = None


@dataclass(frozen=True)
class Benchmark:
    """A benchmark of ``edgesmith bench bench=NAME``: its options dataclass, read from the config
    section named like the benchmark and built through the options contract, and the function
    run with those options, the composed config (the ``model`` group some benchmarks measure)
    and the run directory."""

    function: Callable[[Any, Any, Path], Any]  # (options, cfg, run_dir) -> results
    options_class: type


def shared_keys() -> set[str]:
    """Top-level keys every command shares (conf/base.yaml, and hydra): no command's own options."""
    from importlib.resources import files

    return set(OmegaConf.load(str(files("edgesmith.conf") / "base.yaml")).keys()) | {"hydra"}


def command_options(cfg: Any, options_class: type, command: str, also: tuple[str, ...] = ()) -> tuple[Any, dict]:
    """A command's top-level options from its composed config, checked once.

    The keys of ``conf/base.yaml`` are dropped unless ``options_class`` declares them (eval's
    ``seed``); ``also`` are keys the command reads itself (returned apart, as a dict). An
    unknown key is an error listing every accepted one; errors name the bare key (``to=onnx``),
    as the user typed it.
    """
    raw = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    fields = {f.name for f in dataclasses.fields(options_class)}
    shared = shared_keys() - fields
    extra = {k: raw.pop(k) for k in also if k in raw}
    raw = {k: v for k, v in raw.items() if k not in shared}
    check_keys(options_class, raw, key="", label=command, also=also)
    return build_options(options_class, raw, key=""), extra
