"""A streaming loop guard: a transformers ``StoppingCriteria`` that ends looping sequences early.

It applies two of :mod:`edgesmith.plugins.loops.detector`'s rules while generating:

* the **exact period** rule on the last ``window`` generated tokens, every ``check_every``
  tokens (O(window / check_every) per token);
* the **near-repeat** rule through a :class:`~edgesmith.plugins.loops.detector.RepeatTracker`
  per sequence, fed each new token once (O(1) per token, no window): it stops loops whose
  counter or one or two tokens change every cycle, and loops of any period length (the
  window bounds only the exact rule).

A whole generation stays linear. Stopping is irreversible, so the guard asks for more copies
than the offline detector: ``min_repeats=6`` units of a short period (a legitimate output
is cut only if it repeated the same >= ``min_span``-token unit six times in a row, up to
``max_edits`` changed tokens per period and no new content), ``long_repeats=4`` of a
unit of >= ``long_span`` tokens. The n-gram rule is left to the offline detector.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
from transformers import StoppingCriteria

from .detector import (
    DEFAULT_LONG_SPAN,
    DEFAULT_MAX_CHANGED,
    DEFAULT_MAX_EDITS,
    DEFAULT_MIN_SPAN,
    DEFAULT_NGRAM_SIZE,
    RepeatTracker,
    periodic_tail_verdict,
    required_repeats,
    unit_length,
)


class LoopGuard(StoppingCriteria):
    """Stops each sequence whose generated tail turned (nearly) periodic; records why, per sequence.

    ``prompt_length`` is the (padded) prompt length of the batch, so only generated tokens
    are judged. After generation, ``reasons[i]`` is None for sequences the guard let run and
    a sentence for the ones it stopped; ``stopped_at[i]`` is the generated length then.
    ``operations`` counts the guard's elementary steps over the whole generation.
    """

    def __init__(self, prompt_length: int, eos_token_id: int | list[int] | None = None,
                 min_span: int = DEFAULT_MIN_SPAN, min_repeats: int = 6,
                 window: int = 512, check_every: int = 8, long_span: int = DEFAULT_LONG_SPAN,
                 long_repeats: float = 4, max_edits: float = DEFAULT_MAX_EDITS,
                 max_changed: float = DEFAULT_MAX_CHANGED, near: bool = True,
                 numeral_ids: Collection[int] | None = None):
        if (min_span < 1 or min_repeats < 2 or window < 2 or check_every < 1 or long_span < 1
                or long_repeats < 2 or max_edits < 0 or not 0.0 <= max_changed <= 1.0):
            raise ValueError("LoopGuard needs min_span >= 1, min_repeats >= 2, window >= 2, check_every >= 1, "
                             "long_span >= 1, long_repeats >= 2, max_edits >= 0 and 0 <= max_changed <= 1")
        self.prompt_length = prompt_length
        # Sequences that already ended are padded by generate(); their padding is not a loop.
        if eos_token_id is None:
            eos_token_id = []
        self.eos_ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        self.min_span = min_span
        self.min_repeats = min_repeats
        self.long_span = long_span
        self.long_repeats = long_repeats
        self.max_edits = max_edits
        self.max_changed = max_changed
        self.near = near
        self.numeral_ids = numeral_ids
        self.window = window
        self.check_every = check_every
        self.reasons: list[str | None] = []
        self.stopped_at: list[int | None] = []
        self.operations = 0
        self._done: torch.Tensor | None = None
        self._trackers: list[RepeatTracker] = []
        self._length = 0

    def _reset(self, batch: int, device) -> None:
        self._done = torch.zeros(batch, dtype=torch.bool, device=device)
        self.reasons = [None] * batch
        self.stopped_at = [None] * batch
        self._trackers = [RepeatTracker(self.min_span, self.max_edits, self.max_changed, DEFAULT_NGRAM_SIZE,
                                        self.numeral_ids) for _ in range(batch)]

    def _verdict(self, tail: list[int], tracker: RepeatTracker) -> str | None:
        period, repeats, looping, ops = periodic_tail_verdict(tail, self.min_span, self.min_repeats,
                                                              self.long_span, self.long_repeats)
        self.operations += ops
        if looping:
            return f"a {period}-token period repeated {repeats:.1f} times"
        if not self.near:
            return None
        period, repeats, changed, per_period, share = tracker.near_repeat()
        if not period:
            return None
        needed = required_repeats(unit_length(period, self.min_span), self.min_repeats, self.long_span,
                                  self.long_repeats)
        if repeats >= needed and per_period <= self.max_edits and share <= self.max_changed:
            return (f"a {period}-token period repeated {repeats:.1f} times with {changed} changed tokens "
                    "and no new content")
        return None

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        batch, length = input_ids.shape
        if self._done is None or self._done.shape[0] != batch or length < self._length:
            self._reset(batch, input_ids.device)
        self._length = length
        generated = length - self.prompt_length
        if generated > 0 and generated % self.check_every == 0:
            if self.eos_ids:
                ended = torch.isin(input_ids[:, self.prompt_length:],
                                   torch.tensor(self.eos_ids, device=input_ids.device)).any(dim=1)
            else:
                ended = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
            for i in range(batch):
                if self._done[i] or ended[i]:
                    continue
                tracker = self._trackers[i]
                before = tracker.operations
                if self.near:  # feed the tokens generated since the last check, once each
                    tracker.extend(input_ids[i, self.prompt_length + len(tracker.tokens):].tolist())
                tail = input_ids[i, max(self.prompt_length, length - self.window):].tolist()
                self.operations += tracker.operations - before
                reason = self._verdict(tail, tracker)
                if reason is not None:
                    self._done[i] = True
                    self.stopped_at[i] = generated
                    self.reasons[i] = f"loop guard: {reason} after {generated} tokens"
        return self._done.clone()
