"""The ``python`` environment: answers computed by running the model's code in the sandbox."""

from __future__ import annotations

import json

from edgesmith.core.toolcall import ToolCall
from edgesmith.plugins.environments.python_tool import RUN_PYTHON_TOOL, PythonEnvironment
from edgesmith.plugins.toolcall.pythonic import PythonicFormat


def test_tool_schema_is_offered_and_call_tool_runs_code():
    env = PythonEnvironment(seed=0)
    task = env.tasks("eval", 1)[0]
    assert task.tools == [RUN_PYTHON_TOOL]
    result = json.loads(env.call_tool(ToolCall("run_python", {"code": "print(6 * 7)"})))
    assert result["stdout"] == "42\n" and result["exit_code"] == 0
    assert "unknown tool" in json.loads(env.call_tool(ToolCall("rm_rf", {})))["error"]


def test_code_paths_and_final_answer_paths():
    env = PythonEnvironment(seed=0)
    task = env.tasks("eval", 1)[0]
    answer = task.reference["answer"]
    fmt = PythonicFormat()
    assert env.verify(task, f"```python\nprint({answer})\n```").correct
    assert not env.verify(task, fmt.render([ToolCall("run_python", {"code": f"print({answer + 1})"})])).correct
    crashing = env.verify(task, fmt.render([ToolCall("run_python", {"code": "1/0"})]))
    assert not crashing.correct and "ZeroDivisionError" in crashing.details["stderr"]
    assert env.verify(task, f"The tool said {answer}.\nFinal answer: {answer}").correct
    assert env.verify(task, "I don't know").reward == 0.0


def test_hostile_code_is_contained_and_scored_zero():
    env = PythonEnvironment({"timeout_s": 1.0}, seed=0)
    task = env.tasks("eval", 1)[0]
    verdict = env.verify(task, "```python\nwhile True:\n    pass\n```")
    assert not verdict.correct and verdict.details["killed"] in ("timeout", "cpu")
