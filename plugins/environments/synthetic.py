"""Shared machinery of the generated (synthetic) environments: seeded tasks, hash splits.

A generated environment writes task number ``i`` from its own random stream
(``random.Random("<name>:<seed>:<difficulty>:<i>")``), so the same seed gives the same
tasks in the same order and ``tasks(split, n)`` is a prefix of ``tasks(split, n + k)``.
The split is decided by a hash of the task's *content* (its prompt), not its index: a prompt
lands in ``eval`` when the hash falls under ``eval_fraction``, otherwise in ``train``. So the
two splits can never share a prompt, for any seeds: training on another seed's train split
never leaks an evaluation prompt. On top of that, the open values a prompt carries are
drawn from its split's own share of each value space, so an evaluation prompt's names and
phrases never appear in training at all.
"""

from __future__ import annotations

import hashlib
import json
import random
from abc import abstractmethod
from typing import Any

from edgesmith.core.environment import Environment, Split, Task
from edgesmith.core.errors import ConfigError
from edgesmith.plugins.world.values import SplitRandom

EVAL_FRACTION = 0.2
FINAL_ANSWER = "Final answer:"


def content_hash(messages: list[dict[str, Any]], tools: Any) -> str:
    """A stable hex digest of a prompt (messages and tools)."""
    blob = json.dumps({"messages": messages, "tools": tools}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def in_eval_split(digest: str, eval_fraction: float = EVAL_FRACTION) -> bool:
    return int(digest[:16], 16) / 16**16 < eval_fraction


def check_difficulty(env_name: str, difficulty: Any, highest: int) -> int:
    if isinstance(difficulty, bool) or not isinstance(difficulty, int) or not 1 <= difficulty <= highest:
        raise ConfigError(f"env.{env_name}.difficulty", difficulty, f"an integer from 1 to {highest}")
    return difficulty


class GeneratedEnvironment(Environment):
    """Base of environments whose tasks are generated: subclasses write one task from a random stream."""

    #: hardest supported difficulty (1 = easiest)
    max_difficulty: int = 5

    def __init__(self, options: Any = None, *, seed: int = 0, difficulty: int = 1):
        super().__init__(options, seed=seed, difficulty=difficulty)
        check_difficulty(self.name, difficulty, self.max_difficulty)

    @abstractmethod
    def generate(self, rng: random.Random, index: int) -> Task:
        """Task number ``index`` (its ``id`` is filled in by :meth:`tasks`)."""

    def tasks(self, split: Split, n: int) -> list[Task]:
        if split not in ("train", "eval"):
            raise ConfigError("split", split, "'train' or 'eval'")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError("n", n, "a non-negative integer number of tasks")
        want_eval = split == "eval"
        found: list[Task] = []
        seen: set[str] = set()
        index = 0
        # Small spaces (low difficulty) may run out of distinct prompts: give up with a clear error.
        budget = 200 + 50 * n
        while len(found) < n:
            if index >= budget:
                raise ConfigError(f"env.{self.name}.difficulty", self.difficulty,
                                  f"a difficulty with more distinct prompts: only {len(found)} distinct "
                                  f"'{split}' tasks were found in {budget} tries, {n} were asked for")
            # The stream knows its split, so open values (names, phrases) are drawn from that split's
            # share of the value space (edgesmith.plugins.world.values): eval values never train.
            rng = SplitRandom(f"{self.name}:{self.seed}:{self.difficulty}:{index}", split)
            task = self.generate(rng, index)
            index += 1
            digest = content_hash(task.messages, task.tools)
            if digest in seen or in_eval_split(digest) != want_eval:
                continue
            seen.add(digest)
            task.id = f"{self.name}-{digest[:12]}"
            task.metadata.setdefault("difficulty", self.difficulty)
            task.metadata["split"] = split
            found.append(task)
        return found


def final_answer(completion: str, marker: str = FINAL_ANSWER) -> str | None:
    """The text after the last ``marker`` up to the end of that line (special tokens cut), or None."""
    at = completion.rfind(marker)
    if at < 0:
        return None
    rest = completion[at + len(marker):]
    cut = rest.find("<|")  # a special token (end of turn) ends the answer
    if cut >= 0:
        rest = rest[:cut]
    line = rest.strip().splitlines()
    return line[0].strip() if line else ""
