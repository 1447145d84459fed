"""What one model changed against another on the same prompts, with its uncertainty.

Two stages of a run answer the same held-out prompts, so their outcomes come in pairs.
Asking whether their two Wilson intervals overlap ignores the pairing: two models that
agree on most prompts can differ by a few points for certain, while overlapping intervals
say nothing. Here the change (after minus before) gets Newcombe's hybrid score interval for
paired proportions (Statistics in Medicine 17, 1998, 2635-2650: each side's Wilson interval,
combined through the correlation of the pairs), and the prompts that flipped get McNemar's
exact test (a two-sided binomial test of the flips one way against the other).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from .evaluate import Z95, wilson_interval


@dataclass(frozen=True)
class PairedChange:
    """``after - before`` over ``n`` paired outcomes; ``up``/``down``: prompts that flipped to true/false."""

    n: int
    before: float
    after: float
    change: float
    change_ci95: tuple[float, float]
    up: int
    down: int
    p_value: float

    @property
    def verdict(self) -> str:
        """``higher`` or ``lower`` when the interval excludes 0, else ``no clear change``."""
        low, high = self.change_ci95
        return "higher" if low > 0 else "lower" if high < 0 else "no clear change"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "change_ci95": list(self.change_ci95), "verdict": self.verdict}


def mcnemar_exact_p(up: int, down: int) -> float:
    """Two-sided exact McNemar p-value: the flips are Binomial(up + down, 1/2) if nothing changed."""
    flips = up + down
    if flips == 0:
        return 1.0
    tail = sum(math.comb(flips, k) for k in range(min(up, down) + 1)) / 2 ** flips
    return min(1.0, 2 * tail)


def newcombe_paired_interval(both: int, down: int, up: int, neither: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's interval for ``after - before`` from the 2x2 table of paired outcomes.

    ``both``: true before and after; ``down``: true before only; ``up``: true after only;
    ``neither``: false both times.
    """
    n = both + down + up + neither
    if n <= 0:
        raise ValueError("newcombe_paired_interval needs at least one pair")
    before, after = (both + down) / n, (both + up) / n
    low_b, high_b = wilson_interval(both + down, n, z)
    low_a, high_a = wilson_interval(both + up, n, z)
    margins = (both + down) * (up + neither) * (both + up) * (down + neither)
    phi = 0.0
    if margins > 0:
        # Newcombe's correction: a positive association is shrunk by n/2, a negative one kept
        association = both * neither - down * up
        association = association - n / 2 if association > n / 2 else min(association, 0)
        phi = association / math.sqrt(margins)
    change = after - before
    below = math.sqrt(max(0.0, (after - low_a) ** 2 - 2 * phi * (after - low_a) * (high_b - before)
                          + (high_b - before) ** 2))
    above = math.sqrt(max(0.0, (high_a - after) ** 2 - 2 * phi * (high_a - after) * (before - low_b)
                          + (before - low_b) ** 2))
    return max(-1.0, change - below), min(1.0, change + above)


def paired_change(before: Sequence[bool], after: Sequence[bool]) -> PairedChange:
    """The change from ``before`` to ``after`` (the same items, in the same order)."""
    if len(before) != len(after):
        raise ValueError(f"paired outcomes need equal lengths, got {len(before)} and {len(after)}")
    if not before:
        raise ValueError("paired_change needs at least one pair")
    table = Counter((bool(b), bool(a)) for b, a in zip(before, after))
    both, down, up, neither = table[True, True], table[True, False], table[False, True], table[False, False]
    n = len(before)
    return PairedChange(n=n, before=(both + down) / n, after=(both + up) / n, change=(up - down) / n,
                        change_ci95=newcombe_paired_interval(both, down, up, neither), up=up, down=down,
                        p_value=mcnemar_exact_p(up, down))
