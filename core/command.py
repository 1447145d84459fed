"""Commands of the ``edgesmith`` console script beyond ``run`` and ``plugins``, and benchmarks.

Built-in commands (search, eval, convert, bench) register through the ``edgesmith_commands``
hook like any plugin, so the core does not import the layers above it; benchmarks (what
``bench=NAME`` runs) through ``edgesmith_benchmarks``. Both declare their options dataclass.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from .options import NoOptions, field_types, build_options, check_keys


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
    #: set when ``options_class`` is a config group's section instead (``search``: the preset
    #: ``search=PRESET`` fills :class:`~edgesmith.search.config.SearchConfig`), as a stage's
    #: ``options_group``: the values are the preset's, nothing is stored as ``<name>_options``
    options_group: str | None = None


@dataclass(frozen=True)
class Benchmark:
    """A benchmark of ``edgesmith bench bench=NAME``: its options dataclass, read from the config
    section named like the benchmark and built through the options contract, and the function
    run with those options, the composed config (the ``model`` group some benchmarks measure)
    and the run directory."""

    function: Callable[[Any, Any, Path], Any]  # (options, cfg, run_dir) -> results
    options_class: type


BENCHMARK_CONFIG = "benchmark_{name}"  # the stored defaults of a benchmark's section (conf/bench.yaml lists them)


def section_defaults(options_class: type, skip: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """The defaults of ``options_class`` as a config section, so ``<section>.<key>=value`` overrides
    them (Hydra refuses a key the composed config lacks) while the values stay written once, in
    the dataclass. Left out: ``skip`` (keys another config sets, as conf/base.yaml sets
    ``kernels.backend``) and mapping options at any depth (``search.methods``): Hydra would merge a
    mapping given on the command line into them, where an option's mapping replaces its default,
    so those are given with ``++``/``+``. None when a field has no default."""
    try:
        options = options_class()
    except TypeError:  # a field without a default: the section has to be given whole
        return None
    return _defaults(options, skip)


def _defaults(options: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    hints = field_types(type(options))
    node: dict[str, Any] = {}
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        if f.name in skip or _is_mapping(hints.get(f.name)):
            continue
        if dataclasses.is_dataclass(value):
            node[f.name] = _defaults(value)
        elif isinstance(value, list):
            node[f.name] = [dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for v in value]
        else:
            node[f.name] = value
    return node


def _is_mapping(hint: Any) -> bool:
    """``dict[...]`` or ``Optional[dict[...]]``."""
    if typing.get_origin(hint) is typing.Union:
        return any(_is_mapping(arg) for arg in typing.get_args(hint) if arg is not type(None))
    return hint is dict or typing.get_origin(hint) is dict


def base_config() -> Any:
    """conf/base.yaml: the settings every command shares."""
    from importlib.resources import files

    return OmegaConf.load(str(files("edgesmith.conf") / "base.yaml"))


def shared_keys() -> set[str]:
    """Top-level keys every command shares (conf/base.yaml, and hydra): no command's own options."""
    return set(base_config().keys()) | {"hydra"}


def command_options(cfg: Any, options_class: type, command: str, also: tuple[str, ...] = (),
                    group: str | None = None) -> tuple[Any, dict]:
    """A command's top-level options from its composed config, checked once.

    The keys of ``conf/base.yaml`` are dropped unless ``options_class`` declares them (eval's
    ``seed``); ``also`` are keys the command reads itself (returned apart, as a dict). An
    unknown key is an error listing every accepted one; errors name the bare key (``to=onnx``),
    as the user typed it. With ``group`` (the command's :attr:`Command.options_group`), the
    options are that config group's section instead, and errors name ``<group>.<key>``; the
    top level then accepts only ``group`` and ``also``.
    """
    raw = OmegaConf.to_container(cfg, resolve=True) if not isinstance(cfg, dict) else dict(cfg)
    fields = {group} if group else {f.name for f in dataclasses.fields(options_class)}
    shared = shared_keys() - fields
    extra = {k: raw.pop(k) for k in also if k in raw}
    raw = {k: v for k, v in raw.items() if k not in shared}
    if group:
        check_keys(NoOptions, {k: v for k, v in raw.items() if k != group}, key="", label=command,
                   also=(*also, group))
        return build_options(options_class, raw.get(group), key=group), extra
    check_keys(options_class, raw, key="", label=command, also=also)
    return build_options(options_class, raw, key=""), extra
