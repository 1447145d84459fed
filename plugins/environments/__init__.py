"""Built-in task environments, one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_environments():
    return {}
