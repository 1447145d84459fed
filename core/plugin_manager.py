"""Discovers plugins through the ``edgesmith`` entry-point group and keeps one registry per kind.

Built-in plugins (edgesmith's own distribution) and third-party packages are loaded the
same way. A name registered twice within one kind is an error naming both providers; a
lookup of an unknown name is an error listing the registered names of that kind.
"""

from __future__ import annotations

import importlib.metadata
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .errors import ConfigError, PluginError, UnknownOptionError
from .options import NoOptions, PluginRef, build_options

ENTRY_POINT_GROUP = "edgesmith"


@dataclass(frozen=True)
class Registration:
    """One registered implementation and who provided it."""

    kind: str
    name: str
    implementation: object
    provider: str  # "distribution (module)" for entry points, the plugin name otherwise


class PluginManager:
    """Loads plugins and answers "which class is registered as NAME for KIND"."""

    def __init__(self, load_entry_points: bool = True):
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._providers: dict[str, str] = {}  # pluggy plugin name -> provider label
        self._registries: dict[str, dict[str, Registration]] | None = None
        if load_entry_points:
            self._load_entry_points()

    def _load_entry_points(self) -> None:
        seen_modules: set[str] = set()
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            # The same distribution can be on sys.path twice (editable + tree); load once.
            if ep.value in seen_modules:
                continue
            seen_modules.add(ep.value)
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must say who it is
                raise PluginError(
                    f"could not load edgesmith plugin '{ep.name}' = '{ep.value}' "
                    f"from distribution '{dist}': {type(exc).__name__}: {exc}"
                ) from exc
            self.register(plugin, name=f"{dist}:{ep.name}", provider=f"{dist} ({ep.value})")

    def register(self, plugin: ModuleType | object, name: str, provider: str | None = None) -> None:
        """Registers a module or object holding ``@hookimpl`` functions (in-process plugins, tests)."""
        if self._pm.has_plugin(name):
            raise PluginError(f"a plugin named '{name}' is already registered")
        self._pm.register(plugin, name=name)
        self._providers[name] = provider or name
        self._registries = None

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self._providers.pop(name, None)
        self._registries = None

    def _build(self) -> dict[str, dict[str, Registration]]:
        registries: dict[str, dict[str, Registration]] = {}
        for kind, hook_name in hookspecs.KINDS.items():
            registry: dict[str, Registration] = {}
            hook = getattr(self._pm.hook, hook_name)
            for impl in hook.get_hookimpls():
                provider = self._providers.get(impl.plugin_name, impl.plugin_name)
                result = impl.function() or {}
                if not hasattr(result, "items"):
                    raise PluginError(
                        f"hook {hook_name} of {provider} returned {type(result).__name__}; "
                        "accepted: a mapping of names to implementations"
                    )
                for name, implementation in result.items():
                    if name in registry:
                        raise PluginError(
                            f"{kind} '{name}' is registered twice: by {registry[name].provider} "
                            f"and by {provider}"
                        )
                    registry[name] = Registration(kind, name, implementation, provider)
            registries[kind] = registry
        return registries

    def registry(self, kind: str) -> dict[str, Registration]:
        """All registrations of one kind, by name."""
        if kind not in hookspecs.KINDS:
            raise PluginError(f"unknown plugin kind '{kind}'; accepted: {', '.join(hookspecs.KINDS)}")
        if self._registries is None:
            self._registries = self._build()
        return self._registries[kind]

    def names(self, kind: str) -> list[str]:
        return sorted(self.registry(kind))

    def get(self, kind: str, name: str, key: str | None = None) -> object:
        """The implementation registered as ``name``; an unknown name lists the known ones.

        ``key`` is the config key the name came from, so the error can point at it.
        """
        registry = self.registry(kind)
        if name not in registry:
            where = f" (config key {key})" if key else ""
            known = ", ".join(sorted(registry)) or "none registered"
            raise PluginError(f"unknown {kind} '{name}'{where}; registered {kind}s: {known}")
        return registry[name].implementation

    def build(self, kind: str, name: str, options: Any = None, *, key: str, name_key: str | None = None,
              **runtime: Any) -> Any:
        """Builds the ``kind`` plugin registered as ``name`` with validated options.

        ``options`` (a mapping, None, or an instance of the plugin's ``options_class``) are
        checked against ``options_class`` (see :mod:`.options`), errors naming ``key.<field>``;
        ``name_key`` is the config key the name came from (default ``key``). ``runtime`` are
        the objects the plugin needs besides the user's options (environments, a tokenizer,
        a seed), passed to the constructor as keyword arguments: ``cls(options, **runtime)``.
        """
        cls = self.get(kind, name, key=name_key or key)
        return cls(self.options(kind, name, options, key=key, name_key=name_key), **runtime)

    def options(self, kind: str, name: str, options: Any = None, *, key: str, name_key: str | None = None) -> Any:
        """The validated options of the ``kind`` plugin ``name``, without building it (early checks)."""
        cls = self.get(kind, name, key=name_key or key)
        try:
            return build_options(getattr(cls, "options_class", None) or NoOptions, options, key)
        except UnknownOptionError as exc:
            # An unknown top-level option where the name is a key of its own (search.proxy.name,
            # not a list entry's): usually the name was switched on the command line and Hydra
            # kept the preset's options for the previous plugin.
            if name_key is None or "[" in name_key or exc.key.rpartition(".")[0] != key:
                raise
            hint = (f"options of another {kind}? After {name_key}={name} on the command line, drop the "
                    f"preset's options with '~{key}' (or replace them with '~{key}' '+{key}={{...}}')")
            raise UnknownOptionError(exc.key, exc.value, exc.accepted, detail=hint) from exc

    def check_refs(self, kind: str, refs: Any, key: str) -> None:
        """Before any work starts: ``refs`` (at config key ``key``) is a non-empty list of
        :class:`PluginRef` whose names are registered ``kind`` plugins and whose options are valid."""
        refs = list(refs or [])
        if not refs:
            raise ConfigError(key, refs, f"a non-empty list of {kind}s from: {', '.join(self.names(kind))}")
        for i, entry in enumerate(refs):
            ref = as_ref(entry, f"{key}[{i}]")
            self.options(kind, ref.name, ref.options, key=f"{key}[{i}].options", name_key=f"{key}[{i}].name")

    def build_ref(self, kind: str, ref: Any, key: str, **runtime: Any) -> Any:
        """Builds the plugin a :class:`PluginRef` (or a ``{name, weight, options}`` mapping) at ``key`` names."""
        ref = as_ref(ref, key)
        return self.build(kind, ref.name, ref.options, key=f"{key}.options", name_key=f"{key}.name", **runtime)

    def all_registrations(self) -> list[Registration]:
        return [r for kind in hookspecs.KINDS for r in self.registry(kind).values()]


def as_ref(entry: Any, key: str) -> PluginRef:
    """A :class:`PluginRef` from one config list entry (a PluginRef, a mapping, or a bare name)."""
    if isinstance(entry, PluginRef):
        return entry
    if isinstance(entry, str):
        return PluginRef(entry)
    return build_options(PluginRef, entry, key)


_default: PluginManager | None = None
_lock = threading.Lock()


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager, loaded from entry points on first use."""
    global _default
    with _lock:
        if _default is None:
            _default = PluginManager()
        return _default


def reset_plugin_manager() -> None:
    """Forgets the process-wide manager (tests that install plugins at run time)."""
    global _default
    with _lock:
        _default = None
