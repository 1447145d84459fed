"""The ``repetition`` reward: TRL's n-gram repetition penalty on the completion tokens."""

from __future__ import annotations

from typing import Any

from edgesmith.core.errors import ConfigError
from edgesmith.core.reward import Reward


class RepetitionReward(Reward):
    """Wraps ``trl.rewards.get_repetition_penalty_reward`` (penalty in ``[max_penalty, 0]``).

    Options: ``ngram_size`` (default 3), ``max_penalty`` (default -1.0, must be <= 0).
    Without ``completion_ids`` (called outside GRPO), whitespace-separated words stand in
    for tokens.
    """

    name = "repetition"

    def __init__(self, **options: Any):
        super().__init__(**options)
        from trl.rewards import get_repetition_penalty_reward

        ngram_size = int(options.get("ngram_size", 3))
        max_penalty = float(options.get("max_penalty", -1.0))
        if ngram_size < 1:
            raise ConfigError("reward repetition.ngram_size", ngram_size, "an integer >= 1")
        if max_penalty > 0:
            raise ConfigError("reward repetition.max_penalty", max_penalty, "a number <= 0")
        self._penalty = get_repetition_penalty_reward(ngram_size=ngram_size, max_penalty=max_penalty)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        ids = kwargs.get("completion_ids")
        if ids is None:
            from .text import completion_text

            vocab: dict[str, int] = {}
            ids = [[vocab.setdefault(w, len(vocab)) for w in completion_text(c).split()] for c in completions]
        return list(self._penalty(ids))
