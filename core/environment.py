"""The environment interface: a family of tasks with seeded splits and a verifier.

Environments feed SFT data (reference completions), DPO prompts, RL rewards and
evaluation alike, so one definition of a task serves every stage.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

from .options import NoOptions, build_options

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


@dataclass
class Correction:
    """Where a completion first goes wrong and how a right one goes on from there.

    ``keep`` characters of the completion are right as they stand (the state the policy
    reached); ``continuation`` is what a correct completion writes after them, to the end.
    """

    keep: int
    continuation: str


class Environment(ABC):
    """Base class of environment plugins.

    Deterministic for a seed; ``tasks("train", n)`` and ``tasks("eval", n)`` never share a
    task; ``difficulty`` is an environment-defined scale (documented by each plugin).
    ``options_class`` declares what a user may set (built through the plugin manager).
    """

    name: str = "environment"
    options_class: ClassVar[type] = NoOptions

    def __init__(self, options: Any = None, *, seed: int = 0, difficulty: int = 1):
        # seed and difficulty come from the stage using the environment; options from the user.
        self.seed = seed
        self.difficulty = difficulty
        self.options = build_options(self.options_class, options, f"env.{self.name}")

    def rollout_tools(self) -> list[Callable[..., str]]:
        """Tools the policy may call while it writes an RL rollout (TRL's ``GRPOTrainer(tools=)``):
        functions whose docstring TRL turns into the tool schema. None by default."""
        return []

    def correct(self, task: Task, completion: str, ended: bool = True) -> Correction | None:
        """An expert's correction of a completion at its first mistake, from the state the
        policy reached there (DPO's ``dpo.corrections``); None where the environment has no
        expert or the completion holds no mistake (``ended``: whether the completion ended by
        itself; one cut by the token budget may stop short of a right one). None by default."""
        return None

    def corrections(self, task: Task, completion: str, ended: bool = True) -> list[Correction]:
        """The expert's corrections at the first mistake and at each later one it can go on
        from (a mistake that leaves the state as it was, like a repeated step). By default
        the first one only."""
        fix = self.correct(task, completion, ended)
        return [fix] if fix is not None else []

    @classmethod
    def has_expert(cls) -> bool:
        """Whether this environment can correct completions (it overrides :meth:`correct`)."""
        return cls.correct is not Environment.correct

    @classmethod
    def offers_rollout_tools(cls) -> bool:
        """Whether this environment has rollout tools (it overrides :meth:`rollout_tools`);
        known from the class, so a stage can check its options before building anything."""
        return cls.rollout_tools is not Environment.rollout_tools

    @abstractmethod
    def tasks(self, split: Split, n: int) -> list[Task]:
        """``n`` tasks of ``split``, the same ones for the same seed."""

    @abstractmethod
    def verify(self, task: Task, completion: str) -> Verification:
        """Scores an assistant completion (the generated text, special tokens kept)."""
