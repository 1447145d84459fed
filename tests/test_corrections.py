"""Correction pairs (``dpo.corrections``): the policy's text up to its first mistake, then the
expert's next token against the policy's."""

from __future__ import annotations

import pytest

from edgesmith.core.environment import Task
from edgesmith.core.errors import ConfigError
from edgesmith.plugins.environments.reasoning import ReasoningEnvironment
from edgesmith.plugins.stages.corrections import correction_pairs
from edgesmith.plugins.stages.dpo_config import DPOStageConfig
from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
from edgesmith.plugins.stages.preference_tokens import tokenize_pairs
from stages_support import base_model

PROMPT = "Edges: 89>73*, 21>86, 30>76, 98>89, 98>21, 98>28, 98>30, 28>85. Find the path from 98 to 73*."
RENDERED = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
KEPT = "Start at 98.\nTry 98>21>86: dead end, back to 98.\n"
LOOP = KEPT + "Try 98>21>86: dead end, back to 98.\n" * 3
TASK = Task(id="t", messages=[{"role": "user", "content": PROMPT}], reference={}, metadata={"kind": "search"})


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_model_and_tokenizer(base_model(tmp_path_factory))[1]


def _pairs(tokenizer, text, sides, ended=False, at="first"):
    return correction_pairs(tokenizer, ReasoningEnvironment(), "reasoning", TASK, RENDERED, text, ended, -1.0, 0,
                            sides, at)


def _pair(tokenizer, text, sides, ended=False):
    pairs = _pairs(tokenizer, text, sides, ended)
    assert len(pairs) <= 1
    return pairs[0] if pairs else None


def test_a_loop_is_corrected_at_its_retry_with_the_next_arm(tokenizer):
    pair = _pair(tokenizer, LOOP, "decision")
    # the shared text (the right first try, and the next try up to the arm) joins the prompt
    assert pair.prompt.startswith(RENDERED + KEPT + "Try 98>") and pair.prefix == pair.prompt[len(RENDERED):]
    # the sides are the one token where they part: the expert's next arm against the retried one
    assert "89".startswith(pair.chosen) and "21".startswith(pair.rejected) and pair.chosen != pair.rejected
    assert not pair.chosen_ends and not pair.rejected_ends and pair.rejected_score == -1.0
    row = tokenize_pairs(tokenizer, [pair])[0]
    assert len(row["chosen_ids"]) == 1 and len(row["rejected_ids"]) == 1
    assert tokenizer.decode(row["prompt_ids"] + row["chosen_ids"]) == pair.prompt + pair.chosen


def test_rest_keeps_the_experts_whole_trace(tokenizer):
    pair = _pair(tokenizer, LOOP, "rest")
    assert pair.prompt + pair.chosen == RENDERED + KEPT + "Try 98>89>73*: reached 73.\nFinal answer: 98,89,73"
    assert pair.chosen_ends and not pair.rejected_ends


def test_right_text_and_tasks_without_an_expert_make_no_pair(tokenizer):
    assert _pair(tokenizer, KEPT + "Try 98>89>73*: reached 73.\nFinal answer: 98,89,73", "decision", True) is None
    assert _pair(tokenizer, KEPT + "Try 98>8", "decision") is None  # cut by the budget on its way
    star = Task(id="s", messages=TASK.messages, reference={}, metadata={"kind": "star"})
    assert correction_pairs(tokenizer, ReasoningEnvironment(), "reasoning", star, RENDERED, LOOP, False, 0.0, 0,
                            "decision", "every") == []


def test_every_retry_of_a_loop_and_a_quit_after_a_retry_are_corrected_too(tokenizer):
    retry = "Try 98>21>86: dead end, back to 98.\n"
    pairs = _pairs(tokenizer, LOOP, "decision", at="every")
    # one pair per retry (three), each from the state after the retries before it
    assert [p.prefix.count(retry) for p in pairs] == [1, 2, 3]
    assert all("89".startswith(p.chosen) and "21".startswith(p.rejected) for p in pairs)
    quit_after_retry = KEPT + retry + "Final answer: 98,21,86"
    pairs = _pairs(tokenizer, quit_after_retry, "decision", ended=True, at="every")
    assert len(pairs) == 2 and pairs[1].prefix == KEPT + retry  # "Try" (the next arm) against "Final"
    assert "Try".startswith(pairs[1].chosen) and "Final".startswith(pairs[1].rejected)


def test_the_option_is_checked_and_makes_pairs_without_whole_completions():
    with pytest.raises(ConfigError, match="dpo.corrections"):
        DPOStageConfig(corrections="all")
    DPOStageConfig(rejected="none", corrections="decision")  # correction pairs alone are enough
    with pytest.raises(ConfigError, match="dpo.corrections_at"):
        DPOStageConfig(corrections="decision", corrections_at="last")
    with pytest.raises(ConfigError, match="dpo.rejected"):
        DPOStageConfig(rejected="none")


@pytest.mark.slow
def test_build_preferences_adds_a_correction_pair_per_wrong_candidate(tmp_path_factory):
    """A tiny untrained model writes no search trace at all: each distinct candidate is
    corrected at its start, tie or not, beside no whole-completion pairs (rejected=none)."""
    import torch

    from edgesmith.core.options import PluginRef
    from edgesmith.plugins.judges.jury import Jury
    from edgesmith.plugins.stages.preferences import build_preferences
    from stages_support import registered_test_plugins

    torch.manual_seed(0)
    model, tokenizer = load_model_and_tokenizer(base_model(tmp_path_factory))
    env = ReasoningEnvironment()
    tasks = env.tasks("train", 2)
    with registered_test_plugins() as manager:
        jury = Jury.from_refs([PluginRef("verifier", 1.0), PluginRef("loop", 1.0)], "weighted_sum", manager)
        result = build_preferences(model, tokenizer, [("reasoning", t) for t in tasks], {"reasoning": env}, jury,
                                   samples=2, temperature=1.0, max_new_tokens=8, round_index=0, seed=0,
                                   rejected="none", corrections="decision")
    assert result.pairs and all(p.correction for p in result.pairs)
    assert len(result.pairs) <= 3 * len(tasks)  # at most one per distinct candidate
    solutions = {t.id: t.solution for t in tasks}
    for pair in result.pairs:
        # corrected from the start, the expert writes the task's own (listed-order) solution
        assert pair.chosen and pair.rejected != pair.chosen
        assert solutions[pair.task_id].startswith(pair.prefix + pair.chosen)
