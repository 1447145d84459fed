"""The ``loop`` judge: penalizes completions the loop detector flags (doom loops)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgesmith.core.environment import Environment, Task
from edgesmith.core.judge import Judge
from edgesmith.plugins.loops import detector


@dataclass
class LoopJudgeOptions(detector.LoopDetectorOptions):
    """``penalty`` for a looping completion; the rest are the loop detector's thresholds
    (:class:`~edgesmith.plugins.loops.detector.LoopDetectorOptions`)."""

    penalty: float = -1.0


class LoopJudge(Judge):
    """``penalty`` (default -1.0) for a looping completion, 0.0 otherwise."""

    name = "loop"
    options_class = LoopJudgeOptions

    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> list[float]:
        thresholds = dataclasses.asdict(self.options)
        penalty = thresholds.pop("penalty")
        finished = finished if finished is not None else [True] * len(completions)
        return [penalty if detector.detect_loop(text, done, **thresholds).looping else 0.0
                for text, done in zip(completions, finished)]
