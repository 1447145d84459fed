"""The reward interface for RL: a callable with TRL's reward-function signature."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Reward(ABC):
    """Base class of reward plugins.

    Instances are passed to TRL's ``GRPOTrainer(reward_funcs=[...])``: they are called as
    ``reward(prompts=..., completions=..., **dataset_columns)`` and return one float per
    completion (``None`` where the reward does not apply).
    """

    name: str = "reward"

    def __init__(self, **options: Any):
        self.options = options

    @property
    def __name__(self) -> str:  # TRL logs rewards under their function name
        return self.name

    @abstractmethod
    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        ...
