"""The ``reasoning`` environment: multi-step problems with one verifiable final answer.

Three kinds of problem, all long enough for a small model to lose its place and loop:

* ``search`` (the default): a star graph (``3 + d`` arms of ``1 + d`` nodes) solved by a
  written depth-first search: arms are tried in random order, a dead end goes back to the
  centre, until the arm that reaches the target is found. The loop-prone task of the
  main job (see ``_search`` for why it loops under greedy decoding and not when sampled).

* ``star``: path finding on a star graph, the task on which Pipis et al. (2025, "Wait,
  Wait, Wait... Why Do Reasoning Models Loop?") and Bachmann & Nagarajan (2024) show models
  looping: a centre node with ``degree`` arms of ``arm_length`` nodes each, the edges listed
  in random order; the answer is the path from the centre to a given leaf.
* ``arithmetic``: a chain of operations on a running value, solved with a scratchpad.

The completion must end with ``Final answer: ...`` (the last such line counts); no final
answer gives reward 0. Star paths are written as comma-separated node numbers.

Options: ``kind`` (``search``, ``star``, ``arithmetic`` or ``mixed`` = star and arithmetic
alternating; default search); ``arm_order`` of the search traces (``listed``: the centre's
edges stand together in the prompt and are tried in the order listed; ``random``: edges
fully shuffled, arms tried in an unrelated random order; default listed, see ``_search``).
Difficulty 1-5: star graphs have ``2 + d`` arms of ``1 + d`` nodes; arithmetic chains
have ``2 + 2d`` operations with operands up to ``5 * d``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from edgesmith.core.environment import Correction, Task, Verification
from edgesmith.core.errors import ConfigError

from .search_expert import search_correction, search_corrections
from .synthetic import FINAL_ANSWER, GeneratedEnvironment, final_answer

SYSTEM = ("Solve the problem step by step. End with a last line of the form "
          f"'{FINAL_ANSWER} <answer>'.")
KINDS = ("search", "star", "arithmetic", "mixed")
ARM_ORDERS = ("listed", "random")


@dataclass
class ReasoningOptions:
    """Options of the ``reasoning`` environment."""

    kind: str = "search"
    arm_order: str = "listed"


def _star(rng: random.Random, difficulty: int) -> tuple[str, str, dict[str, Any]]:
    degree, arm_length = 2 + difficulty, 1 + difficulty
    labels = rng.sample(range(1, 10 * (degree * arm_length + 1)), degree * arm_length + 1)
    centre, rest = labels[0], labels[1:]
    arms = [[centre] + rest[a * arm_length:(a + 1) * arm_length] for a in range(degree)]
    edges = [(arm[i], arm[i + 1]) for arm in arms for i in range(arm_length)]
    rng.shuffle(edges)
    path = arms[rng.randrange(degree)]
    target = path[-1]
    edge_text = ", ".join(f"{a}-{b}" for a, b in edges)
    prompt = (f"A graph has the directed edges {edge_text}. Find the path from node {centre} "
              f"to node {target}. Answer with the node numbers along the path, separated by commas.")
    back = " <- ".join(str(v) for v in reversed(path))
    steps = [f"Node {target} is the end of one arm. Walking back along the edges that lead into it: {back}."]
    for a, b in zip(path, path[1:]):
        steps.append(f"Edge {a}-{b} exists.")
    steps.append(f"So the path is {' -> '.join(str(v) for v in path)}.")
    solution = "\n".join(steps) + f"\n{FINAL_ANSWER} {','.join(str(v) for v in path)}"
    return prompt, solution, {"kind": "star", "answer": path}


def _search(rng: random.Random, difficulty: int, arm_order: str = "listed") -> tuple[str, str, dict[str, Any]]:
    """A star graph solved by depth-first search: arms tried one by one, dead ends backtracked.

    The trace makes the loop mechanism of Pipis et al. real: backtracking to the centre is a
    cheap action repeated in every trace, while the progress step (choose an arm not tried
    yet) has no single right answer (the order is random) and must be learned from the
    trace so far. A model that learns it imperfectly prefers one arm slightly; greedy
    decoding then tries the same arm again and again, while sampling at temperature 1 moves
    on and finishes: the samples DPO prefers and RL rewards.

    The target is starred where it appears (``21>89*``, "to 89*"), and a walk that ends
    there copies the star (``Try 68>21>89*: reached 89.``), so "dead end or reached" is read
    off the token before the colon, by the same copying that writes the walk. Without it
    the model must compare the walk's last node with the target, and whether it learned to
    was a matter of luck: in runs base1 and base2 (the same recipe, feed-forward width 384
    against 576) the SFT model labelled 99% and 51% of its tries right; base2's said
    "reached" at the second try whatever the arm, so it never looped and rarely solved.

    ``arm_order="listed"``: the centre's edges stand together in the prompt (in random order,
    at a random place among the others) and the trace tries the arms in that order, so the
    next arm is the one listed after the arm just tried: a two-step lookup (which arm came
    last, what follows it in the list) that a small model learns imperfectly, with "the
    first arm listed" as the cheap default that retries it. With ``random`` the next arm is
    any arm not tried yet, a set difference the main job's models never learned at all
    (``scripts/arm_memory_probe.py``: 0.31 probability on the arm just tried, 0.25 is
    none), so DPO and RL had no skill to strengthen, only stopping to reward.
    """
    degree, arm_length = 3 + difficulty, 1 + difficulty
    labels = rng.sample(range(10, 100), degree * arm_length + 1)
    centre, rest = labels[0], labels[1:]
    arms = [[centre] + rest[a * arm_length:(a + 1) * arm_length] for a in range(degree)]
    goal_arm = rng.randrange(degree)
    order = list(range(degree))
    rng.shuffle(order)
    if arm_order == "listed":
        edges = [(arm[i], arm[i + 1]) for arm in arms for i in range(1, arm_length)]
        rng.shuffle(edges)
        at = rng.randint(0, len(edges))
        edges[at:at] = [(centre, arms[a][1]) for a in order]
    else:
        edges = [(arm[i], arm[i + 1]) for arm in arms for i in range(arm_length)]
        rng.shuffle(edges)
    target = arms[goal_arm][-1]
    edge_text = ", ".join(f"{a}>{b}" + ("*" if b == target else "") for a, b in edges)
    prompt = f"Edges: {edge_text}. Find the path from {centre} to {target}*."
    lines = [f"Start at {centre}."]
    for a in order:
        walk = ">".join(str(v) for v in arms[a])
        if a == goal_arm:
            lines.append(f"Try {walk}*: reached {target}.")
            break
        lines.append(f"Try {walk}: dead end, back to {centre}.")
    path = arms[goal_arm]
    solution = "\n".join(lines) + f"\n{FINAL_ANSWER} {','.join(str(v) for v in path)}"
    return prompt, solution, {"kind": "star", "answer": path, "arms_tried": len(lines) - 1}


_OPS = {"add": ("Add {x}.", "+"), "sub": ("Subtract {x}.", "-"), "mul": ("Multiply by {x}.", "*")}


def _arithmetic(rng: random.Random, difficulty: int) -> tuple[str, str, dict[str, Any]]:
    value = rng.randint(2, 20)
    start = value
    instructions, scratch = [], [f"Start with {value}."]
    for _ in range(2 + 2 * difficulty):
        op = rng.choice(("add", "sub", "mul") if abs(value) < 200 else ("add", "sub"))
        x = rng.randint(2, max(3, 5 * difficulty))
        new = value + x if op == "add" else value - x if op == "sub" else value * x
        text, sign = _OPS[op]
        instructions.append(text.format(x=x))
        scratch.append(f"{value} {sign} {x} = {new}")
        value = new
    prompt = f"Start with {start}. " + " ".join(instructions) + " What is the result?"
    solution = "\n".join(scratch) + f"\n{FINAL_ANSWER} {value}"
    return prompt, solution, {"kind": "arithmetic", "answer": value}


_MAKERS = {"star": _star, "arithmetic": _arithmetic}  # search: takes arm_order too


class ReasoningEnvironment(GeneratedEnvironment):
    """Star-graph path finding and scratchpad arithmetic with a ``Final answer:`` line."""

    name = "reasoning"
    options_class = ReasoningOptions
    max_difficulty = 5

    def __init__(self, options: Any = None, *, seed: int = 0, difficulty: int = 1):
        super().__init__(options, seed=seed, difficulty=difficulty)
        if self.options.kind not in KINDS:
            raise ConfigError("env.reasoning.kind", self.options.kind, f"one of {', '.join(KINDS)}")
        if self.options.arm_order not in ARM_ORDERS:
            raise ConfigError("env.reasoning.arm_order", self.options.arm_order, f"one of {', '.join(ARM_ORDERS)}")

    def generate(self, rng: random.Random, index: int) -> Task:
        kind = self.options.kind
        if kind == "mixed":
            kind = "star" if index % 2 == 0 else "arithmetic"
        if kind == "search":
            prompt, solution, reference = _search(rng, self.difficulty, self.options.arm_order)
        else:
            prompt, solution, reference = _MAKERS[kind](rng, self.difficulty)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        return Task(id="", messages=messages, reference=reference, solution=solution,
                    metadata={"kind": kind})

    def verify(self, task: Task, completion: str) -> Verification:
        reference = task.reference
        answer = final_answer(completion)
        details: dict[str, Any] = {"kind": reference["kind"], "expected": reference["answer"], "answer": answer}
        if answer is None:
            details["reason"] = f"no final answer (a line starting with '{FINAL_ANSWER}')"
            return Verification(0.0, False, details)
        numbers = [int(x) for x in re.findall(r"-?\d+", answer)]
        if reference["kind"] == "star":
            ok = numbers == list(reference["answer"])
        else:
            ok = len(numbers) == 1 and numbers[0] == reference["answer"]
        details["reason"] = "" if ok else f"wrong answer: got {answer!r}"
        return Verification(1.0 if ok else 0.0, ok, details)

    def correct(self, task: Task, completion: str, ended: bool = True) -> Correction | None:
        """The search task's expert correction (:mod:`.search_expert`); the other kinds have none."""
        if task.metadata.get("kind") != "search":
            return None
        return search_correction(task, completion, ended)

    def corrections(self, task: Task, completion: str, ended: bool = True) -> list[Correction]:
        """The search task's corrections at its first mistake and after each retried arm."""
        if task.metadata.get("kind") != "search":
            return []
        return search_corrections(task, completion, ended, past_retries=True)
