"""The ``extraction`` environment: field-by-field scoring of extracted JSON."""

from __future__ import annotations

import json

from edgesmith.plugins.environments.extraction import ExtractionEnvironment, find_json_object


def test_reward_is_the_share_of_right_fields():
    env = ExtractionEnvironment(seed=0, difficulty=3)
    task = env.tasks("eval", 1)[0]
    values = dict(task.reference["values"])
    n = len(values)
    first = next(iter(values))
    wrong = dict(values, **{first: "WRONG" if not isinstance(values[first], str) else values[first] + "x"})
    verdict = env.verify(task, "Here you go: " + json.dumps(wrong) + " done")
    assert not verdict.correct and abs(verdict.reward - (n - 1) / n) < 1e-9
    assert verdict.details["fields"][first] is False


def test_comparison_tolerates_case_spacing_and_int_for_a_whole_float():
    env = ExtractionEnvironment({"records": ["order"]}, seed=1, difficulty=2)
    task = env.tasks("eval", 1)[0]
    values = dict(task.reference["values"])
    values["item"] = "  " + values["item"].upper() + " "
    assert env.verify(task, json.dumps(values)).correct
    values["unit_price"] = float(values["unit_price"]) + 0.5
    assert not env.verify(task, json.dumps(values)).correct
    from edgesmith.plugins.environments.extraction import field_matches

    assert field_matches(12.0, 12, {"type": "number"}) and not field_matches(12, 12.5, {"type": "integer"})
    assert not field_matches(1, True, {"type": "integer"}) and field_matches(["a", "B"], ["b", "a"], {"type": "array"})


def test_missing_json_and_omitted_fields():
    env = ExtractionEnvironment(seed=0, difficulty=4)
    tasks = env.tasks("eval", 10)
    assert env.verify(tasks[0], "no json here").reward == 0.0
    with_null = [t for t in tasks if None in t.reference["values"].values()]
    assert with_null, "difficulty 4 leaves an optional field out of the text"
    task = with_null[0]
    filled = {k: (v if v is not None else "invented") for k, v in task.reference["values"].items()}
    assert not env.verify(task, json.dumps(filled)).correct
    omitted = {k: v for k, v in task.reference["values"].items() if v is not None}
    assert env.verify(task, json.dumps(omitted)).correct  # missing = null


def test_distractor_sentence_from_difficulty_three():
    text = ExtractionEnvironment(seed=0, difficulty=3).tasks("eval", 1)[0].messages[-1]["content"]
    assert "Not to be confused" in text


def test_find_json_object_skips_broken_braces():
    assert find_json_object('x {broken {"a": 1} y')[0] == {"a": 1}
    assert find_json_object("[1, 2]")[0] is None
