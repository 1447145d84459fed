"""The judge interface: scores several completions of one prompt (higher is better)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from .environment import Environment, Task
from .options import NoOptions, build_options


class Judge(ABC):
    """Base class of judge plugins; a jury combines several judges.

    ``options_class`` declares what a user may set (``dpo.judges[i].options``); the plugin
    manager validates them (:mod:`edgesmith.core.options`) and passes the dataclass.
    """

    name: str = "judge"
    options_class: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None):
        # Built directly (tests, libraries), a mapping goes through the same checks as a config's.
        self.options = build_options(self.options_class, options, f"judge {self.name}")

    @abstractmethod
    def score(self, task: Task, completions: list[str], environment: Environment,
              finished: list[bool] | None = None) -> list[float]:
        """One score per completion. ``finished[i]`` is False when completion i hit the token budget."""
