"""Cold-start detection for RL: which environments give GRPO no learning signal.

GRPO learns from reward differences within a prompt's group of completions. When every
completion of a prompt gets the same verifier reward (typically all 0: the policy never
solves the task), the group's advantages are all zero. An environment where almost every
group is flat and the mean reward is near zero is missing SFT data: RL cannot start there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from edgesmith.core import distributed


@dataclass
class EnvironmentSignal:
    """Per-environment statistics of the verifier reward over the groups seen so far."""

    groups: int = 0
    flat_groups: int = 0
    reward_sum: float = 0.0
    rewards: int = 0

    @property
    def flat_share(self) -> float:
        return self.flat_groups / self.groups if self.groups else 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.rewards if self.rewards else 0.0


class SignalTracker:
    """Collects verifier rewards, ``group_size`` per prompt (GRPO's groups).

    Under a multi-process launch a prompt's group may be scored on several processes: scores
    wait in ``_pending`` until :meth:`sync`, which applies every process's scores on every
    process (so all of them take the same cold-start decision).
    """

    def __init__(self, group_size: int):
        self.group_size = group_size
        self.signals: dict[str, EnvironmentSignal] = {}
        self._open: dict[str, list[float]] = {}
        self._pending: list[tuple[str, str, float]] = []

    def on_score(self, task_key: str, env_name: str, reward: float) -> None:
        self._pending.append((task_key, env_name, float(reward)))
        if not distributed.is_distributed():
            self.sync()

    def sync(self) -> None:
        """Applies the scores recorded since the last sync, every process's (a collective call)."""
        scores, self._pending = distributed.gather(self._pending), []
        for score in scores:
            self._apply(*score)

    def _apply(self, task_key: str, env_name: str, reward: float) -> None:
        group = self._open.setdefault(task_key, [])
        group.append(reward)
        signal = self.signals.setdefault(env_name, EnvironmentSignal())
        signal.reward_sum += reward
        signal.rewards += 1
        if len(group) == self.group_size:
            signal.groups += 1
            signal.flat_groups += max(group) - min(group) < 1e-9
            del self._open[task_key]

    def reset(self) -> None:
        self.signals.clear()
        self._open.clear()
        self._pending.clear()

    def snapshot(self) -> dict[str, dict[str, float]]:
        return {name: {"groups": s.groups, "flat_share": round(s.flat_share, 4),
                       "mean_reward": round(s.mean_reward, 4)} for name, s in self.signals.items()}


@dataclass
class ColdStartEvent:
    """One cold-start decision, recorded in ``cold_start.json`` and the stage's artifact."""

    step: int
    environments: list[str]
    signal: dict[str, dict[str, float]]
    action: str  # "reported" or "recovered"
    message: str
    recovery: dict[str, Any] = field(default_factory=dict)


class ColdStartCallback(TrainerCallback):
    """Checks the signal after ``check_steps`` steps; may stop training for recovery."""

    def __init__(self, tracker: SignalTracker, check_steps: int, flat_share: float, max_reward: float,
                 stop_on_detection: bool, on_detect: Any):
        self.tracker = tracker
        self.check_steps = check_steps
        self.flat_share = flat_share
        self.max_reward = max_reward
        self.stop_on_detection = stop_on_detection
        self.on_detect = on_detect
        self.checked = False
        self.flagged: list[str] = []
        self._start_step: int | None = None

    def missing(self) -> list[str]:
        return sorted(name for name, s in self.tracker.signals.items()
                      if s.groups and s.flat_share >= self.flat_share and s.mean_reward <= self.max_reward)

    def on_step_end(self, args, state, control, **kwargs):
        self.tracker.sync()  # every step, on every process: the decision below is then the same everywhere
        if self._start_step is None:
            self._start_step = state.global_step - 1
        if self.checked or state.global_step - self._start_step < self.check_steps:
            return
        self.checked = True
        self.flagged = self.missing()
        if self.flagged:
            self.on_detect(state.global_step, self.flagged, self.tracker.snapshot())
            if self.stop_on_detection:
                control.should_training_stop = True


def write_events(path: Path, events: list[ColdStartEvent]) -> None:
    from .model_io import write_text_atomic

    write_text_atomic(path, json.dumps([asdict(e) for e in events], indent=2))


def read_events(path: Path) -> list[ColdStartEvent]:
    if not path.is_file():
        return []
    return [ColdStartEvent(**e) for e in json.loads(path.read_text())]
