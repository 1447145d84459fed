"""A jury: several judges, one aggregated score per completion.

Aggregations: ``weighted_sum`` (sum of weight x score) and ``rank_average`` (each judge
ranks the completions, ties sharing the mean rank; the weighted mean rank is the score),
which makes judges on different scales comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgesmith.core.environment import Environment, Task
from edgesmith.core.errors import ConfigError
from edgesmith.core.judge import Judge
from edgesmith.core.plugin_manager import as_ref

AGGREGATIONS = ("weighted_sum", "rank_average")


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
    def from_refs(cls, refs: list[Any], aggregation: str, plugins: Any, key: str = "jury") -> Jury:
        """Builds the jury from :class:`PluginRef` entries (or ``{name, weight, options}`` mappings)
        through the plugin manager; a bad name or option names ``<key>.judges[i]...``."""
        judges = []
        for i, entry in enumerate(refs):
            ref = as_ref(entry, f"{key}.judges[{i}]")
            judges.append((ref.name, plugins.build_ref("judge", ref, f"{key}.judges[{i}]"), float(ref.weight)))
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
