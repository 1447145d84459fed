"""Paired changes between two stages: Newcombe's interval for paired proportions and McNemar's exact test."""

from __future__ import annotations

import math
import random

import pytest

from edgesmith.plugins.evaluation.evaluate import wilson_interval
from edgesmith.plugins.evaluation.paired import mcnemar_exact_p, newcombe_paired_interval, paired_change


def test_mcnemar_exact_p_is_the_two_sided_binomial_tail_of_the_flips():
    assert mcnemar_exact_p(0, 0) == 1.0
    assert mcnemar_exact_p(5, 5) == 1.0
    assert mcnemar_exact_p(0, 10) == pytest.approx(2 / 1024)
    assert mcnemar_exact_p(10, 0) == mcnemar_exact_p(0, 10)
    # 2 against 8: P(X <= 2) for Binomial(10, 1/2) is (1 + 10 + 45) / 1024
    assert mcnemar_exact_p(2, 8) == pytest.approx(2 * 56 / 1024)


def test_paired_change_counts_the_flips_and_both_rates():
    before = [True] * 90 + [False] * 110
    after = [True] * 84 + [False] * 6 + [True] * 12 + [False] * 98
    change = paired_change(before, after)
    assert (change.n, change.up, change.down) == (200, 12, 6)
    assert change.before == pytest.approx(0.45) and change.after == pytest.approx(0.48)
    assert change.change == pytest.approx(0.03)
    low, high = change.change_ci95
    assert low < 0.03 < high and change.verdict == "no clear change"
    assert change.p_value == pytest.approx(mcnemar_exact_p(12, 6))


def test_pairs_that_agree_give_a_narrower_interval_than_unpaired_samples_would():
    # the same two rates (45% -> 48%): 6 prompts gained, none lost; unpaired, Newcombe's
    # square-and-add interval (phi = 0) straddles 0, paired it does not
    before = [True] * 90 + [False] * 110
    after = [True] * 96 + [False] * 104
    change = paired_change(before, after)
    assert change.verdict == "higher" and change.change_ci95[0] > 0
    (lb, hb), (la, ha) = wilson_interval(90, 200), wilson_interval(96, 200)
    unpaired_low = 0.03 - math.sqrt((0.48 - la) ** 2 + (hb - 0.45) ** 2)
    assert unpaired_low < 0 < change.change_ci95[0]


def test_with_no_association_the_interval_is_the_square_and_add_one():
    # both * neither == down * up: phi = 0, so the paired interval is the unpaired Newcombe one
    both, down, up, neither = 10, 10, 10, 10
    low, high = newcombe_paired_interval(both, down, up, neither)
    (lb, hb), (la, ha) = wilson_interval(20, 40), wilson_interval(20, 40)
    assert low == pytest.approx(-math.sqrt((0.5 - la) ** 2 + (hb - 0.5) ** 2))
    assert high == pytest.approx(math.sqrt((ha - 0.5) ** 2 + (0.5 - lb) ** 2))


def test_swapping_before_and_after_negates_the_interval():
    rng = random.Random(3)
    before = [rng.random() < 0.4 for _ in range(150)]
    after = [b if rng.random() < 0.7 else rng.random() < 0.55 for b in before]
    forward, backward = paired_change(before, after), paired_change(after, before)
    assert backward.change == pytest.approx(-forward.change)
    assert backward.change_ci95[0] == pytest.approx(-forward.change_ci95[1])
    assert backward.change_ci95[1] == pytest.approx(-forward.change_ci95[0])
    assert (backward.up, backward.down) == (forward.down, forward.up)


def test_extremes_stay_inside_minus_one_and_one():
    change = paired_change([True] * 3, [False] * 3)
    assert change.change == -1 and change.change_ci95[0] == -1 and change.change_ci95[1] < 0
    assert change.verdict == "lower"
    same = paired_change([False] * 5, [False] * 5)
    assert same.change == 0 and same.change_ci95[0] <= 0 <= same.change_ci95[1] and same.p_value == 1.0


@pytest.mark.parametrize("before_rate,after_rate,keep", [(0.45, 0.48, 0.6), (0.45, 0.40, 0.3), (0.5, 0.5, 0.9)])
def test_the_interval_covers_the_true_change_about_95_percent_of_the_time(before_rate, after_rate, keep):
    # correlated pairs: the after outcome reuses the before draw's uniform with probability keep
    rng = random.Random(0)
    trials, covered = 600, 0
    for _ in range(trials):
        before, after = [], []
        for _ in range(200):
            u = rng.random()
            v = u if rng.random() < keep else rng.random()
            before.append(u < before_rate)
            after.append(v < after_rate)
        low, high = paired_change(before, after).change_ci95
        covered += low <= after_rate - before_rate <= high
    # 600 trials: the standard error of a 95% coverage is 0.9 points
    assert 0.92 <= covered / trials <= 0.98


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_change([True], [True, False])
    with pytest.raises(ValueError, match="at least one pair"):
        paired_change([], [])
