"""Built-in quality proxies for the search."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_quality_proxies():
    return {}
