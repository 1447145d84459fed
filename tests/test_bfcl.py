"""The bfcl environment on BFCL's real data, and the AST checker it shares with `toolcall`.

Hand-made right and wrong predictions are written against real BFCL entries of every
category (bfcl-eval 2026.3.23).
"""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgesmith.core.errors import ConfigError
from edgesmith.core.plugin_manager import PluginManager
from edgesmith.core.toolcall import ToolCall
from edgesmith.plugins.toolcall.ast_checker import check_calls, normalize_string
from edgesmith.plugins.environments.bfcl import (
    CATEGORIES,
    INSTALL_HINT,
    BfclDataError,
    BfclEnvironment,
    BfclNotInstalled,
    bfcl_data_dir,
    load_category,
    to_json_schema,
)
from edgesmith.plugins.toolcall.chat_template import render_chat

START, END = "<|tool_call_start|>", "<|tool_call_end|>"

COUNTS = {
    "simple": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200, "irrelevance": 240,
    "live_simple": 258, "live_multiple": 1053, "live_parallel": 16, "live_parallel_multiple": 24,
    "live_irrelevance": 884,
}


@pytest.fixture(scope="module")
def env():
    return BfclEnvironment(seed=0)


def task_of(env: BfclEnvironment, category: str, bfcl_id: str):
    row = next(r for r in env.rows(category) if r["id"] == bfcl_id)
    return env._task(category, row)


def score(env, category, bfcl_id, calls_text):
    task = task_of(env, category, bfcl_id)
    completion = f"{START}[{calls_text}]{END}" if calls_text is not None else "I cannot help with that."
    return env.verify(task, completion)


def test_every_category_loads_with_bfcls_counts(env):
    assert set(CATEGORIES) == set(COUNTS)
    for category, count in COUNTS.items():
        assert len(env.rows(category)) == count, category


def test_reference_solutions_pass_on_every_answerable_row(env):
    """The checker against all of BFCL: each row's solution (first allowed values) is correct."""
    unanswerable = []
    for category in CATEGORIES:
        for row in env.rows(category):
            if row["unanswerable"]:
                unanswerable.append(row["id"])
                continue
            task = env._task(category, row)
            verdict = env.verify(task, task.solution)
            assert verdict.correct and verdict.reward == 1.0, (row["id"], task.solution, verdict.details)
    # BFCL answers that break BFCL's own rules (parameter not in the schema, empty allowed list)
    assert sorted(unanswerable) == [
        "live_multiple_862-181-3", "live_multiple_964-207-0", "live_simple_106-63-0", "live_simple_112-68-0"
    ]


# (category, BFCL id, predicted calls in pythonic syntax or None for a text answer, correct?, reason fragment)
CASES = [
    # simple: calculate_triangle_area(base=[10], height=[5], unit=["units", ""])
    ("simple", "simple_python_0", 'calculate_triangle_area(base=10, height=5)', True, "omitted optional"),
    ("simple", "simple_python_0", 'calculate_triangle_area(base=10, height=5, unit="Units")', True, "normalized string"),
    ("simple", "simple_python_0", 'triangle_area(base=10, height=5)', False, "wrong function name"),
    ("simple", "simple_python_0", 'calculate_triangle_area(base=10)', False, "missing required parameter 'height'"),
    ("simple", "simple_python_0", 'calculate_triangle_area(base=12, height=5)', False, "12"),
    ("simple", "simple_python_0", 'calculate_triangle_area(base=True, height=5)', False, "wrong type"),
    ("simple", "simple_python_0", 'calculate_triangle_area(base=10, height=5, color="red")', False, "unexpected parameter"),
    ("simple", "simple_python_0", None, False, "wrong number of calls"),
    # simple: compound_interest(annual_rate=[5.0], ...) - a float parameter
    ("simple", "simple_python_136", 'compound_interest(principal=10000, annual_rate=5, compounding_freq="monthly", time_in_years=5)', True, "int for float"),
    ("simple", "simple_python_136", 'compound_interest(principal=10000, annual_rate=5.5, compounding_freq="monthly", time_in_years=5)', False, "5.5"),
    ("simple", "simple_python_136", 'compound_interest(principal=10000, annual_rate="5", compounding_freq="monthly", time_in_years=5)', False, "wrong type"),
    # multiple: triangle_properties.get among two functions
    ("multiple", "multiple_0", 'triangle_properties.get(side1=5, side2=4, side3=3)', True, ""),
    ("multiple", "multiple_0", 'triangle_properties.get(side1=5, side2=4, side3=3, get_area=True)', True, ""),
    ("multiple", "multiple_0", 'triangle_properties.get(side1=5, side2=4, side3=3, get_area=False)', False, "False"),
    ("multiple", "multiple_0", 'circle_properties.get(radius=5)', False, "wrong function name"),
    ("multiple", "multiple_0", 'triangle_properties.get(side1=5, side2=4, side3=3), circle_properties.get(radius=1)', False, "wrong number of calls"),
    # parallel: spotify.play twice
    ("parallel", "parallel_0", 'spotify.play(artist="Taylor Swift", duration=20), spotify.play(artist="Maroon 5", duration=15)', True, ""),
    ("parallel", "parallel_0", 'spotify.play(artist="Maroon 5", duration=15), spotify.play(artist="taylor swift", duration=20)', True, "order-free"),
    ("parallel", "parallel_0", 'spotify.play(artist="Taylor Swift", duration=20), spotify.play(artist="Taylor Swift", duration=20)', False, "no predicted call matches"),
    ("parallel", "parallel_0", 'spotify.play(artist="Taylor Swift", duration=20)', False, "wrong number of calls"),
    ("parallel", "parallel_0", 'spotify.play(artist="Taylor Swift", duration=15), spotify.play(artist="Maroon 5", duration=20)', False, "no predicted call matches"),
    # parallel_multiple: two different functions, list argument
    ("parallel_multiple", "parallel_multiple_0", 'math_toolkit.product_of_primes(count=5), math_toolkit.sum_of_multiples(lower_limit=1, upper_limit=1000, multiples=[3, 5])', True, "order-free"),
    ("parallel_multiple", "parallel_multiple_0", 'math_toolkit.sum_of_multiples(lower_limit=1, upper_limit=1000, multiples=[5, 3]), math_toolkit.product_of_primes(count=5)', False, "multiples"),
    ("parallel_multiple", "parallel_multiple_0", 'math_toolkit.sum_of_multiples(lower_limit=1, upper_limit=1000), math_toolkit.product_of_primes(count=5)', False, "missing required parameter 'multiples'"),
    # irrelevance: determine_body_mass_index is offered, the question is about a triangle
    ("irrelevance", "irrelevance_0", None, True, ""),
    ("irrelevance", "irrelevance_0", 'determine_body_mass_index(weight=10.0, height=5.0)', False, "expected no function call"),
    # live_simple: get_user_info(user_id=[7890], special=["black"])
    ("live_simple", "live_simple_0-0-0", 'get_user_info(user_id=7890, special="black")', True, ""),
    ("live_simple", "live_simple_0-0-0", 'get_user_info(user_id=7890)', False, "missing parameter 'special'"),
    ("live_simple", "live_simple_0-0-0", 'get_user_info(user_id=7890.5, special="black")', False, "wrong type"),
    # live_multiple: a nested dict parameter
    ("live_multiple", "live_multiple_0-0-0", 'ChaDri.change_drink(drink_id="latte", new_preferences={"size": "large", "milk_type": "coconut", "sweetness_level": "extra", "temperature": "hot", "special_instructions": "boiling hot"})', True, ""),
    ("live_multiple", "live_multiple_0-0-0", 'ChaDri.change_drink(drink_id="latte", new_preferences={"size": "small", "milk_type": "coconut", "sweetness_level": "extra", "temperature": "hot", "special_instructions": "boiling hot"})', False, "size"),
    ("live_multiple", "live_multiple_0-0-0", 'ChaDri.change_drink(drink_id="latte", new_preferences={"size": "large", "sweetness_level": "extra", "temperature": "hot", "special_instructions": "boiling hot"})', False, "missing key 'milk_type'"),
    ("live_multiple", "live_multiple_0-0-0", 'ChaFod(foodItem="latte")', False, "wrong function name"),
    # live_parallel: same function twice, optional enum
    ("live_parallel", "live_parallel_0-0-0", 'get_current_weather(location="Shanghai, China"), get_current_weather(location="Beijing, China", unit="fahrenheit")', True, "order-free"),
    ("live_parallel", "live_parallel_0-0-0", 'get_current_weather(location="Beijing, China", unit="celsius"), get_current_weather(location="Shanghai, China")', False, "celsius"),
    # live_parallel_multiple: "" as the only allowed value means "leave it out"
    ("live_parallel_multiple", "live_parallel_multiple_0-0-0", 'ChaDri.change_drink(drink_id="123", new_preferences={"size": "large", "temperature": "hot", "milk_type": "almond"}), ChaFod(foodItem="Caesar salad", removeIngredients="anchovies")', True, "order-free"),
    ("live_parallel_multiple", "live_parallel_multiple_0-0-0", 'ChaFod(foodItem="Caesar salad", removeIngredients="anchovies", newIngredients="croutons"), ChaDri.change_drink(drink_id="123", new_preferences={"size": "large", "temperature": "hot", "milk_type": "almond"})', False, "newIngredients"),
    # live_irrelevance
    ("live_irrelevance", "live_irrelevance_0-0-0", None, True, ""),
    ("live_irrelevance", "live_irrelevance_0-0-0", 'requests.get(url="https://maps.googleapis.com/maps/api/geocode/json")', False, "expected no function call"),
]


@pytest.mark.parametrize("category,bfcl_id,calls_text,correct,fragment", CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_hand_made_predictions(env, category, bfcl_id, calls_text, correct, fragment):
    verdict = score(env, category, bfcl_id, calls_text)
    assert verdict.correct is correct, verdict.details
    assert verdict.reward == (1.0 if correct else 0.0)
    if not correct:
        assert fragment in verdict.details["reason"], verdict.details["reason"]


def test_every_category_has_right_and_wrong_cases():
    right = {c[0] for c in CASES if c[3]}
    wrong = {c[0] for c in CASES if not c[3]}
    assert right == wrong == set(CATEGORIES)


def test_malformed_completions(env):
    simple = task_of(env, "simple", "simple_python_0")
    verdict = env.verify(simple, f"{START}[calculate_triangle_area(base=10, height=5{END}")
    assert not verdict.correct and verdict.details["parse_error"] and "malformed tool call" in verdict.details["reason"]
    # BFCL's rule: in irrelevance, output that does not decode as a call counts as no call
    irrelevant = task_of(env, "irrelevance", "irrelevance_0")
    verdict = env.verify(irrelevant, f"{START}[determine_body_mass_index(weight={END}")
    assert verdict.correct and verdict.details["parse_error"]


def test_checker_finds_a_pairing_a_greedy_scan_misses():
    expected = [{"f": {"x": [1, 2]}}, {"f": {"x": [1]}}]
    functions = [{"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}]
    ok, reason = check_calls([ToolCall("f", {"x": 1}), ToolCall("f", {"x": 2})], expected, functions)
    assert ok, reason
    ok, reason = check_calls([ToolCall("f", {"x": 2}), ToolCall("f", {"x": 2})], expected, functions)
    assert not ok and "no predicted call matches expected call #1" in reason
    # in the given order the second call (x=2) is not allowed for the second expected call
    ok, reason = check_calls([ToolCall("f", {"x": 1}), ToolCall("f", {"x": 2})], expected, functions, ordered=True)
    assert not ok and reason.startswith("call #1")
    assert check_calls([ToolCall("f", {"x": 2}), ToolCall("f", {"x": 1})], expected, functions, ordered=True)[0]


def test_checker_accepts_json_schema_tools_and_rejects_malformed_expectations():
    tool = {"type": "function", "function": {"name": "g", "parameters": {
        "type": "object", "properties": {"v": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["v"]}}}
    expected = [{"g": {"v": [2.0], "tags": [["A b"], ""]}}]
    assert check_calls([ToolCall("g", {"v": 2})], expected, [tool]) == (True, "")
    assert check_calls([ToolCall("g", {"v": 2, "tags": ["a-B"]})], expected, [tool]) == (True, "")
    assert not check_calls([ToolCall("g", {"v": 2, "tags": ["a", "b"]})], expected, [tool])[0]
    assert not check_calls([ToolCall("g", {"v": 2, "tags": [1]})], expected, [tool])[0]
    with pytest.raises(ValueError, match="one key"):
        check_calls([], [{"g": {}, "h": {}}], [tool])
    assert normalize_string("April 1, 2024") == normalize_string("april 1 2024") == "april12024"
    # BFCL normalizes before comparing, so "." equals the "" that marks an optional string
    s_tool = {"name": "h", "parameters": {"type": "dict", "properties": {"s": {"type": "string"}}, "required": []}}
    assert check_calls([ToolCall("h", {"s": "."})], [{"h": {"s": [""]}}], [s_tool]) == (True, "")
    assert not check_calls([ToolCall("h", {"s": "a"})], [{"h": {"s": [""]}}], [s_tool])[0]


def test_prompts_carry_the_tools_as_json_schema_in_our_template(env):
    task = task_of(env, "simple", "simple_python_136")
    assert task.messages[-1]["role"] == "user" and task.reference["category"] == "simple"
    params = task.tools[0]["function"]["parameters"]
    assert params["type"] == "object" and params["properties"]["annual_rate"]["type"] == "number"
    text = render_chat(task.messages, task.tools, add_generation_prompt=True)
    assert "<|tool_list_start|>" in text and '"name": "compound_interest"' in text
    assert text.endswith("<|im_start|>assistant\n")
    schema = to_json_schema(
        {"type": "dict", "properties": {"t": {"type": "tuple", "items": {"type": "float"}}, "a": {"type": "any", "optional": True}}},
        "test",
    )
    assert schema == {"type": "object", "properties": {"t": {"type": "array", "items": {"type": "number"}}, "a": {}}}


def test_splits_are_disjoint_deterministic_and_cover_categories(env):
    train, evals = env.tasks("train", 100_000), env.tasks("eval", 100_000)
    assert not {t.id for t in train} & {t.id for t in evals}
    assert len(train) + len(evals) == sum(COUNTS.values()) - 4
    first = env.tasks("eval", 10)
    assert {t.metadata["category"] for t in first} == set(CATEGORIES)
    assert [t.id for t in BfclEnvironment(seed=0).tasks("eval", 30)] == [t.id for t in env.tasks("eval", 30)]
    other = BfclEnvironment(seed=1).tasks("eval", 100_000)
    assert {t.id for t in other} == {t.id for t in evals} and [t.id for t in other] != [t.id for t in evals]


def test_options(env):
    small = BfclEnvironment({"categories": "simple,live_parallel", "format": "json", "eval_fraction": 1.0})
    tasks = small.tasks("eval", 1000)
    assert len(tasks) == COUNTS["simple"] + COUNTS["live_parallel"]
    assert tasks[0].solution.startswith("<tool_call>")
    assert all(small.verify(t, t.solution).correct for t in tasks[:20])
    with pytest.raises(ConfigError, match="env.bfcl.eval_fraction"):
        small.tasks("train", 5)  # eval_fraction=1.0 leaves the train split empty
    with pytest.raises(ConfigError, match="live_simple"):
        BfclEnvironment({"categories": ["simplest"]})
    with pytest.raises(ConfigError, match="pythonic or json"):
        BfclEnvironment({"format": "xml"})
    with pytest.raises(ConfigError, match="categories"):
        BfclEnvironment({"categorys": ["simple"]})
    prompt = BfclEnvironment({"categories": ["simple"], "system_prompt": "Call tools."}).tasks("eval", 1)[0]
    assert prompt.messages[0] == {"role": "system", "content": "Call tools."}


def _write_category(root, rows, answers):
    (root / "possible_answer").mkdir(parents=True, exist_ok=True)
    (root / "BFCL_v4_simple_python.json").write_text("\n".join(rows) + "\n")
    (root / "possible_answer" / "BFCL_v4_simple_python.json").write_text("\n".join(answers) + "\n")


GOOD_ROW = json.dumps({"id": "simple_python_0", "question": [[{"role": "user", "content": "hi"}]], "function": [
    {"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}]})
GOOD_ANSWER = json.dumps({"id": "simple_python_0", "ground_truth": [{"f": {"x": [1]}}]})


def test_malformed_rows_are_errors_naming_the_row(tmp_path):
    cases = {
        "no_function": ([GOOD_ROW, json.dumps({"id": "simple_python_1", "question": [[{"role": "user", "content": "q"}]]})],
                        [GOOD_ANSWER, json.dumps({"id": "simple_python_1", "ground_truth": [{"f": {"x": [1]}}]})],
                        r"BFCL_v4_simple_python.json, line 2 \(id simple_python_1\): 'function'"),
        "bad_json": ([GOOD_ROW, '{"id": "simple_python_1", "question": '], [GOOD_ANSWER], r"line 2: not valid JSON"),
        "bad_truth": ([GOOD_ROW], [json.dumps({"id": "simple_python_0", "ground_truth": [{"f": 1}]})],
                      r"possible_answer/BFCL_v4_simple_python.json, line 1 \(id simple_python_0\): ground_truth call #0"),
        "no_answer": ([GOOD_ROW], [json.dumps({"id": "other", "ground_truth": []})], r"id simple_python_0\): no possible answer"),
        "bad_type": ([GOOD_ROW.replace('"integer"', '"Integer"')], [GOOD_ANSWER], r"unknown parameter type 'Integer'"),
    }
    for name, (rows, answers, pattern) in cases.items():
        root = tmp_path / name
        _write_category(root, rows, answers)
        with pytest.raises(BfclDataError, match=pattern):
            BfclEnvironment({"categories": ["simple"], "data_dir": str(root)}).tasks("eval", 5)
    good = tmp_path / "good"
    _write_category(good, [GOOD_ROW], [GOOD_ANSWER])
    load_category.cache_clear()
    task = BfclEnvironment({"categories": ["simple"], "data_dir": str(good), "eval_fraction": 1.0}).tasks("eval", 5)[0]
    assert task.solution == f"{START}[f(x=1)]{END}"


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "bfcl_eval", None)  # makes `import bfcl_eval` fail for real
    with pytest.raises(BfclNotInstalled, match="pip install --no-deps bfcl-eval==2026.3.23"):
        bfcl_data_dir()
    assert INSTALL_HINT == "pip install --no-deps bfcl-eval==2026.3.23"


def test_bfcl_is_a_registered_environment():
    import edgesmith.plugins.environments as builtin

    # the built-in package's hook, through pluggy, without loading every other plugin
    manager = PluginManager(load_entry_points=False)
    manager.register(builtin, name="builtin-environments")
    assert manager.get("environment", "bfcl") is BfclEnvironment


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_checker_never_raises_on_arbitrary_predictions(env, data):
    """Random calls against real BFCL rows: a verdict and a reason, never an exception."""
    category = data.draw(st.sampled_from(["simple", "parallel_multiple", "live_multiple", "live_parallel_multiple"]))
    row = env.rows(category)[data.draw(st.integers(0, 15))]
    names = [f["name"] for f in row["functions"]] + ["unknown_fn"]
    params = sorted({p for f in row["functions"] for p in f["parameters"].get("properties", {})}) + ["zzz"]
    calls = data.draw(st.lists(st.builds(
        ToolCall, name=st.sampled_from(names), arguments=st.dictionaries(st.sampled_from(params), _json_values, max_size=4)
    ), max_size=3))
    ok, reason = check_calls(calls, row["expected"], row["functions"])
    assert isinstance(ok, bool) and isinstance(reason, str) and (ok or reason)
