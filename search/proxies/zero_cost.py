"""``zero_cost``: the non-embedding parameter count as a training-free quality proxy.

LiteTransformerSearch observed that, within one family of decoder-only models, the
non-embedding parameter count ranks architectures almost as well as their trained
perplexity. The value is negated and scaled to millions so that lower is better, like a loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from edgesmith.core.errors import ConfigError
from edgesmith.core.profiler import QualityProxy

from ..cost import estimate_cost


@dataclass
class ZeroCostOptions:
    """``scale``: the parameter count is divided by it (1e6: millions)."""

    scale: float = 1e6

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ConfigError("scale", self.scale, "a number > 0")


class ZeroCostProxy(QualityProxy):
    """``-non_embedding_params / scale``: no training, no forward pass."""

    name = "zero_cost"
    options_class = ZeroCostOptions
    unit = "minus non-embedding parameters (millions)"

    def evaluate(self, model_config: dict[str, Any],
                 report: Callable[[float, int], bool] | None = None) -> float:
        return -estimate_cost(model_config).non_embedding_params / self.options.scale
