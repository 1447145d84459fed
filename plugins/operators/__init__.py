"""Built-in token mixers (operators), one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_operators():
    from .gated_deltanet import GatedDeltaNet
    from .linear_attn import LinearAttention

    return {"gated_deltanet": GatedDeltaNet, "linear_attn": LinearAttention}
