"""The ``reasoning`` environment: star-graph paths and scratchpad arithmetic with a final answer."""

from __future__ import annotations

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.environments.reasoning import ReasoningEnvironment


def test_star_graph_answer_is_the_path_to_the_target():
    env = ReasoningEnvironment({"kind": "star"}, seed=0, difficulty=2)
    task = env.tasks("eval", 1)[0]
    path = task.reference["answer"]
    assert len(path) == 1 + 3  # centre + arm of 1 + d nodes
    prompt = task.messages[-1]["content"]
    for a, b in zip(path, path[1:]):
        assert f"{a}-{b}" in prompt
    assert env.verify(task, "thinking...\nFinal answer: " + ", ".join(map(str, path))).correct
    assert not env.verify(task, "Final answer: " + ",".join(map(str, reversed(path)))).correct


def test_no_final_answer_scores_zero_and_the_last_marker_counts():
    env = ReasoningEnvironment({"kind": "arithmetic"}, seed=0)
    task = env.tasks("eval", 1)[0]
    answer = task.reference["answer"]
    verdict = env.verify(task, f"The result is {answer}.")
    assert verdict.reward == 0.0 and "no final answer" in verdict.details["reason"]
    assert env.verify(task, f"Final answer: {answer + 1}\nOops.\nFinal answer: {answer}<|im_end|>").correct
    assert not env.verify(task, f"Final answer: {answer}\nFinal answer: {answer + 1}").correct


def test_mixed_kind_alternates_and_arithmetic_scratchpad_is_consistent():
    tasks = ReasoningEnvironment({"kind": "mixed"}, seed=0, difficulty=3).tasks("train", 10)
    assert {t.metadata["kind"] for t in tasks} == {"star", "arithmetic"}
    for t in tasks:
        if t.metadata["kind"] == "arithmetic":
            lines = t.solution.splitlines()[1:-1]
            assert len(lines) == 2 + 2 * 3
            for line in lines:
                lhs, rhs = line.split(" = ")
                assert eval(lhs) == int(rhs)  # noqa: S307 (our own generated arithmetic)


def test_search_traces_backtrack_from_dead_ends_until_the_target_arm():
    env = ReasoningEnvironment(seed=0, difficulty=1)
    tasks = env.tasks("train", 60)
    assert {t.metadata["kind"] for t in tasks} == {"search"}
    tried = []
    for task in tasks:
        lines = task.solution.splitlines()
        centre, target = task.reference["answer"][0], task.reference["answer"][-1]
        assert lines[0] == f"Start at {centre}."
        attempts = lines[1:-1]
        assert all(line.endswith(f"dead end, back to {centre}.") for line in attempts[:-1])
        assert attempts[-1].endswith(f"{target}*: reached {target}.")
        # the star marks the target in the prompt, so a walk that copies it knows it arrived
        assert f">{target}*" in task.messages[-1]["content"] and task.messages[-1]["content"].count("*") == 2
        firsts = [line.split(":")[0] for line in attempts]  # "Try c>a>b"
        assert len(set(firsts)) == len(firsts)  # an arm is never tried twice in a reference trace
        tried.append(len(attempts))
        assert env.verify(task, task.solution).correct
    # arms are tried in random order: sometimes the first is right, sometimes every dead end comes first
    assert min(tried) == 1 and max(tried) == 4


def test_listed_search_tries_the_centre_edges_in_the_order_the_prompt_lists_them():
    tasks = ReasoningEnvironment(seed=1, difficulty=1).tasks("train", 40)
    for task in tasks:
        centre = task.reference["answer"][0]
        edges = task.messages[-1]["content"].split("Edges: ")[1].split(". Find")[0].split(", ")
        from_centre = [i for i, edge in enumerate(edges) if edge.startswith(f"{centre}>")]
        assert from_centre == list(range(from_centre[0], from_centre[0] + 4))  # they stand together
        listed = [edges[i].rstrip("*").split(">")[1] for i in from_centre]
        tried = [line.split(">")[1] for line in task.solution.splitlines()[1:-1]]
        assert tried == listed[:len(tried)]


def test_random_search_order_is_unrelated_to_the_listing_and_bad_orders_are_refused():
    tasks = ReasoningEnvironment({"arm_order": "random"}, seed=1, difficulty=1).tasks("train", 40)
    unrelated = 0
    for task in tasks:
        centre = task.reference["answer"][0]
        edges = task.messages[-1]["content"].split("Edges: ")[1].split(". Find")[0].split(", ")
        listed = [e.rstrip("*").split(">")[1] for e in edges if e.startswith(f"{centre}>")]
        tried = [line.split(">")[1] for line in task.solution.splitlines()[1:-1]]
        unrelated += tried != listed[:len(tried)]
    assert unrelated > 10
    with pytest.raises(ConfigError, match="env.reasoning.arm_order"):
        ReasoningEnvironment({"arm_order": "sorted"})
