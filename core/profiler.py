"""Interfaces the architecture search measures candidates with.

A profiler measures cost on a target device (latency, memory); a quality proxy estimates
how good a candidate will be. Both receive an :class:`EdgeConfig` as a plain dict so they
can ship it to another process or machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable

from .errors import EdgesmithError


class CandidateNotMeasurable(EdgesmithError, ValueError):
    """The profiler's runtime cannot run this candidate (e.g. a layer llama.cpp has no kernel
    for). The search records the message as the trial's reason and marks it infeasible."""


class Profiler(ABC):
    """Base class of profiler plugins (e.g. ``local_cpu``)."""

    name: str = "profiler"
    #: fingerprint keys that identify this profiler's runtime (e.g. a llama.cpp build and quant
    #: type); farm workers compare them besides ``search.workers.fingerprint_keys``
    fingerprint_keys: tuple[str, ...] = ()

    def __init__(self, **options: Any):
        self.options = options

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
    """Base class of quality-proxy plugins (lower ``value`` is better, like a loss)."""

    name: str = "quality_proxy"

    def __init__(self, **options: Any):
        self.options = options

    @abstractmethod
    def evaluate(self, model_config: dict[str, Any],
                 report: Callable[[float, int], bool] | None = None) -> float:
        """The proxy value. ``report(value, step)`` returns True when the trial should stop (pruned)."""
