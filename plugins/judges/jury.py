"""A jury: several judges, one aggregated score per completion.

Aggregations: ``weighted_sum`` (sum of weight x score) and ``rank_average`` (each judge
ranks the completions, ties sharing the mean rank; the weighted mean rank is the score),
which makes judges on different scales comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgesmith.core.environment import Environment, Task
from edgesmith.core.errors import ConfigError
from edgesmith.core.judge import Judge

AGGREGATIONS = ("weighted_sum", "rank_average")


@dataclass
class JudgeSpec:
    """One juror: a registered judge name, its weight and its options."""

    name: str
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verdict:
    """The jury's scores of one prompt's completions, with every judge's own scores."""

    scores: list[float]
    by_judge: dict[str, list[float]]


def _ranks(values: list[float]) -> list[float]:
    """Ranks from 0 (worst) upward; equal values share their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


class Jury:
    """Scores completions with several judges and aggregates them (higher is better)."""

    def __init__(self, judges: list[tuple[str, Judge, float]], aggregation: str = "weighted_sum"):
        if aggregation not in AGGREGATIONS:
            raise ConfigError("jury.aggregation", aggregation, ", ".join(AGGREGATIONS))
        if not judges:
            raise ConfigError("jury.judges", judges, "at least one judge")
        self.judges = judges
        self.aggregation = aggregation

    @classmethod
    def from_specs(cls, specs: list[Any], aggregation: str, plugins: Any, key: str = "jury") -> Jury:
        """Builds the jury from ``[{name, weight, options}]`` entries through the plugin registry."""
        judges = []
        for i, spec in enumerate(specs):
            if isinstance(spec, dict):
                spec = JudgeSpec(**spec)
            judge_cls = plugins.get("judge", spec.name, key=f"{key}.judges[{i}].name")
            judges.append((spec.name, judge_cls(**dict(spec.options or {})), float(spec.weight)))
        return cls(judges, aggregation)

    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> Verdict:
        by_judge: dict[str, list[float]] = {}
        total = [0.0] * len(completions)
        weight_sum = sum(abs(w) for _, _, w in self.judges) or 1.0
        for name, judge, weight in self.judges:
            scores = judge.score(task, completions, environment, finished)
            if len(scores) != len(completions):
                raise ValueError(f"judge '{name}' returned {len(scores)} scores for {len(completions)} completions")
            by_judge[name] = [float(s) for s in scores]
            values = _ranks(scores) if self.aggregation == "rank_average" else scores
            for i, v in enumerate(values):
                total[i] += weight * v
        if self.aggregation == "rank_average":
            total = [t / weight_sum for t in total]
        return Verdict(scores=total, by_judge=by_judge)
