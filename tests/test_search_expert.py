"""The search task's expert (plugins/environments/search_expert.py): the first mistake of a
trace and the right way on from the state the trace reached."""

from __future__ import annotations

import pytest

from edgesmith.core.environment import Task
from edgesmith.plugins.environments.reasoning import ReasoningEnvironment
from edgesmith.plugins.environments.search_expert import search_arms

# centre 98; arms listed 89 (target arm), 21, 28, 30
PROMPT = "Edges: 89>73*, 21>86, 30>76, 98>89, 98>21, 98>28, 98>30, 28>85. Find the path from 98 to 73*."
START = "Start at 98.\n"
DEAD_21 = "Try 98>21>86: dead end, back to 98.\n"
REACHED = "Try 98>89>73*: reached 73.\n"
ANSWER = "Final answer: 98,89,73"


def _task(prompt=PROMPT, kind="search"):
    return Task(id="t", messages=[{"role": "user", "content": prompt}], reference={}, metadata={"kind": kind})


@pytest.fixture(scope="module")
def env():
    return ReasoningEnvironment()


def test_arms_are_read_in_the_order_the_centre_edges_are_listed():
    centre, target, arms = search_arms(PROMPT)
    assert (centre, target) == (98, 73)
    assert arms == [[98, 89, 73], [98, 21, 86], [98, 28, 85], [98, 30, 76]]


def test_a_retry_is_corrected_with_the_first_untried_arm_from_the_state_reached(env):
    loop = START + DEAD_21 + DEAD_21 + DEAD_21 + "Try 98>"
    fix = env.correct(_task(), loop)
    # the first try (out of the listed order, but a right try) is kept; the retry is the mistake
    assert loop[:fix.keep] == START + DEAD_21
    assert fix.continuation == REACHED + ANSWER


def test_untried_arms_before_the_target_come_first_in_listed_order(env):
    prompt = "Edges: 98>21, 21>86, 98>28, 98>89, 89>73*, 28>85, 98>30, 30>76. Find the path from 98 to 73*."
    fix = env.correct(_task(prompt), START + "Final answer: 98,21,86")
    assert fix.keep == len(START)
    assert fix.continuation == DEAD_21 + "Try 98>28>85: dead end, back to 98.\n" + REACHED + ANSWER


@pytest.mark.parametrize("mistake", [
    "Try 98>21>86*: reached 86.\n",          # the target claimed on a dead end
    "Try 98>21>85: dead end, back to 98.\n",  # an edge that does not exist
    "Final answer: 98,21,86",                # an answer before the target
])
def test_every_kind_of_first_mistake_is_found(env, mistake):
    fix = env.correct(_task(), START + DEAD_21 + mistake + REACHED + ANSWER)
    assert fix.keep == len(START + DEAD_21) and fix.continuation == REACHED + ANSWER


def test_a_wrong_start_and_a_wrong_answer_after_the_target_are_mistakes_too(env):
    fix = env.correct(_task(), "Start at 89.\n" + REACHED + ANSWER)
    assert fix.keep == 0 and fix.continuation.startswith(START + REACHED)
    fix = env.correct(_task(), START + REACHED + "Final answer: 98,89")
    assert fix.keep == len(START + REACHED) and fix.continuation == ANSWER


def test_right_traces_and_their_unfinished_starts_have_no_mistake(env):
    for text in (START + REACHED + ANSWER, START + DEAD_21 + REACHED + ANSWER):
        assert env.correct(_task(), text) is None, text
    for cut_by_the_budget in (START + "Try 98>2", "", START + REACHED + "Final answer: 98,8"):
        assert env.correct(_task(), cut_by_the_budget, ended=False) is None
    # the same text ending by itself stopped short (before it named an arm: the listed order goes on)
    assert env.correct(_task(), START + "Try 98>2").continuation == REACHED + ANSWER
    # every generated task's own solution is right by the expert, in either arm order
    for arm_order in ("listed", "random"):
        env_ = ReasoningEnvironment({"arm_order": arm_order}, difficulty=2)
        for task in env_.tasks("train", 30):
            assert env_.correct(task, task.solution) is None


def test_only_the_search_kind_has_an_expert(env):
    star = ReasoningEnvironment({"kind": "star"})
    task = star.tasks("train", 1)[0]
    assert star.correct(task, "Final answer: 1") is None


def test_a_right_arm_choice_is_kept_and_what_follows_it_corrected(env):
    # arm 28 is untried, so choosing it was right; claiming its end node is the mistake
    fix = env.correct(_task(), START + "Try 98>28>85*: reached 85.\n" + ANSWER)
    assert fix.keep == len(START)
    assert fix.continuation == "Try 98>28>85: dead end, back to 98.\n" + REACHED + ANSWER


def test_environments_without_an_expert_correct_nothing():
    from stages_support import LettersEnvironment

    letters = LettersEnvironment()
    task = letters.tasks("train", 1)[0]
    assert not LettersEnvironment.has_expert() and ReasoningEnvironment.has_expert()
    assert letters.correct(task, "zzzz") is None and letters.corrections(task, "zzzz") == []
