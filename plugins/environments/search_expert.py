"""The expert of the ``search`` reasoning task: the right way on from any state a trace reaches.

A search trace is a list of tries, one per line, each true of the graph: ``Try 74>13>22:
dead end, back to 74.`` for an arm that does not hold the target, ``Try 74>51>48*: reached
48.`` for the one that does, then the final answer. A trace's first mistake is the first
line that is not such a try, or re-tries an arm already tried (the doom loop's retry), or
claims the target on a dead end. The expert keeps every line before it (the state the
policy reached, including arms it tried out of the listed order: any untried arm is a right
next try) and goes on the way the reference trace does: the untried arms in the order the
centre's edges are listed, until the target's arm, then the final answer. Where the wrong
line starts with an untried arm (the choice was right, what followed it was not), the expert
takes that arm first, so the pair is about the mistake and not about the order.

This is what DPO's correction pairs (``dpo.corrections``) are made of: the policy's own
text up to its mistake, then the expert's next token against the policy's.
"""

from __future__ import annotations

import re

from edgesmith.core.environment import Correction, Task

from .synthetic import FINAL_ANSWER

_EDGE = re.compile(r"(\d+)>(\d+)\*?")
_ENDS = re.compile(r"Find the path from (\d+) to (\d+)\*")


def search_arms(prompt: str) -> tuple[int, int, list[list[int]]]:
    """(centre, target, arms in the order the centre's edges are listed) of a search prompt."""
    ends = _ENDS.search(prompt)
    if ends is None:
        raise ValueError(f"not a search prompt (no 'Find the path from A to B*'): {prompt[:80]!r}")
    centre, target = int(ends.group(1)), int(ends.group(2))
    edges = [(int(a), int(b)) for a, b in _EDGE.findall(prompt[:ends.start()])]
    following = {a: b for a, b in edges if a != centre}
    arms = []
    for a, first in edges:
        if a != centre:
            continue
        arm = [centre, first]
        while arm[-1] in following and len(arm) <= len(edges):
            arm.append(following[arm[-1]])
        arms.append(arm)
    return centre, target, arms


def _try_line(arm: list[int], centre: int, target: int) -> str:
    walk = ">".join(str(v) for v in arm)
    if arm[-1] == target:
        return f"Try {walk}*: reached {target}."
    return f"Try {walk}: dead end, back to {centre}."


def search_correction(task: Task, completion: str, ended: bool = True) -> Correction | None:
    """The expert's correction of a search trace at its first mistake (None: no mistake in it;
    a trace that did not end, cut by the token budget, may stop anywhere the expert's would go on)."""
    found = search_corrections(task, completion, ended)
    return found[0] if found else None


def search_corrections(task: Task, completion: str, ended: bool = True,
                       past_retries: bool = False) -> list[Correction]:
    """The expert's corrections of a search trace: at its first mistake, and with
    ``past_retries`` also at each mistake after a retried arm (a retry is true of the graph,
    so the state after it is the state before it: the expert goes on from there, as a trace
    that recovers from its retry must). Any other mistake ends the list."""
    centre, target, arms = search_arms(task.messages[-1]["content"])
    goal = next((arm for arm in arms if arm[-1] == target), None)
    if goal is None:
        return []
    start = f"Start at {centre}."
    answer = f"{FINAL_ANSWER} {','.join(str(v) for v in goal)}"
    tries = {_try_line(arm, centre, target): arm for arm in arms}  # in listed order
    tried: set[str] = set()
    reached = False

    def untried() -> list[list[int]]:
        return [] if reached else [arm for line, arm in tries.items() if line not in tried]

    def expert(keep: int) -> Correction:
        written = completion[keep:]
        untried_arms = untried()
        # the arm the policy chose at its mistake, when that choice was a right one (an untried
        # arm): the expert keeps it and corrects what follows (a claimed target, a wrong edge)
        chose = re.match(rf"Try {centre}>(\d+)\D", written) if keep > 0 else None
        first = next((arm for arm in untried_arms if chose and arm[1] == int(chose.group(1))), None)
        # then the untried arms in listed order, up to the target's
        listed = untried_arms[:untried_arms.index(goal) + 1] if untried_arms else []
        order = [first] if first is goal else ([first] if first else []) + [arm for arm in listed if arm is not first]
        rest = ([start] if keep == 0 else []) + [_try_line(arm, centre, target) for arm in order]
        return Correction(keep=keep, continuation="\n".join([*rest, answer]))

    found: list[Correction] = []
    keep = 0
    lines = completion.split("\n")
    for i, line in enumerate(lines[:-1]):  # complete lines only; the last one may be cut short
        right = (line == start) if i == 0 else (not reached and line in tries and line not in tried)
        if right:
            if i > 0:
                tried.add(line)
                reached = tries[line] is goal
            keep += len(line) + 1
            continue
        found.append(expert(keep))
        if not (past_retries and i > 0 and line in tried):
            return found
        keep += len(line) + 1  # past the retry, from the same state
    fix, written = expert(keep), completion[keep:]
    if written == fix.continuation:
        return found  # the expert's own text
    if not ended and (fix.continuation.startswith(written)
                      or any(_try_line(arm, centre, target).startswith(written) for arm in untried())):
        return found  # right so far, cut by the budget
    return [*found, fix]
