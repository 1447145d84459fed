"""The rollout's token choice: draws follow the distribution, weight-0 entries never come, greedy rows stay argmax."""

from __future__ import annotations

import torch

from edgesmith.plugins.evaluation.sampling import draw, next_tokens


def test_draws_follow_the_weights_and_skip_zero_weights():
    weights = torch.tensor([0.0, 5.0, 3.0, 0.0, 2.0, 0.0])  # unnormalized on purpose; zeros at both ends
    n = 40_000
    drawn = draw(weights.expand(n, -1), torch.Generator().manual_seed(0))
    counts = torch.bincount(drawn, minlength=len(weights)).double()
    assert counts[weights == 0].sum() == 0
    expected = n * weights.double() / weights.sum()
    # each count within 5 standard deviations of its binomial mean (a wrong sampler is off by hundreds)
    spread = (expected * (1 - weights.double() / weights.sum())).sqrt()
    assert ((counts - expected).abs() <= 5 * spread + 1e-9).all(), (counts, expected)


def test_a_tiny_weight_is_still_drawn_at_its_rate():
    # among 65,536 entries, one holds 1% of the mass: a float32 cumulative sum would still place it,
    # but the draw must not lose or inflate it either
    weights = torch.full((65_536,), 0.99 / 65_535, dtype=torch.float32)
    weights[40_000] = 0.01
    drawn = draw(weights.expand(20_000, -1), torch.Generator().manual_seed(1))
    hits = int((drawn == 40_000).sum())
    assert 140 <= hits <= 260  # mean 200, sd ~14


def test_the_same_seed_draws_the_same_tokens():
    probs = torch.softmax(torch.randn(8, 50, generator=torch.Generator().manual_seed(2)), dim=-1)
    first = draw(probs, torch.Generator().manual_seed(3))
    again = draw(probs, torch.Generator().manual_seed(3))
    other = draw(probs, torch.Generator().manual_seed(4))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_greedy_rows_take_the_argmax_and_top_p_drops_the_tail():
    logits = torch.tensor([[0.0, 4.0, 1.0, -2.0]] * 6)
    greedy = torch.tensor([True, False, True, False, False, False])
    generator = torch.Generator().manual_seed(5)
    for _ in range(50):
        tokens = next_tokens(logits, greedy, temperature=1.0, top_p=0.9, generator=generator)
        assert (tokens[greedy] == 1).all()
        # p = softmax: token 1 holds ~0.94 > top_p, so every other token is dropped
        assert (tokens[~greedy] == 1).all()
    all_sampled = next_tokens(logits, torch.zeros(6, dtype=torch.bool), 1.0, 1.0, torch.Generator().manual_seed(6))
    assert all_sampled.dtype == torch.long and all_sampled.shape == (6,)
    all_greedy = next_tokens(logits, torch.ones(6, dtype=torch.bool), 1.0, 1.0, None)
    assert (all_greedy == 1).all()


def test_blocks_of_zero_weight_are_never_drawn():
    # 300 entries: the second block (256-299, plus padding) holds no weight at all
    weights = torch.rand(300, generator=torch.Generator().manual_seed(7))
    weights[256:] = 0.0
    drawn = draw(weights.expand(20_000, -1), torch.Generator().manual_seed(8))
    assert int(drawn.max()) < 256 and int(drawn.min()) >= 0
    assert len(torch.unique(drawn)) > 200  # the first block's entries all get drawn


def test_a_workspace_gives_the_same_tokens():
    logits = torch.randn(5, 700, generator=torch.Generator().manual_seed(9)).bfloat16()
    greedy = torch.tensor([False, True, False, False, True])
    fresh = next_tokens(logits, greedy, 0.7, 1.0, torch.Generator().manual_seed(10))
    reused = next_tokens(logits, greedy, 0.7, 1.0, torch.Generator().manual_seed(10), torch.empty(8, 700))
    assert torch.equal(fresh, reused)
