"""The ``length`` judge: prefers the shorter of otherwise equal answers."""

from __future__ import annotations

from edgesmith.core.environment import Environment, Task
from edgesmith.core.judge import Judge


class LengthJudge(Judge):
    """Scores ``1 - len / longest`` among the completions of one prompt (shortest gets most).

    In a jury it carries a small weight, so it only decides between answers the other
    judges rate equally; length is counted in characters, so the judge needs no tokenizer.
    """

    name = "length"

    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> list[float]:
        longest = max((len(text) for text in completions), default=0)
        if longest == 0:
            return [0.0] * len(completions)
        return [1.0 - len(text) / longest for text in completions]
