"""The ``python`` environment: problems solved by running model-written Python in the sandbox.

Each task offers one tool, ``run_python(code)``, and asks for a number that is tedious by
hand and easy in code (sums of primes, divisibility counts, Fibonacci numbers modulo m,
medians, digit sums, permutation counts). A completion is right when

* it ends with ``Final answer: N`` and N is the answer (the multi-turn case: the model
  called the tool, read the result, then answered), or
* it calls ``run_python`` (in the configured tool-call format) or writes a ```python block,
  and the last line that code prints in the sandbox is the answer.

The code runs in :func:`edgesmith.plugins.sandbox.run_python`: a bubblewrap sandbox with
its own user, PID, mount and network namespaces, a read-only system, a small private
tmpfs as its only writable place, and CPU, memory, process and output limits. Where that
confinement is unavailable (no bwrap, no user namespaces) running code raises
:class:`edgesmith.plugins.sandbox.SandboxUnavailable` naming what is missing; it never runs
unconfined. :meth:`PythonEnvironment.call_tool` executes a ``run_python`` call for agent
loops and RL (the tool result is the sandbox's output as JSON).

Options: ``format`` (tool-call format, default ``pythonic``), ``timeout_s`` (per run, 5).
Difficulty 1-5 scales the numbers (e.g. primes below ``200 * 4**d / 4``).
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from edgesmith.core.environment import Task, Verification
from edgesmith.core.toolcall import ToolCall

from .synthetic import FINAL_ANSWER, GeneratedEnvironment, final_answer

RUN_PYTHON_TOOL = {"type": "function", "function": {
    "name": "run_python",
    "description": "Runs Python 3 code in a sandbox (no network, no files outside a scratch "
                   "directory, a few seconds of CPU) and returns what it printed.",
    "parameters": {"type": "object", "properties": {"code": {"type": "string", "description": "The program"}},
                   "required": ["code"]}}}
SYSTEM = ("Use the run_python tool to compute the answer: write a program that prints it. "
          f"When you know the result, answer with a last line '{FINAL_ANSWER} <number>'.")
WORDS = ["banana", "mississippi", "letter", "balloon", "committee", "bookkeeper", "assessment", "parallel"]


def _primes(rng, d):
    n = rng.randint(50, 200 * 4 ** d // 4)
    answer = sum(p for p in range(2, n) if all(p % q for q in range(2, math.isqrt(p) + 1)))
    code = (f"n = {n}\nprint(sum(p for p in range(2, n) "
            "if all(p % q for q in range(2, int(p ** 0.5) + 1))))")
    return f"What is the sum of all prime numbers below {n}?", code, answer


def _divisible(rng, d):
    a, b = rng.randint(1, 100), rng.randint(500, 1000 * d)
    k, m = rng.sample([3, 4, 6, 7, 9, 11, 13], 2)
    answer = sum(1 for x in range(a, b + 1) if x % k == 0 or x % m == 0)
    code = f"print(sum(1 for x in range({a}, {b + 1}) if x % {k} == 0 or x % {m} == 0))"
    return f"How many integers from {a} to {b} (inclusive) are divisible by {k} or by {m}?", code, answer


def _fibonacci(rng, d):
    n, m = rng.randint(20, 60 * d), rng.choice([97, 1000, 1009, 10007])
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    code = f"a, b = 0, 1\nfor _ in range({n}):\n    a, b = b, a + b\nprint(a % {m})"
    return f"What is the {n}-th Fibonacci number (F0 = 0, F1 = 1) modulo {m}?", code, a % m


def _median(rng, d):
    values = [rng.randint(-50, 500) for _ in range(2 * (3 + 2 * d) + 1)]
    code = f"values = {values}\nprint(sorted(values)[len(values) // 2])"
    return f"What is the median of these numbers: {', '.join(map(str, values))}?", code, int(statistics.median(values))


def _digit_sum(rng, d):
    base, exp = rng.randint(2, 9), rng.randint(10, 30 * d)
    code = f"print(sum(int(c) for c in str({base} ** {exp})))"
    return f"What is the sum of the decimal digits of {base} to the power {exp}?", code, sum(map(int, str(base ** exp)))


def _permutations(rng, d):
    word = rng.choice(WORDS)
    counts = Counter(word)
    answer = math.factorial(len(word))
    for c in counts.values():
        answer //= math.factorial(c)
    code = (f"from math import factorial\nfrom collections import Counter\nw = {word!r}\nr = factorial(len(w))\n"
            "for c in Counter(w).values():\n    r //= factorial(c)\nprint(r)")
    return f"How many distinct arrangements of the letters of the word '{word}' are there?", code, answer


PROBLEMS = [_primes, _divisible, _fibonacci, _median, _digit_sum, _permutations]


@dataclass
class PythonOptions:
    """Options of the ``python`` environment."""

    format: str = "pythonic"
    timeout_s: float = 5.0


def _fenced_code(text: str) -> str | None:
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, flags=re.DOTALL)
    return blocks[-1] if blocks else None


def _as_int(text: str | None) -> int | None:
    if text is None:
        return None
    found = re.findall(r"-?\d+(?:\.0+)?", text.replace(",", ""))
    return int(float(found[-1])) if found else None


class PythonEnvironment(GeneratedEnvironment):
    """Numeric problems solved with the sandboxed ``run_python`` tool."""

    name = "python"
    options_class = PythonOptions
    max_difficulty = 5

    def __init__(self, options: Any = None, *, seed: int = 0, difficulty: int = 1):
        super().__init__(options, seed=seed, difficulty=difficulty)
        from edgesmith.core.plugin_manager import get_plugin_manager

        self.format = get_plugin_manager().build("toolcall_format", self.options.format, key="env.python.format")

    def generate(self, rng: random.Random, index: int) -> Task:
        problem = PROBLEMS[index % len(PROBLEMS)]
        question, code, answer = problem(rng, self.difficulty)
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
        solution = self.format.render([ToolCall("run_python", {"code": code})])
        return Task(id="", messages=messages, reference={"answer": answer, "problem": problem.__name__[1:]},
                    tools=[RUN_PYTHON_TOOL], solution=solution, metadata={"problem": problem.__name__[1:]})

    def rollout_tools(self) -> list[Callable[..., str]]:
        """``run_python(code)``: the sandbox as a tool the policy calls during RL rollouts."""

        def run_python(code: str) -> str:
            """Runs Python 3 code in a sandbox (no network, a few seconds of CPU) and returns what it printed.

            Args:
                code: The program to run; it should print the result.
            """
            return self.call_tool(ToolCall("run_python", {"code": code}))

        return [run_python]

    def call_tool(self, call: ToolCall) -> str:
        """Executes a ``run_python`` call; the tool result (JSON) an agent loop feeds back."""
        from edgesmith.plugins.sandbox import run_python

        if call.name != "run_python" or not isinstance(call.arguments.get("code"), str):
            return json.dumps({"error": f"unknown tool call {call.name}; accepted: run_python(code: str)"})
        result = run_python(call.arguments["code"], timeout_s=self.options.timeout_s)
        return json.dumps({"stdout": result.stdout[-2000:], "stderr": result.stderr[-2000:],
                           "exit_code": result.exit_code, "killed": result.killed_reason})

    def verify(self, task: Task, completion: str) -> Verification:
        expected = task.reference["answer"]
        details: dict[str, Any] = {"expected": expected}
        answer = final_answer(completion)
        if answer is not None:
            got = _as_int(answer)
            details.update(source="final answer", got=got)
        else:
            code = None
            parsed = self.format.parse(completion)
            for call in parsed.calls:
                if call.name == "run_python" and isinstance(call.arguments.get("code"), str):
                    code = call.arguments["code"]
            code = code if code is not None else _fenced_code(completion)
            if code is None:
                details["reason"] = f"no run_python call, no ```python block and no '{FINAL_ANSWER}' line"
                return Verification(0.0, False, details)
            from edgesmith.plugins.sandbox import run_python

            result = run_python(code, timeout_s=self.options.timeout_s)
            lines = [line for line in result.stdout.splitlines() if line.strip()]
            got = _as_int(lines[-1]) if lines else None
            details.update(source="sandbox", got=got, exit_code=result.exit_code,
                           killed=result.killed_reason, stderr=result.stderr[-500:])
        ok = got == expected
        details["reason"] = "" if ok else f"got {got}, expected {expected}"
        return Verification(1.0 if ok else 0.0, ok, details)
