"""DPO's on-policy rollouts split across the processes of a multi-process launch, then gathered.

Each process samples and judges its share of the prompts (every ``world_size``-th one) with
its own copy of the policy; the rounds are gathered so every process holds the whole round,
its pairs in prompt order, and the main process writes it. With one process this is exactly
:func:`.preferences.build_preferences`.
"""

from __future__ import annotations

from typing import Any

from edgesmith.core import distributed
from edgesmith.core.environment import Environment, Task

from .preferences import PreferenceRound, build_preferences


def build_preferences_split(model: Any, tokenizer: Any, tasks: list[tuple[str, Task]],
                            environments: dict[str, Environment], jury: Any, **options: Any) -> PreferenceRound:
    """:func:`build_preferences` on this process's share of ``tasks``; the whole round, on every process."""
    mine = build_preferences(model, tokenizer, distributed.shard(tasks), environments, jury, **options)
    if not distributed.is_distributed():
        return mine
    rounds = distributed.gather([mine])  # one round per process
    order = {(env, task.id): i for i, (env, task) in enumerate(tasks)}
    pairs = sorted((p for r in rounds for p in r.pairs), key=lambda p: order[(p.environment, p.task_id)])
    return PreferenceRound(pairs=pairs, ties=sum(r.ties for r in rounds), prompts=sum(r.prompts for r in rounds),
                           candidates=sum(r.candidates for r in rounds), loops=sum(r.loops for r in rounds))
