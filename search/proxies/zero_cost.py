"""``zero_cost``: the non-embedding parameter count as a training-free quality proxy.

LiteTransformerSearch observed that, within one family of decoder-only models, the
non-embedding parameter count ranks architectures almost as well as their trained
perplexity. The value is negated and scaled to millions so that lower is better, like a loss.
"""

from __future__ import annotations

from typing import Any, Callable

from edgesmith.core.profiler import QualityProxy

from ..cost import estimate_cost


class ZeroCostProxy(QualityProxy):
    """``-non_embedding_params / scale`` (scale: 1e6 by default): no training, no forward pass."""

    name = "zero_cost"
    unit = "minus non-embedding parameters (millions)"

    def __init__(self, scale: float = 1e6, **options: Any):
        super().__init__(scale=scale, **options)
        self.scale = float(scale)

    def evaluate(self, model_config: dict[str, Any],
                 report: Callable[[float, int], bool] | None = None) -> float:
        return -estimate_cost(model_config).non_embedding_params / self.scale
