"""The reward interface for RL: a callable with TRL's reward-function signature."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from .environment import Environment, Task
from .options import NoOptions, build_options


@dataclass
class RewardRuntime:
    """What the RL stage hands every reward besides the user's options.

    ``environments`` by name and ``tasks`` by the dataset's ``task_key`` (``(env name, Task)``);
    ``tokenizer`` decodes TRL's completion ids with special tokens kept. A reward whose score
    is a task's verified reward reports each one to ``on_score(task_key, env_name, reward)``
    when it is set: the RL stage's cold-start check watches the learning signal that way.
    """

    environments: dict[str, Environment] = field(default_factory=dict)
    tasks: dict[str, tuple[str, Task]] = field(default_factory=dict)
    tokenizer: Any = None
    on_score: Callable[[str, str, float], None] | None = None


class Reward(ABC):
    """Base class of reward plugins.

    Instances are passed to TRL's ``GRPOTrainer(reward_funcs=[...])``: they are called as
    ``reward(prompts=..., completions=..., **dataset_columns)`` and return one float per
    completion (``None`` where the reward does not apply). ``options_class`` declares what a
    user may set (``rl.rewards[i].options``); run-time objects arrive as ``runtime``.
    """

    name: str = "reward"
    options_class: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None, runtime: RewardRuntime | None = None):
        # Built directly (tests, libraries), a mapping goes through the same checks as a config's.
        self.options = build_options(self.options_class, options, f"reward {self.name}")
        self.runtime = runtime if runtime is not None else RewardRuntime()

    @property
    def __name__(self) -> str:  # TRL logs rewards under their function name
        return self.name

    @abstractmethod
    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        ...
