"""The one options contract of every plugin kind, and where each default lives.

Every plugin (operator, stage, environment, judge, reward, profiler, quality proxy,
tool-call format; a benchmark or a command through its :class:`~edgesmith.core.command.Benchmark`
or :class:`~edgesmith.core.command.Command` record) declares ``options_class``: a dataclass whose fields, with their types
and defaults, are everything a user may set for it. The plugin manager builds a plugin from
``(kind, name, raw options, config key)`` (:meth:`PluginManager.build
<edgesmith.core.plugin_manager.PluginManager.build>`): :func:`build_options` checks unknown
keys and types here, once, and every error names the full config key
(``dpo.judges[1].options.ngram_sise``) and what is accepted. Objects a plugin needs at run
time (environments, tasks, a tokenizer, a seed) are keyword arguments of the constructor,
never mixed into the user's options. A list of weighted plugins in a config is a list of
:class:`PluginRef`; the one plugin of a role is a :class:`PluginChoice`.

Where a default lives: a library default (the value a plugin or stage has when nobody sets
it) is written once, in its options dataclass. YAML under ``conf/`` never restates it.
The one exception is a job preset (``conf/run.yaml``: the sizes of the main job that bare
``edgesmith`` runs): it may override a value for that job, as a documented choice of that
job, exactly like a user's ``key=value``; it is not a second default. Defaults a plugin
gives its own options (``repetition.ngram_size``) are not repeated where the plugin is
referenced (``rl.rewards``).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError, PluginError, UnknownOptionError


@dataclass
class NoOptions:
    """Options of a plugin that takes none (any key given is an error)."""


@dataclass
class PluginRef:
    """One weighted plugin of a list in a config (a juror, a reward term): name, weight, options.

    ``options`` stay raw here; the plugin manager validates them against the named plugin's
    ``options_class`` when it builds the plugin, naming ``<key>.options.<field>`` on error.
    """

    name: str
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class PluginChoice:
    """The one plugin chosen for a role (``search.profiler``, ``search.proxy``): name and raw options."""

    name: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def build_options(options_class: type, section: Any, key: str) -> Any:
    """Merges ``section`` (a mapping or None) into ``options_class`` and returns the dataclass.

    Type errors and unknown keys become :class:`ConfigError` naming ``key.<field>`` (bare
    ``<field>`` when ``key`` is empty: a command's top-level options) and the accepted keys,
    also inside a nested options dataclass (``eval.loop_detector.min_spann``); value checks
    are the dataclass's own ``__post_init__`` (which should raise ConfigError). An instance
    of ``options_class`` is returned as it is.
    """
    if isinstance(section, options_class):
        return section
    if section is None:
        section = {}
    if isinstance(section, DictConfig):
        section = OmegaConf.to_container(section, resolve=True)
    if not isinstance(section, dict):
        raise ConfigError(key, section, f"a mapping of {options_class.__name__} options")
    check_keys(options_class, section, key)
    hints = field_types(options_class)
    section = dict(section)
    for name, value in section.items():
        # OmegaConf would read "yes"/"off"/1 as a bool; a flag given as anything else is a typo.
        if hints.get(name) is bool and not isinstance(value, bool):
            raise ConfigError(_join(key, name), value, "true or false")
        if dataclasses.is_dataclass(hints.get(name)) and isinstance(value, (dict, DictConfig)):
            section[name] = build_options(hints[name], value, _join(key, name))
    try:
        schema = OmegaConf.structured(options_class)
    except OmegaConfBaseException as exc:  # the plugin's own mistake, not the user's
        raise PluginError(f"{options_class.__qualname__} (the options of {key}) is not a valid options dataclass: "
                          f"{str(exc).splitlines()[0]}; accepted field types: bool, int, float, str, enums, "
                          "Optional, list, dict, nested dataclasses, Any") from exc
    for name, value in section.items():
        # A mapping given for a plain dict option replaces the default (as a list does), rather
        # than merging into it: mix={single: 1} means single calls only. Nested dataclasses merge.
        if isinstance(value, dict) and OmegaConf.get_type(schema, name) is dict:
            schema[name] = {}
    try:
        merged = OmegaConf.merge(schema, section)
        return OmegaConf.to_object(merged)
    except ConfigError as exc:
        # An options class shared with a command (eval) names its keys bare: name the section too.
        if not key or exc.key == key or exc.key.startswith(f"{key}."):
            raise
        raise ConfigError(_join(key, exc.key), exc.value, exc.accepted, exc.detail) from exc
    except OmegaConfBaseException as exc:
        field_name = getattr(exc, "full_key", None) or "?"
        value: Any = section
        for part in str(field_name).split("."):  # the value the user gave, also for nested keys
            value = value.get(part, "?") if isinstance(value, dict) else "?"
        raise ConfigError(_join(key, field_name), value, "a value of the declared type",
                          detail=str(exc).splitlines()[0]) from exc


def check_keys(options_class: type, section: dict[str, Any], key: str, label: str | None = None,
               also: tuple[str, ...] = ()) -> None:
    """The one unknown-key check: a key of ``section`` that is no field of ``options_class`` is a
    :class:`ConfigError` naming ``key.<name>`` (bare ``<name>`` when ``key`` is empty: a command's
    top-level options) and every accepted key, ``also`` (keys the caller reads itself) included."""
    fields = {f.name for f in dataclasses.fields(options_class)}
    unknown = sorted(set(section) - fields)
    if unknown:
        accepted = [*also, *sorted(fields)]
        raise UnknownOptionError(_join(key, unknown[0]), section[unknown[0]],
                                 f"options of {label or key}: {', '.join(accepted) or 'none'}")


def _join(key: str, name: Any) -> str:
    """``key.name``, or bare ``name`` under the empty key (a command's top-level options)."""
    return f"{key}.{name}" if key else str(name)


def field_types(options_class: type) -> dict[str, Any]:
    """The resolved type annotations of an options dataclass ({} when one does not resolve)."""
    try:
        return typing.get_type_hints(options_class)
    except Exception:  # an annotation that does not resolve: OmegaConf's own checks still apply
        return {}


def require_at_least_one(options: Any, section: str, names: tuple[str, ...]) -> None:
    """Raises :class:`ConfigError` naming ``section.<name>`` for the first field below 1.

    The common check of counts (steps, batch sizes, lengths) in options dataclasses.
    """
    for name in names:
        value = getattr(options, name)
        if value < 1:
            raise ConfigError(f"{section}.{name}", value, "an integer >= 1")
