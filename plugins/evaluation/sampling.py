"""Choosing each row's next token in a rollout: argmax for greedy rows, a draw for the others.

A draw inverts each row's cumulative distribution at one uniform number (:func:`draw`).
``torch.multinomial`` (which transformers' ``generate`` calls) instead draws an exponential
for every vocabulary entry of every row and takes ``argmax(p / q)``: the same distribution,
but on the CPU those exponentials were the second cost of a batched rollout after the weight
products. For the LFM2-350M layout (65,536 entries, 8 prompts x 6 samples) they took 17% of
an fp32 step and 33% of a bf16 one (``.venv/bin/python scripts/decode_time_split.py --rollout
[--rollout-dtype bfloat16]`` before this module).
"""

from __future__ import annotations

import torch

BLOCK = 256  # entries per block of the two-level draw (65,536 = 256 blocks of 256)


def draw(weights: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``weights`` (non-negative, each row with a positive sum), drawn
    with probability proportional to its weight; an entry of weight 0 is never drawn.

    Two levels, so no cumulative sum runs over the whole vocabulary: the uniform number first
    picks a block of ``BLOCK`` entries by the blocks' sums, then an entry inside that block.
    Each block's sum is its own (so a block of tiny weights keeps its share, which a running
    float32 sum over 65,536 entries would round away), and the sums over blocks and inside
    the chosen block are taken in float64.
    """
    rows, size = weights.shape
    padded = -size % BLOCK
    if padded:
        weights = torch.nn.functional.pad(weights, (0, padded))
    blocks = weights.reshape(rows, -1, BLOCK)
    block_mass = blocks.sum(dim=-1).to(torch.float64)
    block_cdf = block_mass.cumsum(dim=-1)
    total = block_cdf[:, -1:]
    uniform = torch.rand(total.shape, generator=generator, dtype=torch.float64, device=weights.device)
    # strictly below the total, so the draw falls in the interval of an entry of weight > 0
    point = torch.minimum(uniform * total, torch.nextafter(total, torch.zeros_like(total)))
    block = torch.searchsorted(block_cdf, point, right=True).clamp_(max=blocks.shape[1] - 1)
    inside = blocks[torch.arange(rows, device=weights.device), block.squeeze(-1)].to(torch.float64).cumsum(dim=-1)
    offset = point - (block_cdf.gather(1, block) - block_mass.gather(1, block))
    # the block's own sum and its float64 running sum may differ in the last bits: stay inside it
    offset = torch.minimum(offset.clamp_(min=0.0), torch.nextafter(inside[:, -1:], torch.zeros_like(total)))
    entry = torch.searchsorted(inside, offset, right=True)
    return (block * BLOCK + entry).squeeze(-1)


def next_tokens(logits: torch.Tensor, greedy_rows: torch.Tensor, temperature: float, top_p: float,
                generator: torch.Generator | None, workspace: torch.Tensor | None = None) -> torch.Tensor:
    """Argmax for greedy rows; temperature (and nucleus) sampling for the others.

    ``workspace``: a float32 tensor of at least (sampled rows, vocabulary) that the sampled
    rows' logits are copied into, reused from step to step: a fresh tensor of that size each
    step is fresh memory from the system, whose page faults cost more than the copy itself.
    """
    sampled = ~greedy_rows
    if not bool(sampled.any()):
        return logits.argmax(dim=-1)
    tokens = torch.empty(logits.shape[0], dtype=torch.long, device=logits.device)
    mixed = bool(greedy_rows.any())
    if mixed:  # an argmax over the whole vocabulary only for the rows that use it
        tokens[greedy_rows] = logits[greedy_rows].argmax(dim=-1)
    chosen = logits[sampled] if mixed else logits
    scaled = chosen.float() if workspace is None else workspace[:chosen.shape[0]].copy_(chosen)
    # unnormalized exp((x - max) / T): draw() needs weights, not probabilities
    probs = scaled.sub_(scaled.amax(dim=-1, keepdim=True)).div_(temperature).exp_()
    if top_p < 1.0:
        probs = probs / probs.sum(dim=-1, keepdim=True)
        sorted_probs, sorted_ids = probs.sort(dim=-1, descending=True)
        # drop a token once the more likely ones already cover top_p (the top one always stays)
        drop = (sorted_probs.cumsum(dim=-1) - sorted_probs) >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter_(-1, sorted_ids, sorted_probs)
    tokens[sampled] = draw(probs, generator)
    return tokens
