"""The analytic cost model: parameters, embedding share, weight and state bytes, FLOPs.

It needs no forward pass: every operator reports its own ``param_count``, ``state_bytes``
and ``flops_per_token``; the blocks around them (SwiGLU feed-forward, RMSNorms, the
embedding and the LM head) are counted here. The search uses it to reject candidates
before building them and records it beside every measurement, so a study can report how
well the estimate ranks candidates (Spearman correlation with the measured values).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.plugin_manager import PluginManager, get_plugin_manager


@dataclass
class CostEstimate:
    """Analytic costs of one candidate at a given context length and dtype."""

    params: int
    embedding_params: int
    non_embedding_params: int
    embedding_share: float
    weight_bytes: int
    state_bytes: int
    memory_mb: float  # weights + decode state
    decode_flops_per_token: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_config(model_config: dict[str, Any]) -> EdgeConfig:
    """An :class:`EdgeConfig` from a plain dict (a preset's display ``name`` is dropped)."""
    raw = {k: v for k, v in model_config.items() if k != "name"}
    return EdgeConfig(**raw)


def estimate_cost(model_config: dict[str, Any] | EdgeConfig, context_length: int = 1024,
                  batch_size: int = 1, dtype_bytes: int = 2,
                  plugins: PluginManager | None = None) -> CostEstimate:
    """Counts parameters, bytes and decode FLOPs of ``model_config`` from its operators' reports."""
    config = model_config if isinstance(model_config, EdgeConfig) else build_config(model_config)
    plugins = plugins or get_plugin_manager()
    dims = config.dims
    h, ffn, vocab = config.hidden_size, config.intermediate_size, config.vocab_size
    block_extra = 3 * h * ffn + 2 * h  # SwiGLU gate/up/down + the two pre-norms
    mixer_params = state = flops = 0
    for cls, options in config.resolve_operators(plugins):
        mixer_params += cls.param_count(dims, options)
        state += cls.state_bytes(dims, options, context_length, batch_size, dtype_bytes)
        flops += cls.flops_per_token(dims, options, context_length)
    n_layers = len(config.layers)
    embedding = vocab * h
    lm_head = 0 if config.tie_word_embeddings else vocab * h
    non_embedding = mixer_params + n_layers * block_extra + h  # + final norm
    total = embedding + lm_head + non_embedding
    flops += n_layers * 2 * 3 * h * ffn + 2 * vocab * h  # feed-forwards + logits
    weight_bytes = total * dtype_bytes
    return CostEstimate(
        params=total,
        embedding_params=embedding + lm_head,
        non_embedding_params=non_embedding,
        embedding_share=(embedding + lm_head) / total,
        weight_bytes=weight_bytes,
        state_bytes=state,
        memory_mb=(weight_bytes + state) / 2**20,
        decode_flops_per_token=flops,
    )
