"""Interfaces the architecture search measures candidates with.

A profiler measures cost on a target device (latency, memory); a quality proxy estimates
how good a candidate will be. Both receive an :class:`EdgeConfig` as a plain dict so they
can ship it to another process or machine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Callable


class Profiler(ABC):
    """Base class of profiler plugins (e.g. ``local_cpu``)."""

    name: str = "profiler"

    def __init__(self, **options: Any):
        self.options = options

    @abstractmethod
    def fingerprint(self) -> dict[str, Any]:
        """Identifies the target device (CPU model, cores, memory, torch version)."""

    @abstractmethod
    def profile(self, model_config: dict[str, Any]) -> dict[str, Any]:
        """Measures one candidate: at least ``prefill_ms``, ``decode_ms_per_token``, ``peak_rss_mb``."""


class QualityProxy(ABC):
    """Base class of quality-proxy plugins (lower ``value`` is better, like a loss)."""

    name: str = "quality_proxy"

    def __init__(self, **options: Any):
        self.options = options

    @abstractmethod
    def evaluate(self, model_config: dict[str, Any],
                 report: Callable[[float, int], bool] | None = None) -> float:
        """The proxy value. ``report(value, step)`` returns True when the trial should stop (pruned)."""
