"""The ``verifier`` reward: the environment's verifier on the final answer."""

from __future__ import annotations

from typing import Any

from edgesmith.core.reward import Reward

from .text import completion_texts


class VerifierReward(Reward):
    """``environment.verify(task, completion).reward`` for each completion.

    No options. From the runtime: ``environments`` and ``tasks`` (the dataset's ``task_key``
    column names each row's task; rows whose key is unknown get ``None``, which TRL leaves out
    of this reward), ``tokenizer`` (optional: decodes TRL's completion ids with special tokens
    kept) and ``on_score`` (optional: this reward is a task's verified score, so it reports
    each one).
    """

    name = "verifier"

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        keys = kwargs.get("task_key") or [None] * len(completions)
        rewards: list[float | None] = []
        texts = completion_texts(completions, kwargs, self.runtime.tokenizer)
        for key, text in zip(keys, texts):
            if key not in self.runtime.tasks:
                rewards.append(None)
                continue
            env_name, task = self.runtime.tasks[key]
            reward = float(self.runtime.environments[env_name].verify(task, text).reward)
            if self.runtime.on_score is not None:
                self.runtime.on_score(key, env_name, reward)
            rewards.append(reward)
        return rewards
