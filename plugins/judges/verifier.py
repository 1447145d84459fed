"""The ``verifier`` judge: the environment's own reward for each completion."""

from __future__ import annotations

from edgesmith.core.environment import Environment, Task
from edgesmith.core.judge import Judge


class VerifierJudge(Judge):
    """Scores a completion with ``environment.verify(task, completion).reward``."""

    name = "verifier"

    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> list[float]:
        return [float(environment.verify(task, text).reward) for text in completions]

