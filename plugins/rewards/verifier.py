"""The ``verifier`` reward: the environment's verifier on the final answer."""

from __future__ import annotations

from typing import Any

from edgesmith.core.environment import Environment, Task
from edgesmith.core.reward import Reward

from .text import completion_texts


class VerifierReward(Reward):
    """``environment.verify(task, completion).reward`` for each completion.

    Options: ``environments`` ({name: Environment}) and ``tasks`` ({task_key: (env name,
    Task)}); the dataset carries a ``task_key`` column naming each row's task. Rows whose
    key is unknown get ``None`` (TRL leaves them out of this reward). ``tokenizer`` (optional)
    decodes TRL's completion ids with special tokens kept; an optional
    ``on_score(task_key, env_name, reward)`` hook lets the RL stage watch the signal.
    """

    name = "verifier"

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.environments: dict[str, Environment] = dict(options.get("environments") or {})
        self.tasks: dict[str, tuple[str, Task]] = dict(options.get("tasks") or {})
        self.on_score = options.get("on_score")
        self.tokenizer = options.get("tokenizer")

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        keys = kwargs.get("task_key") or [None] * len(completions)
        rewards: list[float | None] = []
        texts = completion_texts(completions, kwargs, self.tokenizer)
        for key, text in zip(keys, texts):
            if key not in self.tasks:
                rewards.append(None)
                continue
            env_name, task = self.tasks[key]
            reward = float(self.environments[env_name].verify(task, text).reward)
            if self.on_score is not None:
                self.on_score(key, env_name, reward)
            rewards.append(reward)
        return rewards
