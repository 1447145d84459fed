"""Doom-loop detection: does a generation repeat itself until the token budget runs out?

A generation *loops* when it reached the token budget without ending (``finished`` is
False) and either

* its tail is periodic: some span of at least ``min_span`` tokens is repeated at least
  ``min_repeats`` times back to back right up to the last token, or
* its n-gram repetition is high: in the last ``ngram_window`` tokens, the share of
  ``ngram_size``-grams that already occurred earlier in that window is at least
  ``ngram_threshold`` (this catches loops that drift slightly, e.g. a counter that
  increments inside an otherwise repeated sentence).

Why these defaults (all tunable, all in tokens):

* ``min_span=8``: a doom loop repeats a phrase or sentence (Pipis et al. 2025 report
  repeated reasoning steps; Holtzman et al. 2020 repeated sentences). Spans shorter than
  that are usually formatting (a markdown separator ``|---|``, an ellipsis), so a short
  period only counts once its repeated unit is stretched to 8 tokens (a single token
  repeated must run >= 8 x ``min_repeats`` = 32 times).
* ``min_repeats=4``: a list or a table repeats its *shape*, never its exact content for
  four items in a row; exact repetition four times at the very end of a truncated output is
  the signature of a loop (a fifth copy would only have been cut off by the budget).
* ``ngram_size=4, ngram_window=256, ngram_threshold=0.7``: in natural text, lists and
  tables fewer than a third of the 4-grams are repeats; loops with small drift reach
  0.8-0.95. Requiring ``min_ngram_tokens=64`` tokens avoids judging short outputs.

``finished=True`` is never a loop: a generation that ended by itself did not run away.
Everything is linear in the length: the periodicity test is one Z-function over the
reversed sequence (for every period ``p`` the length of the longest suffix with period
``p`` in O(n) overall), the n-gram test one pass with a hash set.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_MIN_SPAN = 8
DEFAULT_MIN_REPEATS = 4
DEFAULT_NGRAM_SIZE = 4
DEFAULT_NGRAM_WINDOW = 256
DEFAULT_NGRAM_THRESHOLD = 0.7
DEFAULT_MIN_NGRAM_TOKENS = 64

# Words, single punctuation marks and whitespace runs: for plain-text input the detector
# works on these pieces so its token-count defaults keep roughly the same meaning.
_TEXT_PIECES = re.compile(r"\w+|\s+|[^\w\s]")


@dataclass
class LoopVerdict:
    """Whether a generation loops, why, and the evidence.

    ``period`` and ``repeats`` describe the periodic tail (the repeated unit's length in
    tokens and how many times it repeats, counting a partial last copy as a fraction);
    ``ngram_repetition`` is the repeated share of n-grams in the tail window;
    ``operations`` counts the elementary steps taken (used to check linear time).
    """

    looping: bool
    reason: str
    period: int = 0
    repeats: float = 0.0
    ngram_repetition: float = 0.0
    n_tokens: int = 0
    operations: int = 0


def text_to_tokens(text: str) -> list[str]:
    """Splits text into words, punctuation marks and whitespace runs."""
    return _TEXT_PIECES.findall(text)


def z_function(seq: Sequence) -> tuple[list[int], int]:
    """The Z-array of ``seq`` (``z[i]`` = longest common prefix of seq and seq[i:]) and the op count."""
    n = len(seq)
    z = [0] * n
    if n:
        z[0] = n
    left = right = 0
    ops = 0
    for i in range(1, n):
        ops += 1
        k = min(right - i, z[i - left]) if i < right else 0
        while i + k < n and seq[k] == seq[i + k]:
            k += 1
            ops += 1
        z[i] = k
        if i + k > right:
            left, right = i, i + k
    return z, ops


def periodic_tail(tokens: Sequence, min_span: int = DEFAULT_MIN_SPAN) -> tuple[int, float, int]:
    """The tail period with the most repeats of a span of >= ``min_span`` tokens.

    Returns ``(period, repeats, operations)``; ``repeats`` counts copies of the unit
    (``period`` stretched to a multiple >= ``min_span``) covering the periodic suffix.
    """
    rev = list(reversed(tokens))
    n = len(rev)
    z, ops = z_function(rev)
    best_period, best_repeats = 0, 0.0
    for p in range(1, n // 2 + 1):
        ops += 1
        covered = z[p] + p  # the last `covered` tokens have period p
        unit = p * -(-min_span // p)  # smallest multiple of p that is >= min_span
        repeats = covered / unit
        if repeats > best_repeats + 1e-9:
            best_period, best_repeats = p, repeats
    return best_period, best_repeats, ops


def ngram_repetition(tokens: Sequence, n: int = DEFAULT_NGRAM_SIZE) -> tuple[float, int]:
    """Share of the ``n``-grams of ``tokens`` that already occurred earlier; and the op count."""
    total = len(tokens) - n + 1
    if total <= 0:
        return 0.0, 0
    seen: set[tuple] = set()
    repeated = 0
    for i in range(total):
        gram = tuple(tokens[i:i + n])
        if gram in seen:
            repeated += 1
        else:
            seen.add(gram)
    return repeated / total, total * n


def detect_loop(tokens: Sequence[int] | str, finished: bool, *,
                min_span: int = DEFAULT_MIN_SPAN,
                min_repeats: int = DEFAULT_MIN_REPEATS,
                ngram_size: int = DEFAULT_NGRAM_SIZE,
                ngram_window: int = DEFAULT_NGRAM_WINDOW,
                ngram_threshold: float = DEFAULT_NGRAM_THRESHOLD,
                min_ngram_tokens: int = DEFAULT_MIN_NGRAM_TOKENS) -> LoopVerdict:
    """Judges one generation (token ids, or text split into words and marks).

    ``finished`` is True when the generation ended by itself (end-of-sequence), False when
    it hit the token budget or was cut by a loop guard.
    """
    if min_span < 1 or min_repeats < 2 or ngram_size < 1 or not 0.0 < ngram_threshold <= 1.0:
        raise ValueError("detect_loop needs min_span >= 1, min_repeats >= 2, ngram_size >= 1 "
                         f"and 0 < ngram_threshold <= 1; got {min_span}, {min_repeats}, "
                         f"{ngram_size}, {ngram_threshold}")
    seq = text_to_tokens(tokens) if isinstance(tokens, str) else list(tokens)
    n = len(seq)
    if finished:
        return LoopVerdict(False, "finished: the generation ended by itself", n_tokens=n)
    period, repeats, ops = periodic_tail(seq, min_span)
    window = seq[-ngram_window:] if ngram_window > 0 else seq
    rep, ngram_ops = ngram_repetition(window, ngram_size) if len(window) >= min_ngram_tokens else (0.0, 0)
    ops += ngram_ops
    verdict = LoopVerdict(False, "budget reached without a repeating tail", period, repeats, rep, n, ops)
    if repeats >= min_repeats:
        verdict.looping = True
        verdict.reason = (f"periodic tail: a {period}-token period repeated {repeats:.1f} times "
                          f"(>= {min_repeats} copies of a >= {min_span}-token span)")
    elif rep >= ngram_threshold:
        verdict.looping = True
        verdict.reason = (f"n-gram repetition: {rep:.2f} of the {ngram_size}-grams in the last "
                          f"{len(window)} tokens repeat (>= {ngram_threshold})")
    return verdict
