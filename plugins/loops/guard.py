"""A streaming loop guard: a transformers ``StoppingCriteria`` that ends looping sequences early.

Every ``check_every`` generated tokens it runs the periodic-tail test of
:mod:`edgesmith.plugins.loops.detector` on the last ``window`` generated tokens of each
sequence still running, so the cost per step stays bounded (O(window / check_every)) and a
whole generation stays linear. Stopping is irreversible, so the guard asks for more copies
than the offline detector (``min_repeats=6`` by default): a legitimate output is cut only if
it already repeated the same >= ``min_span``-token span six times in a row.
"""

from __future__ import annotations

import torch
from transformers import StoppingCriteria

from .detector import DEFAULT_MIN_SPAN, periodic_tail


class LoopGuard(StoppingCriteria):
    """Stops each sequence whose generated tail turned periodic; records why, per sequence.

    ``prompt_length`` is the (padded) prompt length of the batch, so only generated tokens
    are judged. After generation, ``reasons[i]`` is None for sequences the guard let run and
    a sentence for the ones it stopped; ``stopped_at[i]`` is the generated length then.
    """

    def __init__(self, prompt_length: int, eos_token_id: int | list[int] | None = None,
                 min_span: int = DEFAULT_MIN_SPAN, min_repeats: int = 6,
                 window: int = 512, check_every: int = 8):
        if min_span < 1 or min_repeats < 2 or window < 2 or check_every < 1:
            raise ValueError("LoopGuard needs min_span >= 1, min_repeats >= 2, window >= 2, check_every >= 1")
        self.prompt_length = prompt_length
        # Sequences that already ended are padded by generate(); their padding is not a loop.
        if eos_token_id is None:
            eos_token_id = []
        self.eos_ids = [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
        self.min_span = min_span
        self.min_repeats = min_repeats
        self.window = window
        self.check_every = check_every
        self.reasons: list[str | None] = []
        self.stopped_at: list[int | None] = []
        self._done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores=None, **kwargs) -> torch.BoolTensor:
        batch, length = input_ids.shape
        if self._done is None or self._done.shape[0] != batch:
            self._done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
            self.reasons = [None] * batch
            self.stopped_at = [None] * batch
        generated = length - self.prompt_length
        if generated > 0 and generated % self.check_every == 0:
            if self.eos_ids:
                ended = torch.isin(input_ids[:, self.prompt_length:],
                                   torch.tensor(self.eos_ids, device=input_ids.device)).any(dim=1)
            else:
                ended = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
            tails = input_ids[:, max(self.prompt_length, length - self.window):].tolist()
            for i, tail in enumerate(tails):
                if self._done[i] or ended[i]:
                    continue
                period, repeats, _ = periodic_tail(tail, self.min_span)
                if repeats >= self.min_repeats:
                    self._done[i] = True
                    self.stopped_at[i] = generated
                    self.reasons[i] = (f"loop guard: a {period}-token period repeated {repeats:.1f} "
                                       f"times after {generated} tokens")
        return self._done.clone()
