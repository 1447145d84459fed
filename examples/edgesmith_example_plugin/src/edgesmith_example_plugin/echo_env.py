"""``echo``: repeat a short word sequence back exactly (a deterministic toy environment)."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

from edgesmith.core.environment import Environment, Task, Verification
from edgesmith.core.errors import ConfigError

WORDS = ["red", "green", "blue", "cat", "dog", "sun", "moon", "tree", "river", "stone"]


@dataclass
class EchoOptions:
    """``vocabulary``: the words prompts are made of. edgesmith checks keys and types
    (a typo names the full key); this class checks only what is specific to echo."""

    vocabulary: list[str] = field(default_factory=lambda: list(WORDS))

    def __post_init__(self) -> None:
        if len(set(self.vocabulary)) < 2:
            raise ConfigError("vocabulary", self.vocabulary, "at least two distinct words")


class EchoEnvironment(Environment):
    """Tasks: "Repeat: w1 w2 ..."; difficulty = number of words. Reward 1 for an exact echo."""

    name = "echo"
    options_class = EchoOptions

    def _task(self, index: int) -> Task:
        rng = random.Random(f"{self.seed}-{index}")
        words = " ".join(rng.choice(self.options.vocabulary) for _ in range(max(1, self.difficulty) + 1))
        return Task(id=f"echo-{index}", messages=[{"role": "user", "content": f"Repeat: {words}"}],
                    reference=words, solution=words)

    def _split_of(self, task: Task) -> str:
        # Hash of the content, so a prompt never lands in both splits.
        return "eval" if int(hashlib.sha256(task.reference.encode()).hexdigest(), 16) % 5 == 0 else "train"

    def tasks(self, split, n):
        out, seen, index = [], set(), 0
        while len(out) < n and index < 100 * n + 1000:
            task = self._task(index)
            index += 1
            if self._split_of(task) == split and task.reference not in seen:
                seen.add(task.reference)
                out.append(task)
        if len(out) < n:
            raise ValueError(f"echo: only {len(out)} distinct {split} tasks at difficulty {self.difficulty}; asked for {n}")
        return out

    def verify(self, task, completion):
        answer = completion.replace("<|im_end|>", "").strip()
        correct = answer == task.reference
        return Verification(reward=float(correct), correct=correct, details={"expected": task.reference})
