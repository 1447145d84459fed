"""Built-in benchmarks for `edgesmith bench bench=NAME`."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_benchmarks():
    return {}
