"""Built-in quality proxies for the search."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_quality_proxies():
    from .short_train import ShortTrainProxy
    from .zero_cost import ZeroCostProxy

    return {"short_train": ShortTrainProxy, "zero_cost": ZeroCostProxy}
