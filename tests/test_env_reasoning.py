"""The ``reasoning`` environment: star-graph paths and scratchpad arithmetic with a final answer."""

from __future__ import annotations

from edgesmith.plugins.environments.reasoning import ReasoningEnvironment


def test_star_graph_answer_is_the_path_to_the_target():
    env = ReasoningEnvironment(seed=0, difficulty=2, kind="star")
    task = env.tasks("eval", 1)[0]
    path = task.reference["answer"]
    assert len(path) == 1 + 3  # centre + arm of 1 + d nodes
    prompt = task.messages[-1]["content"]
    for a, b in zip(path, path[1:]):
        assert f"{a}-{b}" in prompt
    assert env.verify(task, "thinking...\nFinal answer: " + ", ".join(map(str, path))).correct
    assert not env.verify(task, "Final answer: " + ",".join(map(str, reversed(path)))).correct


def test_no_final_answer_scores_zero_and_the_last_marker_counts():
    env = ReasoningEnvironment(seed=0, kind="arithmetic")
    task = env.tasks("eval", 1)[0]
    answer = task.reference["answer"]
    verdict = env.verify(task, f"The result is {answer}.")
    assert verdict.reward == 0.0 and "no final answer" in verdict.details["reason"]
    assert env.verify(task, f"Final answer: {answer + 1}\nOops.\nFinal answer: {answer}<|im_end|>").correct
    assert not env.verify(task, f"Final answer: {answer}\nFinal answer: {answer + 1}").correct


def test_mixed_kind_alternates_and_arithmetic_scratchpad_is_consistent():
    tasks = ReasoningEnvironment(seed=0, difficulty=3).tasks("train", 10)
    assert {t.metadata["kind"] for t in tasks} == {"star", "arithmetic"}
    for t in tasks:
        if t.metadata["kind"] == "arithmetic":
            lines = t.solution.splitlines()[1:-1]
            assert len(lines) == 2 + 2 * 3
            for line in lines:
                lhs, rhs = line.split(" = ")
                assert eval(lhs) == int(rhs)  # noqa: S307 (our own generated arithmetic)
