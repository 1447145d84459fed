"""The judge interface: scores several completions of one prompt (higher is better)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from .environment import Environment, Task


class Judge(ABC):
    """Base class of judge plugins; a jury combines several judges."""

    name: str = "judge"

    def __init__(self, **options: Any):
        self.options = options

    @abstractmethod
    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> list[float]:
        """One score per completion. ``finished[i]`` is False when completion i hit the token budget."""
