"""Every built-in generated environment: registered, deterministic, disjoint splits, solutions verify."""

from __future__ import annotations

import pytest

from edgesmith.core.environment import Environment
from edgesmith.core.errors import ConfigError
from edgesmith.core.plugin_manager import get_plugin_manager

NAMES = ["toolcall", "extraction", "reasoning", "python"]


def make(name: str, seed: int = 0, difficulty: int = 1, **options) -> Environment:
    """Built through the plugin manager, as a stage builds it: options checked by the one contract."""
    return get_plugin_manager().build("environment", name, options, key=f"env.{name}", seed=seed,
                                      difficulty=difficulty)


@pytest.mark.parametrize("name", NAMES)
def test_registered_and_deterministic_for_a_seed(name):
    first = make(name, seed=3, difficulty=2).tasks("train", 12)
    again = make(name, seed=3, difficulty=2).tasks("train", 12)
    assert [(t.id, t.messages, t.tools, t.solution) for t in first] == \
           [(t.id, t.messages, t.tools, t.solution) for t in again]
    other_seed = make(name, seed=4, difficulty=2).tasks("train", 12)
    assert [t.id for t in other_seed] != [t.id for t in first]
    # a longer request extends the shorter one
    assert [t.id for t in make(name, seed=3, difficulty=2).tasks("train", 15)[:12]] == [t.id for t in first]


@pytest.mark.parametrize("name", NAMES)
def test_train_and_eval_never_share_a_prompt_across_seeds(name):
    train = {t.id for seed in (0, 1) for t in make(name, seed=seed).tasks("train", 40)}
    evals = {t.id for seed in (0, 1) for t in make(name, seed=seed).tasks("eval", 15)}
    assert len(evals) >= 15 and train.isdisjoint(evals)
    assert all(t.metadata["split"] == "eval" for t in make(name).tasks("eval", 3))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("difficulty", [1, 5])
def test_solutions_pass_and_nonsense_fails(name, difficulty):
    env = make(name, seed=0, difficulty=difficulty)
    count = 6 if name == "python" else 10
    for task in env.tasks("eval", count):
        assert task.solution, task.id
        good = env.verify(task, task.solution + "<|im_end|>")
        assert good.correct and good.reward == 1.0, (task, good)
        bad = env.verify(task, "I am not sure. Let me think. Let me think.")
        if task.metadata.get("kind") == "none":  # no call expected: plain text is the right answer
            assert bad.correct
        else:
            assert bad.reward < 1.0 and not bad.correct, (task, bad)


@pytest.mark.parametrize("name", NAMES)
def test_bad_difficulty_and_unknown_option_are_config_errors(name):
    with pytest.raises(ConfigError, match="difficulty"):
        make(name, difficulty=9)
    with pytest.raises(ConfigError, match=f"env.{name}.colour"):
        make(name, colour="red")


def test_difficulty_makes_tasks_larger():
    easy = make("reasoning", difficulty=1, kind="star").tasks("eval", 1)[0]
    hard = make("reasoning", difficulty=5, kind="star").tasks("eval", 1)[0]
    assert len(hard.solution) > len(easy.solution)
    assert len(make("toolcall", difficulty=5).tasks("eval", 1)[0].tools) > \
           len(make("toolcall", difficulty=1).tasks("eval", 1)[0].tools)


def test_prompts_render_with_the_chat_template():
    from edgesmith.plugins.toolcall.chat_template import render_chat

    for name in NAMES:
        task = make(name).tasks("eval", 1)[0]
        text = render_chat(task.messages, tools=task.tools, add_generation_prompt=True)
        assert text.endswith("<|im_start|>assistant\n")
        assert (task.tools is None) or "<|tool_list_start|>" in text
