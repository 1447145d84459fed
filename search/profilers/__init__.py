"""Built-in hardware profilers."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_profilers():
    return {}
