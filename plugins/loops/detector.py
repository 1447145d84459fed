"""Doom-loop detection: does a generation repeat itself until the token budget runs out?

A generation *loops* when it reached the token budget without ending (``finished`` is
False) and its tail satisfies one of three rules (all in tokens, all tunable):

1. **Exact period.** Some span of at least ``min_span`` tokens is repeated back to back
   right up to the last token, ``min_repeats`` times (4), or only ``long_repeats`` times
   (2.5) when the repeated unit is at least ``long_span`` (32) tokens long.
2. **N-gram repetition without new content.** After the last token that brings new content
   (see below), at least ``min_ngram_tokens`` (64) tokens long, the share of
   ``ngram_size``-grams (4) that already occurred in the last ``ngram_window`` (256) tokens is
   at least ``ngram_threshold`` (0.7). This catches loops without a stable period (a
   sampled model cycling through a few phrases in random order) and drifting ones.
3. **Near-repeat.** The tail is aligned with itself one period back (the period may grow
   or shrink by one or two tokens when a counter gains a digit, and may be any length);
   each period differs from the one before in at most ``max_edits`` (2.5) tokens on
   average (one or two tokens, plus a counter's occasional carry), at most ``max_changed``
   (20%) of the tail's tokens differ, none of the differing tokens is new content, and it
   covers as many units (the period stretched to >= ``min_span``) as rule 1 asks for:
   "Step 7: check the counter ... Step 8: check the counter ...", "7. kiwis 8. kiwis",
   "Wait, maybe A. Wait, maybe B. Wait, maybe A.".

**New content** is a token that never occurred earlier in the generation, except numerals
(a counter is not new content). Text input is split into words, single digits, single
marks and whitespace runs, so numerals are known; for token ids pass ``numeral_ids`` (the
ids of the digit tokens) to get the same, otherwise a digit's *first* occurrence counts as
new content (edgesmith's tokenizer splits numbers into single digits, so after the first
ten values of a counter its digits are old). New content is what separates legitimate
structure from a loop: a list, a table, 40 parallel tool calls repeat their *shape*, but
every item brings a new word, a new city, a new value; a loop only recycles what it
already said, or bumps a counter. Rule 2 and 3 only look after the last new content;
rule 3 also bounds how much may change per period, so numeric tables and times tables
(several digits change per row) and code (new identifiers) are left alone.

Known limits: a block of >= 4 consecutive items in which only one already-used word changes
(say ``get(city=Paris, metric=X)`` for four metrics X already used with another city) reads
as a near-repeat; so does code that repeats a line changing only a number
(``x1 = 0``, ``x2 = 0``, ...) until the budget.

Measured on the labelled set of ``tests/loop_cases.py`` (71 crafted generations, 36 of them
loops: exact, near-repeat, long-period and stochastic loops, the main job's looping search
traces; 35 not: lists, tables, 40 parallel tool calls, code, CSV, logs, legitimate search
traces and scratchpads cut by the budget, finished generations)::

    text input:                     precision 1.00, recall 0.97 (tp 35, fp 0, fn 1)
    token ids, numerals unknown:    precision 1.00, recall 0.83 (tp 30, fp 0, fn 6)
    the previous detector, either:  precision 0.90, recall 0.78 (tp 28, fp 3, fn 8)

reproduced by ``OMP_NUM_THREADS=1 python -m pytest tests/test_loops_labelled.py -q -s``
(it prints the numbers and the missed cases, and asserts precision >= 0.95 and recall
>= 0.9 for text, >= 0.8 for ids). Missed: a numbered list cycling through three items (three
counters per period); with ids only, counters in digit-free text during their first ten
values (each digit is new the first time; pass ``numeral_ids`` to avoid it).

Why these defaults: ``min_span=8``: a doom loop repeats a phrase or sentence (Pipis et al.
2025 report repeated reasoning steps; Holtzman et al. 2020 repeated sentences); shorter
spans are usually formatting (``|---|``, an ellipsis), so a short period counts only once
its unit is stretched to 8 tokens (a single token must run 8 x 4 = 32 times).
``min_repeats=4``: a list or table repeats its shape, never its exact content four times in
a row; a unit of >= 32 tokens repeated two and a half times in a row is not legitimate
either (twice is: a quoted block), and a long loop fits only a few copies into a budget.
``max_edits=2.5, max_changed=0.2``: a counter changes one digit per step and now and then
two; "Step 7 ... step 7" changes two; a times table changes three of its ~12 tokens per
row (23%), a table row or a new tool call more, or brings new content.

``finished=True`` is never a loop: a generation that ended by itself did not run away.
Everything is linear in the length (the ``operations`` count checks it): the exact period
is one Z-function over the reversed sequence, the near-repeat and n-gram rules one pass of
:class:`RepeatTracker` (a hash map of n-grams, O(1) per token), which
:class:`~edgesmith.plugins.loops.guard.LoopGuard` also runs token by token while generating.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from edgesmith.core.errors import ConfigError

DEFAULT_MIN_SPAN = 8
DEFAULT_MIN_REPEATS = 4
DEFAULT_LONG_SPAN = 32
DEFAULT_LONG_REPEATS = 2.5
DEFAULT_MAX_EDITS = 2.5
DEFAULT_MAX_CHANGED = 0.2
DEFAULT_NGRAM_SIZE = 4
DEFAULT_NGRAM_WINDOW = 256
DEFAULT_NGRAM_THRESHOLD = 0.7
DEFAULT_MIN_NGRAM_TOKENS = 64


@dataclass
class LoopDetectorOptions:
    """The detector's thresholds, as options a user sets (``eval.loop_detector.<name>``, the
    ``loop`` judge): :func:`detect_loop` takes them as ``**dataclasses.asdict(options)``."""

    min_span: int = DEFAULT_MIN_SPAN
    min_repeats: int = DEFAULT_MIN_REPEATS
    long_span: int = DEFAULT_LONG_SPAN
    long_repeats: float = DEFAULT_LONG_REPEATS
    max_edits: float = DEFAULT_MAX_EDITS
    max_changed: float = DEFAULT_MAX_CHANGED
    ngram_size: int = DEFAULT_NGRAM_SIZE
    ngram_window: int = DEFAULT_NGRAM_WINDOW
    ngram_threshold: float = DEFAULT_NGRAM_THRESHOLD
    min_ngram_tokens: int = DEFAULT_MIN_NGRAM_TOKENS

    def __post_init__(self) -> None:
        for name, accepted, ok in (
            ("min_span", "an integer >= 1", self.min_span >= 1),
            ("min_repeats", "an integer >= 2", self.min_repeats >= 2),
            ("long_span", "an integer >= 1", self.long_span >= 1),
            ("long_repeats", "a number >= 2", self.long_repeats >= 2),
            ("max_edits", "a number >= 0", self.max_edits >= 0),
            ("ngram_size", "an integer >= 1", self.ngram_size >= 1),
            ("ngram_threshold", "a number in (0, 1]", 0.0 < self.ngram_threshold <= 1.0),
        ):
            if not ok:
                raise ConfigError(name, getattr(self, name), accepted)

# Words, single digits, single punctuation marks and whitespace runs: for plain-text input
# the detector works on these pieces (like edgesmith's tokenizer, which splits numbers into
# digits), so its token-count defaults keep roughly the same meaning and numerals are known.
_TEXT_PIECES = re.compile(r"\d|[^\W\d]+|\s+|[^\w\s]")
_SHIFT_CONFIRM = 3  # tokens that must agree before the alignment moves by one or two tokens


@dataclass
class LoopVerdict:
    """Whether a generation loops, why, and the evidence.

    ``period`` and ``repeats`` describe the exactly periodic tail (the repeated unit's length
    in tokens and how many times it repeats, counting a partial last copy as a fraction);
    ``near_period``, ``near_repeats`` and ``near_edits`` the near-repeating tail (its
    period, how many units it covers, how many tokens differ in it in all);
    ``ngram_repetition`` is the repeated share of n-grams after the last new content;
    ``operations`` counts the elementary steps taken (used to check linear time).
    """

    looping: bool
    reason: str
    period: int = 0
    repeats: float = 0.0
    ngram_repetition: float = 0.0
    n_tokens: int = 0
    operations: int = 0
    near_period: int = 0
    near_repeats: float = 0.0
    near_edits: int = 0
    rule: str = ""


def text_to_tokens(text: str) -> list[str]:
    """Splits text into words, single digits, punctuation marks and whitespace runs."""
    return _TEXT_PIECES.findall(text)


def unit_length(period: int, min_span: int) -> int:
    """The smallest multiple of ``period`` that is >= ``min_span``: the unit a repeat is counted in."""
    return period * -(-min_span // period)


def required_repeats(unit: int, min_repeats: int, long_span: int, long_repeats: float) -> float:
    """How many copies of a ``unit``-token unit make a loop: fewer for long units."""
    return min(min_repeats, long_repeats) if unit >= long_span else min_repeats


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
    period, repeats, _, ops = periodic_tail_verdict(tokens, min_span)
    return period, repeats, ops


def periodic_tail_verdict(tokens: Sequence, min_span: int = DEFAULT_MIN_SPAN,
                          min_repeats: int = DEFAULT_MIN_REPEATS, long_span: int = DEFAULT_LONG_SPAN,
                          long_repeats: float = DEFAULT_LONG_REPEATS) -> tuple[int, float, bool, int]:
    """``(period, repeats, looping, operations)`` of the exactly periodic tail.

    ``looping`` is True when some period's repeats reach :func:`required_repeats` for its
    unit; then ``(period, repeats)`` is that period's (the one furthest over its threshold),
    otherwise the period with the most repeats.
    """
    rev = list(reversed(tokens))
    n = len(rev)
    z, ops = z_function(rev)
    best_period, best_repeats = 0, 0.0
    hit_period, hit_repeats, hit_score = 0, 0.0, 0.0
    for p in range(1, n // 2 + 1):
        ops += 1
        covered = z[p] + p  # the last `covered` tokens have period p
        unit = unit_length(p, min_span)
        repeats = covered / unit
        if repeats > best_repeats + 1e-9:
            best_period, best_repeats = p, repeats
        score = repeats / required_repeats(unit, min_repeats, long_span, long_repeats)
        if score >= 1.0 - 1e-9 and score > hit_score + 1e-9:
            hit_period, hit_repeats, hit_score = p, repeats, score
    if hit_period:
        return hit_period, hit_repeats, True, ops
    return best_period, best_repeats, False, ops


class RepeatTracker:
    """Token-by-token state of how a sequence repeats itself; O(1) work per token.

    :meth:`push` one token at a time. The tracker keeps an *alignment*: the lag at which the
    current tail copies itself (found from the last occurrence of the latest
    ``ngram_size``-gram); a token that differs from the one a lag back is an *edit*; three
    agreeing tokens at a lag one or two away move the alignment (a counter that gained a
    digit) and take back the edits they explain; edits faster than 1.5 x ``max_changed``
    per token (a leaky bucket holding ``2 * max_edits + 1``) end the alignment. It also
    records, per position, whether the n-gram ending there occurred before and where, and
    the position of the last new content (a token never seen before, numerals excepted).
    """

    def __init__(self, min_span: int = DEFAULT_MIN_SPAN, max_edits: float = DEFAULT_MAX_EDITS,
                 max_changed: float = DEFAULT_MAX_CHANGED, ngram_size: int = DEFAULT_NGRAM_SIZE,
                 numeral_ids: Collection[Any] | None = None, text: bool = False):
        self.min_span = min_span
        self.max_edits = max_edits
        self.max_changed = max_changed
        self.gram = ngram_size
        self.numerals = frozenset(numeral_ids or ())
        self.text = text
        self.tokens: list[Any] = []
        self.seen: set[Any] = set()
        self.last_gram: dict[tuple, int] = {}
        self.prev_gram: list[int] = []  # per position: last earlier end of the same n-gram, or -1
        self.edits_before: list[int] = [0]  # edits_before[i] = edits at positions < i
        self.is_edit = bytearray()
        self.lag = 0
        self.run_start = 0
        self.capacity = 2.0 * max_edits + 1.0
        self.refill = 1.5 * max_changed
        self.bucket = self.capacity
        self.last_new = -1
        self.operations = 0

    def _numeral(self, token: Any) -> bool:
        if self.text:
            return isinstance(token, str) and token.isdigit()
        return token in self.numerals

    def push(self, token: Any) -> None:
        toks = self.tokens
        i = len(toks)
        toks.append(token)
        self.operations += 1
        if token not in self.seen:
            self.seen.add(token)
            if not self._numeral(token):
                self.last_new = i
        prev = -1
        if i >= self.gram - 1:
            g = tuple(toks[i - self.gram + 1:])
            prev = self.last_gram.get(g, -1)
            self.last_gram[g] = i
        self.prev_gram.append(prev)
        self.is_edit.append(0)
        self.edits_before.append(self.edits_before[-1])
        lag = self.lag
        if lag and token != toks[i - lag]:
            shifted = False
            for c in (lag - 1, lag + 1, lag - 2, lag + 2):
                self.operations += 1
                if c < 1 or i - c - _SHIFT_CONFIRM + 1 < 0:
                    continue
                if all(toks[i - j] == toks[i - j - c] for j in range(_SHIFT_CONFIRM)):
                    self.operations += 2 * _SHIFT_CONFIRM
                    self.lag = c
                    shifted = True
                    for p in range(i - _SHIFT_CONFIRM + 1, i):  # now explained by the shift
                        if self.is_edit[p]:
                            self.is_edit[p] = 0
                            self.bucket = min(self.capacity, self.bucket + 1.0)
                    self._recount(i - _SHIFT_CONFIRM + 1, i)
                    break
            if not shifted:
                self.is_edit[i] = 1
                self._recount(i, i)
                self.bucket -= 1.0
                if self.bucket < 0:
                    self.lag = 0  # too many differences: the alignment is lost
        if self.lag == 0 and prev >= 0:
            self.lag = i - prev
            self.run_start = i - self.gram + 1
            self.bucket = self.capacity
        if self.lag:
            self.bucket = min(self.capacity, self.bucket + self.refill)

    def _recount(self, lo: int, hi: int) -> None:
        """Recomputes the edit prefix counts of positions ``lo..hi``."""
        e = self.edits_before
        for q in range(max(lo, 0), hi + 1):
            e[q + 1] = e[q] + self.is_edit[q]

    def extend(self, tokens: Sequence) -> RepeatTracker:
        for t in tokens:
            self.push(t)
        return self

    def near_repeat(self) -> tuple[int, float, int, float, float]:
        """The aligned tail after the last new content.

        ``(period, repeats, changed, changed_per_period, changed_share)``: its period, how
        many units (the period stretched to >= ``min_span``) it covers counting the copy it
        starts from, how many of its tokens differ from the token a period back, that number
        per period, and as a share of its tokens.
        """
        n = len(self.tokens)
        if not self.lag:
            return 0, 0.0, 0, 0.0, 0.0
        start = max(self.run_start, self.last_new + 1)
        if start >= n:
            return self.lag, 0.0, 0, 0.0, 0.0
        unit = unit_length(self.lag, self.min_span)
        repeats = (n - start + self.lag) / unit
        changed = self.edits_before[n] - self.edits_before[start]
        return self.lag, repeats, changed, changed * self.lag / (n - start), changed / (n - start)

    def settled_repetition(self, window: int, min_tokens: int) -> tuple[float, int]:
        """Repeated n-gram share after the last new content, within the last ``window`` tokens.

        Returns ``(share, judged_tokens)``; ``(0.0, judged)`` when fewer than ``min_tokens``
        tokens are judged. An n-gram repeats if it occurred earlier inside the window.
        """
        n = len(self.tokens)
        lo = max(0, n - window) if window > 0 else 0
        start = max(lo, self.last_new + 1)
        judged = n - start
        first = max(start, lo + self.gram - 1)  # n-grams that lie inside the window
        total = n - first
        if judged < min_tokens or total <= 0:
            return 0.0, judged
        floor = lo + self.gram - 1
        repeated = sum(1 for i in range(first, n) if self.prev_gram[i] >= floor)
        self.operations += total
        return repeated / total, judged


def detect_loop(tokens: Sequence[int] | str, finished: bool, *,
                min_span: int = DEFAULT_MIN_SPAN,
                min_repeats: int = DEFAULT_MIN_REPEATS,
                long_span: int = DEFAULT_LONG_SPAN,
                long_repeats: float = DEFAULT_LONG_REPEATS,
                max_edits: float = DEFAULT_MAX_EDITS,
                max_changed: float = DEFAULT_MAX_CHANGED,
                ngram_size: int = DEFAULT_NGRAM_SIZE,
                ngram_window: int = DEFAULT_NGRAM_WINDOW,
                ngram_threshold: float = DEFAULT_NGRAM_THRESHOLD,
                min_ngram_tokens: int = DEFAULT_MIN_NGRAM_TOKENS,
                numeral_ids: Collection[int] | None = None) -> LoopVerdict:
    """Judges one generation (token ids, or text split into words, digits and marks).

    ``finished`` is True when the generation ended by itself (end-of-sequence), False when
    it hit the token budget or was cut by a loop guard. ``numeral_ids``: the token ids of
    digits, if known (see the module docstring).
    """
    if (min_span < 1 or min_repeats < 2 or ngram_size < 1 or not 0.0 < ngram_threshold <= 1.0
            or long_repeats < 2 or long_span < 1 or max_edits < 0):
        raise ValueError("detect_loop needs min_span >= 1, min_repeats >= 2, ngram_size >= 1, "
                         "0 < ngram_threshold <= 1, long_span >= 1, long_repeats >= 2 and max_edits >= 0; "
                         f"got {min_span}, {min_repeats}, {ngram_size}, {ngram_threshold}, {long_span}, "
                         f"{long_repeats}, {max_edits}")
    text = isinstance(tokens, str)
    seq = text_to_tokens(tokens) if text else list(tokens)
    n = len(seq)
    if finished:
        return LoopVerdict(False, "finished: the generation ended by itself", n_tokens=n)
    period, repeats, periodic, ops = periodic_tail_verdict(seq, min_span, min_repeats, long_span, long_repeats)
    tracker = RepeatTracker(min_span, max_edits, max_changed, ngram_size, numeral_ids, text=text).extend(seq)
    rep, _ = tracker.settled_repetition(ngram_window, min_ngram_tokens)
    near_period, near_repeats, near_edits, per_period, share = tracker.near_repeat()
    ops += tracker.operations
    verdict = LoopVerdict(False, "budget reached without a repeating tail", period, repeats, rep, n, ops,
                          near_period, near_repeats, near_edits)
    near_unit = unit_length(near_period, min_span) if near_period else 0
    if periodic:
        needed = required_repeats(unit_length(period, min_span), min_repeats, long_span, long_repeats)
        verdict.looping, verdict.rule = True, "period"
        verdict.reason = (f"periodic tail: a {period}-token period repeated {repeats:.1f} times "
                          f"(>= {needed:g} copies of a >= {min_span}-token span)")
    elif rep >= ngram_threshold:
        verdict.looping, verdict.rule = True, "ngram"
        verdict.reason = (f"n-gram repetition: {rep:.2f} of the {ngram_size}-grams after the last new "
                          f"content in the last {min(n, ngram_window) if ngram_window > 0 else n} tokens "
                          f"repeat (>= {ngram_threshold})")
    elif (near_period and near_repeats >= required_repeats(near_unit, min_repeats, long_span, long_repeats)
          and per_period <= max_edits and share <= max_changed):
        verdict.looping, verdict.rule = True, "near"
        verdict.reason = (f"near-repeat: a {near_period}-token period repeated {near_repeats:.1f} times, "
                          f"{per_period:.1f} changed tokens per period (<= {max_edits:g}) on {share:.0%} of the tokens "
                          f"(<= {max_changed:.0%}), no new content")
    return verdict
