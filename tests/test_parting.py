"""Whole-completion pairs cut at the rejected side's first mistake (``dpo.rejected_cut=parting``)."""

from __future__ import annotations

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.stages.dpo_config import DPOStageConfig
from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
from edgesmith.plugins.stages.parting import cut_at_parting
from edgesmith.plugins.stages.preference_tokens import tokenize_pairs
from edgesmith.plugins.stages.preferences import PreferencePair
from stages_support import base_model

PROMPT = "<|im_start|>user\nFind the path from 85 to 48.<|im_end|>\n<|im_start|>assistant\n"
DEAD_END = "Start at 85.\nTry 85>71>59: dead end, back to 85.\n"
SOLVED = DEAD_END + "Try 85>74>48*: reached 48.\nFinal answer: 85,74,48"
LOOP = DEAD_END + "Try 85>71>59: dead end, back to 85.\n" * 3


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_model_and_tokenizer(base_model(tmp_path_factory))[1]


def _pair(chosen, rejected, rejected_ends=False):
    return PreferencePair(round=0, environment="reasoning", task_id="t", prompt=PROMPT, chosen=chosen,
                          rejected=rejected, chosen_score=1.0, rejected_score=0.0, rejected_ends=rejected_ends)


def test_the_rejected_side_is_only_its_first_mistake(tokenizer):
    cut = cut_at_parting(tokenizer, _pair(SOLVED, LOOP))
    # the dead end both wrote and the next try up to the arm's first digit (71 against 74) are
    # shared: they join the prompt
    assert cut.prompt == PROMPT + DEAD_END + "Try 85>7"
    assert cut.chosen == "4>48*: reached 48.\nFinal answer: 85,74,48" and cut.chosen_ends
    # the rejected side is the retried arm's digit, nothing of the loop after it
    assert cut.rejected == "1" and not cut.rejected_ends
    # the trainer sees one shared prompt and the two sides as cut
    row = tokenize_pairs(tokenizer, [cut])[0]
    assert tokenizer.decode(row["prompt_ids"] + row["chosen_ids"][:-1]) == PROMPT + SOLVED
    assert row["chosen_ids"][-1] == tokenizer.eos_token_id and len(row["rejected_ids"]) == 1
    assert tokenizer.decode(row["prompt_ids"] + row["rejected_ids"]) == cut.prompt + cut.rejected


def test_stopping_early_parts_at_its_eos(tokenizer):
    quit_early = DEAD_END + "Final answer: 85,71,59"
    cut = cut_at_parting(tokenizer, _pair(quit_early + "\nmore", quit_early, rejected_ends=True))
    assert cut.rejected == "" and cut.rejected_ends  # the side is the EOS where the chosen goes on
    row = tokenize_pairs(tokenizer, [cut])[0]
    assert row["rejected_ids"] == [tokenizer.eos_token_id]


def test_sides_that_never_part_make_no_pair(tokenizer):
    assert cut_at_parting(tokenizer, _pair(SOLVED, SOLVED, rejected_ends=True)) is None


def test_an_unknown_cut_is_refused():
    with pytest.raises(ConfigError, match="rejected_cut"):
        DPOStageConfig(rejected_cut="half")
