"""The ``loop`` judge: penalizes completions the loop detector flags (doom loops)."""

from __future__ import annotations

from edgesmith.core.environment import Environment, Task
from edgesmith.core.judge import Judge


class LoopJudge(Judge):
    """``penalty`` (default -1.0) for a looping completion, 0.0 otherwise.

    Options other than ``penalty`` are passed to
    :func:`edgesmith.plugins.loops.detector.detect_loop` (its thresholds).
    """

    name = "loop"

    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> list[float]:
        from edgesmith.plugins.loops.detector import detect_loop

        options = dict(self.options)
        penalty = float(options.pop("penalty", -1.0))
        finished = finished if finished is not None else [True] * len(completions)
        return [penalty if detect_loop(text, done, **options).looping else 0.0
                for text, done in zip(completions, finished)]
