"""A candidate at full size with random weights, built once and fast.

Latency and memory do not depend on the weights' values, only on their shapes and dtype, so
the model is allocated without transformers' initialization pass (``no_init_weights``) and
filled in one sweep: matrices from N(0, initializer_range) drawn by one seeded generator,
vectors (norm scales) with ones. Finite, normal-range values matter (NaN or subnormal
numbers run slower on CPUs); the exact distribution does not.
"""

from __future__ import annotations

from typing import Any

import torch


def random_candidate(model_config: dict[str, Any], dtype: torch.dtype = torch.float32, seed: int = 0):
    """An :class:`EdgeForCausalLM` of ``model_config`` in ``dtype`` with random weights, in eval mode."""
    from transformers.initialization import no_init_weights

    from edgesmith.core.modeling import EdgeForCausalLM
    from edgesmith.search.cost import build_config

    config = build_config(model_config)
    # Built directly in the target dtype: a float32 copy would inflate the peak RSS.
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with no_init_weights():
            model = EdgeForCausalLM(config)
    finally:
        torch.set_default_dtype(default)
    if config.tie_word_embeddings:
        model.tie_weights()  # the skipped init pass is also where the head is tied
    std = float(getattr(config, "initializer_range", 0.02))
    block = torch.empty(BLOCK, dtype=dtype).normal_(0.0, std, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                fill_with_block(param.view(-1), block)
            else:
                param.fill_(1.0)
    return model.to(dtype).eval()


#: values drawn once per candidate (a prime: rows of no matrix repeat with a short period)
BLOCK = 1_000_003


def fill_with_block(flat: torch.Tensor, block: torch.Tensor) -> None:
    """Copies ``block`` over ``flat`` end to end, the last copy cut short."""
    for start in range(0, flat.numel(), block.numel()):
        part = flat[start:start + block.numel()]
        part.copy_(block[:part.numel()])
