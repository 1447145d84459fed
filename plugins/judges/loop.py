"""The ``loop`` judge: penalizes completions the loop detector flags (doom loops)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from edgesmith.core.environment import Environment, Task
from edgesmith.core.judge import Judge
from edgesmith.plugins.loops import detector


@dataclass
class LoopJudgeOptions:
    """``penalty`` for a looping completion; the rest are the loop detector's thresholds
    (:func:`edgesmith.plugins.loops.detector.detect_loop`, whose defaults they are)."""

    penalty: float = -1.0
    min_span: int = detector.DEFAULT_MIN_SPAN
    min_repeats: int = detector.DEFAULT_MIN_REPEATS
    long_span: int = detector.DEFAULT_LONG_SPAN
    long_repeats: float = detector.DEFAULT_LONG_REPEATS
    max_edits: float = detector.DEFAULT_MAX_EDITS
    max_changed: float = detector.DEFAULT_MAX_CHANGED
    ngram_size: int = detector.DEFAULT_NGRAM_SIZE
    ngram_window: int = detector.DEFAULT_NGRAM_WINDOW
    ngram_threshold: float = detector.DEFAULT_NGRAM_THRESHOLD
    min_ngram_tokens: int = detector.DEFAULT_MIN_NGRAM_TOKENS


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
