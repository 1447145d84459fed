"""Commands of the ``edgesmith`` console script beyond ``run`` and ``plugins``.

Built-in commands (search, eval, convert, bench) register through the ``edgesmith_commands``
hook like any plugin, so the core does not import the layers above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


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
