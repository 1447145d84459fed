"""Built-in pipeline stages, one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_stages():
    return {}
