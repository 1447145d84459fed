"""Interfaces the architecture search measures candidates with.

A profiler measures cost on a target device (latency, memory); a quality proxy estimates
how good a candidate will be. Both receive an :class:`EdgeConfig` as a plain dict so they
can ship it to another process or machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar

from .errors import EdgesmithError
from .options import NoOptions, build_options


class CandidateNotMeasurable(EdgesmithError, ValueError):
    """The profiler's runtime cannot run this candidate (e.g. a layer llama.cpp has no kernel
    for). The search records the message as the trial's reason and marks it infeasible."""


class TrialPruned(EdgesmithError):
    """Raised by :meth:`QualityProxy.evaluate` when ``report`` asked it to stop: the search
    records the message and marks the trial pruned (any proxy may prune, not one in particular)."""


class Profiler(ABC):
    """Base class of profiler plugins (e.g. ``local_cpu``).

    ``options_class`` declares ``search.profiler.options``; the plugin manager validates them.
    """

    name: str = "profiler"
    options_class: ClassVar[type] = NoOptions
    #: fingerprint keys that identify this profiler's runtime (e.g. a llama.cpp build and quant
    #: type); farm workers compare them besides ``search.workers.fingerprint_keys``
    fingerprint_keys: tuple[str, ...] = ()

    def __init__(self, options: Any = None):
        self.options = build_options(self.options_class, options, "search.profiler.options")

    def estimate_basis(self) -> tuple[int, int]:
        """``(context length, bytes per value)`` this profiler measures decode at: the search's
        analytic estimate (state and weight bytes) is computed on the same, to be comparable."""
        return 1024, 2

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Identifies the target device (CPU model, cores, memory, torch version)."""

    def why_not_measurable(self, model_config: dict[str, Any]) -> str | None:
        """Why this profiler's runtime cannot run ``model_config`` (None: it can). The search asks
        before spending the quality proxy on a candidate."""
        return None

    @abstractmethod
    def profile(self, model_config: dict[str, Any]) -> dict[str, Any]:
        """Measures one candidate: at least ``prefill_ms``, ``decode_ms_per_token``, ``peak_rss_mb``.

        Raises :class:`CandidateNotMeasurable` for a candidate the target cannot run."""


class QualityProxy(ABC):
    """Base class of quality-proxy plugins (lower ``value`` is better, like a loss).

    ``options_class`` declares ``search.proxy.options``; what a proxy needs besides them (a
    corpus, a tokenizer trainer) are keyword arguments of its constructor, which the caller
    passes when the proxy's ``runtime_inputs`` names them.
    """

    name: str = "quality_proxy"
    options_class: ClassVar[type] = NoOptions
    #: keyword arguments of the constructor beyond the options (e.g. ``texts_fn``, ``bpe_encoder``)
    runtime_inputs: ClassVar[tuple[str, ...]] = ()
    #: what ``evaluate`` returns, for reports
    unit: ClassVar[str] = "proxy value"

    def __init__(self, options: Any = None):
        self.options = build_options(self.options_class, options, "search.proxy.options")

    @abstractmethod
    def evaluate(self, model_config: dict[str, Any],
                 report: Callable[[float, int], bool] | None = None) -> float:
        """The proxy value. ``report(value, step)`` returns True when the trial should stop: the proxy
        then raises :class:`TrialPruned`."""
