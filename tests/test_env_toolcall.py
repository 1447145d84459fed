"""The ``toolcall`` environment: request kinds, AST verification of right and wrong calls, formats."""

from __future__ import annotations

import pytest

from edgesmith.core.errors import ConfigError, PluginError
from edgesmith.core.toolcall import ToolCall
from edgesmith.plugins.environments.toolcall import SPEC_BY_NAME, ToolcallEnvironment
from edgesmith.plugins.toolcall.pythonic import PythonicFormat


@pytest.fixture(scope="module")
def tasks():
    return ToolcallEnvironment(seed=0, difficulty=3).tasks("train", 80)


def calls_of(task):
    return [ToolCall(name, {k: v[0] for k, v in allowed.items() if v != [""]})
            for entry in task.reference["expected"] for name, allowed in entry.items()]


def test_requests_need_one_several_or_no_call(tasks):
    kinds = {t.metadata["kind"] for t in tasks}
    assert kinds == {"single", "parallel", "none"}
    assert all(t.metadata["n_calls"] >= 2 for t in tasks if t.metadata["kind"] == "parallel")
    types = {p.get("type") for t in tasks for tool in t.tools
             for p in tool["function"]["parameters"]["properties"].values()}
    assert {"integer", "number", "string", "boolean", "array"} <= types
    assert any("enum" in p for t in tasks for tool in t.tools for p in tool["function"]["parameters"]["properties"].values())


def test_parallel_calls_match_in_any_order(tasks):
    env = ToolcallEnvironment(seed=0, difficulty=3)
    task = next(t for t in tasks if t.metadata["kind"] == "parallel")
    reversed_calls = PythonicFormat().render(list(reversed(calls_of(task))))
    assert env.verify(task, reversed_calls).correct


def test_wrong_calls_are_rejected_with_a_reason(tasks):
    env = ToolcallEnvironment(seed=0, difficulty=3)
    fmt = PythonicFormat()
    task = next(t for t in tasks if t.metadata["kind"] == "single")
    call = calls_of(task)[0]
    spec = SPEC_BY_NAME[call.name]
    required = spec.required[0]
    wrong_value = dict(call.arguments, **{required: "definitely wrong" if not isinstance(call.arguments[required], str) else "Atlantis"})
    missing = {k: v for k, v in call.arguments.items() if k != required}
    for completion in (fmt.render([ToolCall(call.name, wrong_value)]),
                       fmt.render([ToolCall(call.name, missing)]),
                       fmt.render([ToolCall("no_such_function", call.arguments)]),
                       fmt.render([call, call]),
                       "<|tool_call_start|>[" + call.name + "(<|tool_call_end|>",
                       "Sure, I will do that."):
        verdict = env.verify(task, completion)
        assert not verdict.correct and verdict.reward == 0.0 and verdict.details["reason"], completion


def test_no_call_tasks_reject_any_call(tasks):
    env = ToolcallEnvironment(seed=0, difficulty=3)
    task = next(t for t in tasks if t.metadata["kind"] == "none")
    assert env.verify(task, "I can answer that myself.").correct
    some_tool = task.tools[0]["function"]
    call = ToolCall(some_tool["name"], {})
    assert not env.verify(task, PythonicFormat().render([call])).correct


def test_int_for_float_and_omitted_optionals_are_accepted():
    env = ToolcallEnvironment({"mix": {"single": 1.0}}, seed=0, difficulty=2)
    for task in env.tasks("train", 60):
        call = calls_of(task)[0]
        if call.name == "calculate_bmi" and float(call.arguments["weight_kg"]).is_integer():
            as_int = dict(call.arguments, weight_kg=int(call.arguments["weight_kg"]))
            assert env.verify(task, PythonicFormat().render([ToolCall(call.name, as_int)])).correct
            break
    else:
        pytest.fail("no calculate_bmi task with an integral weight in 60 tasks")


def test_json_format_option():
    env = ToolcallEnvironment({"format": "json", "mix": {"single": 1.0}}, seed=0)
    task = env.tasks("eval", 1)[0]
    assert "<tool_call>" in task.solution and env.verify(task, task.solution).correct
    # the pythonic spelling is not the json format
    assert not env.verify(task, PythonicFormat().render(calls_of(task))).correct


def test_bad_options_are_config_errors():
    with pytest.raises(PluginError, match=r"unknown toolcall_format 'xml' \(config key env.toolcall.format\); "
                                          "registered toolcall_formats: .*pythonic"):
        ToolcallEnvironment({"format": "xml"})
    with pytest.raises(ConfigError, match="env.toolcall.mix"):
        ToolcallEnvironment({"mix": {"single": -1}})
