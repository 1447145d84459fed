"""Hook implementations: what this package adds to edgesmith."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_operators():
    from .causal_mean import CausalMean

    return {"causal_mean": CausalMean}


@hookimpl
def edgesmith_environments():
    from .echo_env import EchoEnvironment

    return {"echo": EchoEnvironment}
