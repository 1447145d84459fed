"""DPO pairs as token ids (EOS only where the policy ended) and decision-token branch pairs."""

from __future__ import annotations

import pytest
import torch

from edgesmith.core.options import PluginRef
from edgesmith.plugins.evaluation.rollout import Completion
from edgesmith.plugins.judges.jury import Jury
from edgesmith.plugins.stages.dpo_config import DPOStageConfig
from edgesmith.plugins.stages.loop_branches import LoopBranch, _decision, branch_pairs
from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
from edgesmith.plugins.stages.preference_tokens import dpo_trainer_class, tokenize_pairs
from edgesmith.plugins.stages.preferences import PreferencePair, prompt_text
from stages_support import NeverEnvironment, base_model, registered_test_plugins

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def manager():
    with registered_test_plugins() as registered:
        yield registered


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return load_model_and_tokenizer(base_model(tmp_path_factory))[1]


def _pair(prompt, chosen, rejected, **ends):
    return PreferencePair(round=0, environment="never", task_id="t", prompt=prompt, chosen=chosen, rejected=rejected,
                          chosen_score=1.0, rejected_score=0.0, **ends)


def test_eos_follows_a_side_only_where_the_policy_ended(tokenizer):
    eos = tokenizer.eos_token_id
    prompt = "<|im_start|>user\nSay the code 3.<|im_end|>\n<|im_start|>assistant\n"
    pairs = [_pair(prompt, "the cat sat", "a a a a"),  # whole answers that ended: both get EOS
             _pair(prompt + "the", " cat", " mat", chosen_ends=False, rejected_ends=False),  # a step mid-trace
             _pair(prompt, "a a a a<|im_end|>", "the cat", rejected_ends=False)]  # EOS already in the text
    data = tokenize_pairs(tokenizer, pairs)
    assert data.column_names == ["prompt_ids", "chosen_ids", "rejected_ids"]
    whole, step, written = (data[i] for i in range(3))
    assert whole["chosen_ids"][-1] == eos and whole["rejected_ids"][-1] == eos
    assert tokenizer.decode(whole["chosen_ids"][:-1]) == "the cat sat"
    assert eos not in step["chosen_ids"] and eos not in step["rejected_ids"]
    assert tokenizer.decode(step["prompt_ids"] + step["chosen_ids"]) == prompt + "the cat"
    assert written["chosen_ids"].count(eos) == 1 and eos not in written["rejected_ids"]
    # a prompt that alone fills max_length leaves no completion token to train: the pair is left out
    assert len(tokenize_pairs(tokenizer, pairs, max_length=4)) == 0


def test_the_trainer_takes_only_tokenized_pairs(tokenizer):
    from datasets import Dataset

    trainer_class = dpo_trainer_class()
    text = Dataset.from_dict({"prompt": ["p"], "chosen": ["c"], "rejected": ["r"]})
    with pytest.raises(ValueError, match="tokenize_pairs"):
        trainer_class._prepare_dataset(None, text, tokenizer, None, "train")


def _completion(tokenizer, text, finished=False):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return Completion(text=tokenizer.decode(ids), token_ids=ids, finished=finished, n_tokens=len(ids), seconds=0.0)


def test_a_decision_pair_is_the_one_token_where_the_step_parts_from_the_repeat(tokenizer):
    repeat = _completion(tokenizer, "the cat sat on a mat")
    branch = LoopBranch(task=None, prefix="x", repeat=repeat.text, loop_text="", loop_score=-1.0,
                        repeat_tokens=len(repeat.token_ids), repeat_ids=tuple(repeat.token_ids))
    other = _completion(tokenizer, "the cat ran to a mat")
    shared, chosen, rejected = _decision(tokenizer, branch, other)
    ids, rids = list(other.token_ids), list(repeat.token_ids)
    at = next(i for i, (a, b) in enumerate(zip(ids, rids)) if a != b)
    assert shared == tokenizer.decode(ids[:at]) and shared.startswith("the cat")
    assert chosen == tokenizer.decode(ids[at:at + 1]) and rejected == tokenizer.decode(rids[at:at + 1])
    assert _decision(tokenizer, branch, _completion(tokenizer, "the cat sat on a mat again")) is None


def test_decision_branch_pairs_move_the_shared_tokens_into_the_prompt(tmp_path_factory, manager, tokenizer):
    model, _ = load_model_and_tokenizer(base_model(tmp_path_factory))
    env = NeverEnvironment(seed=0)
    tasks = env.tasks("train", 3)
    jury = Jury.from_refs([PluginRef("loop", 1.0)], "weighted_sum", manager)
    repeat_ids = tuple(tokenizer(" the cat sat", add_special_tokens=False)["input_ids"])
    loops = [LoopBranch(task=t, prefix="the cat", repeat=" the cat sat", loop_text="the cat" * 40, loop_score=-1.0,
                        repeat_tokens=len(repeat_ids), repeat_ids=repeat_ids) for t in tasks]
    kwargs = dict(branches=4, temperature=1.0, max_new_tokens=6, round_index=0, seed=0, min_margin=0.5)
    pairs = branch_pairs(model, tokenizer, "never", env, jury, loops, chosen="decision", **kwargs)
    assert pairs
    for pair in pairs:
        task = next(t for t in tasks if t.id == pair.task_id)
        assert pair.prompt == prompt_text(tokenizer, task) + pair.prefix and pair.prefix.startswith("the cat")
        assert pair.chosen and pair.chosen != pair.rejected
        assert not pair.chosen_ends and not pair.rejected_ends
        # both sides go on from the same shared text: a sampled continuation's, and the repeat's own
        shared = pair.prefix[len("the cat"):]
        assert any(c.text.startswith(shared + pair.chosen) for c in pair.candidates)
        assert (" the cat sat").startswith(shared + pair.rejected)
    # a step pair ends only if the continuation ended inside the step; the repeat never does
    steps = branch_pairs(model, tokenizer, "never", env, jury, loops, chosen="step", **kwargs)
    assert steps and all(not p.rejected_ends for p in steps)
    assert DPOStageConfig(branch_chosen="decision").branch_chosen == "decision"
