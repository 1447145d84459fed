"""RL rewards: verifier, TRL's repetition penalty, tool-call format (TRL's call signature)."""

from __future__ import annotations

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import PluginRef
from edgesmith.core.plugin_manager import get_plugin_manager
from edgesmith.core.reward import RewardRuntime
from edgesmith.plugins.rewards.repetition import RepetitionOptions, RepetitionReward
from edgesmith.plugins.rewards.toolcall_format import ToolCallFormatReward
from edgesmith.plugins.rewards.verifier import VerifierReward
from stages_support import LettersEnvironment

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather.",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


def test_rewards_are_registered():
    assert {"verifier", "repetition", "toolcall_format", "progress"} <= set(get_plugin_manager().names("reward"))


def test_verifier_reward_scores_by_task_key_and_watches_the_signal():
    env = LettersEnvironment()
    tasks = env.tasks("train", 2)
    seen = []
    runtime = RewardRuntime(environments={"letters": env}, tasks={f"letters:{t.id}": ("letters", t) for t in tasks},
                            on_score=lambda key, env_name, r: seen.append((key, env_name, r)))
    reward = VerifierReward(runtime=runtime)
    keys = [f"letters:{tasks[0].id}", f"letters:{tasks[1].id}", "unknown:key"]
    out = reward(prompts=["p"] * 3, completions=["aaaa", "abab<|im_end|>", "aaaa"], task_key=keys)
    assert out == [1.0, 0.5, None]
    assert [s[2] for s in seen] == [1.0, 0.5] and seen[0][1] == "letters"
    # conversational completions (lists of messages) work too
    assert reward(prompts=["p"], completions=[[{"role": "assistant", "content": "bbbb"}]], task_key=keys[:1]) == [0.0]


def test_verifier_reward_decodes_ids_with_special_tokens_kept():
    class Tok:  # the decode TRL skips: keep the markers
        def batch_decode(self, ids, skip_special_tokens):
            assert skip_special_tokens is False
            return ["aa<|im_end|>" for _ in ids]

    env = LettersEnvironment()
    task = env.tasks("train", 1)[0]
    reward = VerifierReward(runtime=RewardRuntime(environments={"letters": env}, tasks={"k": ("letters", task)},
                                                  tokenizer=Tok()))
    assert reward(prompts=["p"], completions=["zz"], completion_ids=[[1, 2]], task_key=["k"]) == [1.0]


def test_repetition_reward_is_trls_ngram_penalty():
    from trl.rewards import get_repetition_penalty_reward

    ours = RepetitionReward({"ngram_size": 2, "max_penalty": -1.0})
    ids = [[1, 2, 3, 4], [5, 5, 5, 5, 5], [7, 8, 7, 8, 7, 8]]
    expected = get_repetition_penalty_reward(ngram_size=2, max_penalty=-1.0)(ids)
    assert ours(prompts=[""] * 3, completions=[""] * 3, completion_ids=ids) == expected == pytest.approx(
        [0.0, -0.75, -0.6])
    # without token ids (outside GRPO) words stand in for tokens
    text = ours(prompts=[""] * 2, completions=["the cat sat down", "go go go go go"])
    assert text[0] == 0.0 and text[1] == pytest.approx(-0.75)
    with pytest.raises(ConfigError, match=r"reward repetition.max_penalty=0.5: accepted a number <= 0"):
        RepetitionReward({"max_penalty": 0.5})


def test_reward_options_are_checked_once_with_the_full_key():
    manager = get_plugin_manager()
    # the defaults live in the reward's options dataclass only
    assert manager.build_ref("reward", PluginRef("repetition"), "rl.rewards[1]").options == RepetitionOptions(3, -1.0)
    with pytest.raises(ConfigError, match=r"rl.rewards\[1\].options.ngram_sise=3: accepted options of "
                                          r"rl.rewards\[1\].options: max_penalty, ngram_size"):
        manager.check_refs("reward", [PluginRef("verifier"), PluginRef("repetition", 1.0, {"ngram_sise": 3})],
                           "rl.rewards")
    with pytest.raises(ConfigError, match=r"rl.rewards\[0\].options.max_penalty=0.5: accepted a number <= 0"):
        manager.build_ref("reward", {"name": "repetition", "options": {"max_penalty": 0.5}}, "rl.rewards[0]")
    with pytest.raises(ConfigError, match=r"rl.rewards\[0\].options.ngram_size='three'"):
        manager.build_ref("reward", {"name": "repetition", "options": {"ngram_size": "three"}}, "rl.rewards[0]")
    with pytest.raises(ConfigError, match=r"rl.rewards\[0\].options.format=.*accepted options of "
                                          r"rl.rewards\[0\].options: none"):
        manager.build_ref("reward", {"name": "verifier", "options": {"format": "json"}}, "rl.rewards[0]")
    with pytest.raises(ConfigError, match=r"rl.rewards\[0\].wieght=2.*accepted options of rl.rewards\[0\]: "
                                          r"name, options, weight"):
        manager.check_refs("reward", [{"name": "verifier", "wieght": 2}], "rl.rewards")


def test_longer_ngrams_spare_a_search_traces_phrasing_but_not_a_loop(tmp_path_factory):
    # Why the main job's RL uses 12-grams (conf/run.yaml): with 3-grams a right three-arm trace
    # pays more than quitting after one dead end; with 12-grams it pays far less, a loop as much.
    from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
    from stages_support import base_model

    _, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    right = ("Start at 23.\nTry 23>12>28: dead end, back to 23.\nTry 23>78>86: dead end, back to 23.\n"
             "Try 23>34>51: reached 51.\nFinal answer: 23,34,51")
    loop = "Start at 15.\n" + "Try 15>66>18: dead end, back to 15.\n" * 7
    quitting = "Start at 15.\nTry 15>66>18: dead end, back to 15.\nFinal answer: 15,66,18"
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (right, loop, quitting)]
    short = RepetitionReward({"ngram_size": 3})(prompts=[""] * 3, completions=[""] * 3, completion_ids=ids)
    long = RepetitionReward({"ngram_size": 12})(prompts=[""] * 3, completions=[""] * 3, completion_ids=ids)
    assert short[0] < short[2] and short[1] < -0.7
    assert long[0] > 2 * short[0] and long[0] > -0.2 and long[1] < -0.7, (short, long)


def test_toolcall_format_reward():
    reward = ToolCallFormatReward()
    completions = ['<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|>',
                   '<|tool_call_start|>[get_weather(city="Paris"<|tool_call_end|>',
                   '<|tool_call_start|>[launch_rocket(now=True)]<|tool_call_end|>',
                   "It is sunny.",
                   "It is sunny."]
    tools = [[WEATHER]] * 4 + [None]
    assert reward(prompts=[""] * 5, completions=completions, tools=tools) == [1.0, -1.0, -1.0, 0.0, None]
    import json

    assert reward(prompts=[""], completions=completions[:1], tools=[json.dumps([WEATHER])]) == [1.0]


def test_progress_reward_is_the_share_written_before_the_first_mistake():
    from edgesmith.core.environment import Task
    from edgesmith.plugins.environments.reasoning import ReasoningEnvironment
    from edgesmith.plugins.rewards.progress import ProgressReward

    prompt = "Edges: 89>73*, 21>86, 30>76, 98>89, 98>21, 98>28, 98>30, 28>85. Find the path from 98 to 73*."
    task = Task(id="t", messages=[{"role": "user", "content": prompt}], reference={"kind": "star",
                "answer": [98, 89, 73]}, metadata={"kind": "search"})
    letters = LettersEnvironment().tasks("train", 1)[0]
    runtime = RewardRuntime(environments={"reasoning": ReasoningEnvironment(), "letters": LettersEnvironment()},
                            tasks={"r": ("reasoning", task), "l": ("letters", letters)})
    start, dead = "Start at 98.\n", "Try 98>21>86: dead end, back to 98.\n"
    right = start + dead + "Try 98>89>73*: reached 73.\nFinal answer: 98,89,73"
    quit_after_one = start + "Final answer: 98,21,86"
    quit_after_two = start + dead + "Final answer: 98,21,86"
    loop = start + dead * 4
    out = ProgressReward(runtime=runtime)(prompts=["p"] * 6, completions=[right, quit_after_one, quit_after_two,
                                                                          loop, "aaaa", "x"],
                                          task_key=["r", "r", "r", "r", "l", "unknown"])
    assert out[0] == 1.0
    assert 0 < out[1] < out[2] < 1 and out[3] == out[2]  # further right before the mistake pays more
    assert out[4] is None and out[5] is None  # no expert for the task, or no task
