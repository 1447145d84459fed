"""Built-in token mixers (operators), one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_operators():
    from .gated_deltanet import GatedDeltaNet
    from .gqa import GroupedQueryAttention
    from .linear_attn import LinearAttention
    from .short_conv import ShortConv
    from .swa import SlidingWindowAttention

    return {
        "gated_deltanet": GatedDeltaNet, "linear_attn": LinearAttention,
        "short_conv": ShortConv, "gqa": GroupedQueryAttention, "swa": SlidingWindowAttention,
    }
