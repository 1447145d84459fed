"""The ``repetition`` reward: TRL's n-gram repetition penalty on the completion tokens."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgesmith.core.errors import ConfigError
from edgesmith.core.reward import Reward, RewardRuntime


@dataclass
class RepetitionOptions:
    """``ngram_size`` (>= 1) and ``max_penalty`` (<= 0) of TRL's n-gram repetition penalty."""

    ngram_size: int = 3
    max_penalty: float = -1.0

    def __post_init__(self) -> None:
        if self.ngram_size < 1:
            raise ConfigError("ngram_size", self.ngram_size, "an integer >= 1")
        if self.max_penalty > 0:
            raise ConfigError("max_penalty", self.max_penalty, "a number <= 0")


class RepetitionReward(Reward):
    """Wraps ``trl.rewards.get_repetition_penalty_reward`` (penalty in ``[max_penalty, 0]``).

    Options: :class:`RepetitionOptions`. Without ``completion_ids`` (called outside GRPO),
    whitespace-separated words stand in for tokens.
    """

    name = "repetition"
    options_class = RepetitionOptions

    def __init__(self, options: Any = None, runtime: RewardRuntime | None = None):
        super().__init__(options, runtime)
        from trl.rewards import get_repetition_penalty_reward

        self._penalty = get_repetition_penalty_reward(ngram_size=self.options.ngram_size,
                                                      max_penalty=self.options.max_penalty)

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        ids = kwargs.get("completion_ids")
        if ids is None:
            from .text import completion_text

            vocab: dict[str, int] = {}
            ids = [[vocab.setdefault(w, len(vocab)) for w in completion_text(c).split()] for c in completions]
        return list(self._penalty(ids))
