"""The environment interface: a family of tasks with seeded splits and a verifier.

Environments feed SFT data (reference completions), DPO prompts, RL rewards and
evaluation alike, so one definition of a task serves every stage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

Split = Literal["train", "eval"]


@dataclass
class Task:
    """One prompt of an environment.

    ``messages`` are chat messages (``{"role": ..., "content": ...}``) ready for
    ``tokenizer.apply_chat_template(messages, tools=tools)``; ``reference`` is what the
    verifier checks against; ``solution`` is a correct assistant completion when the
    environment can write one (SFT data, cold-start recovery).
    """

    id: str
    messages: list[dict[str, Any]]
    reference: Any
    tools: list[dict[str, Any]] | None = None
    solution: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verification:
    """A verifier's verdict on one completion."""

    reward: float
    correct: bool
    details: dict[str, Any] = field(default_factory=dict)


class Environment(ABC):
    """Base class of environment plugins.

    Deterministic for a seed; ``tasks("train", n)`` and ``tasks("eval", n)`` never share a
    task; ``difficulty`` is an environment-defined scale (documented by each plugin).
    """

    name: str = "environment"

    def __init__(self, seed: int = 0, difficulty: int = 1, **options: Any):
        self.seed = seed
        self.difficulty = difficulty
        self.options = options

    @abstractmethod
    def tasks(self, split: Split, n: int) -> list[Task]:
        """``n`` tasks of ``split``, the same ones for the same seed."""

    @abstractmethod
    def verify(self, task: Task, completion: str) -> Verification:
        """Scores an assistant completion (the generated text, special tokens kept)."""
