"""Rollouts and summaries: length-sorted batching, shared prefill, sampled subsets, how generations end."""

from __future__ import annotations

import pytest
import torch

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.evaluation.evaluate import evaluate, summarize
from edgesmith.plugins.evaluation.options import EvalOptions
from edgesmith.plugins.evaluation.rollout import generate_completions, generate_rollouts

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from transformers import AutoTokenizer

    from tiny_chat_models import constant_model, random_model, train_test_tokenizer

    root = tmp_path_factory.mktemp("rollout_models")
    tokenizer = train_test_tokenizer(root / "tokenizer")
    llama = random_model(root / "random", tokenizer)
    looping = constant_model(root / "looping", tokenizer, tokenizer.convert_tokens_to_ids("a"))
    return {"root": root, "tokenizer": AutoTokenizer.from_pretrained(root / "random"), "llama": llama,
            "looping": looping, "edge": _edge_model(tokenizer), "lfm2": _lfm2_model(tokenizer)}


def _lfm2_model(tokenizer):
    """transformers' own LFM2: its conv-state cache layers cannot select rows (the fallback path)."""
    from transformers import Lfm2Config, Lfm2ForCausalLM

    config = Lfm2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                        num_attention_heads=2, num_key_value_heads=1, full_attn_idxs=[1],
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(2)
    return Lfm2ForCausalLM(config).eval()


def _edge_model(tokenizer):
    """A random edgesmith model (short conv + GQA + SWA) with the test tokenizer."""
    from edgesmith.core.configuration import EdgeConfig
    from edgesmith.core.modeling import EdgeForCausalLM

    config = EdgeConfig(vocab_size=len(tokenizer), hidden_size=48, intermediate_size=96, num_attention_heads=4,
                        num_key_value_heads=2, layers=[{"op": "short_conv"}, {"op": "gqa"},
                                                       {"op": "swa", "window": 16}],
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(1)
    return EdgeForCausalLM(config).eval()


WORDS = "the cat sat on a mat and then a dog ran to the red door of the old house".split()


def _tasks(n):
    """Prompts of different lengths (in a shuffled order), made here so they stay what the tests need."""
    from edgesmith.core.environment import Task

    return [Task(id=f"t{i}", messages=[{"role": "user", "content": f"Repeat: {' '.join(WORDS[:(i * 7) % 17 + 1])}"}],
                 reference="") for i in range(n)]


def _lengths_differ(tokenizer, tasks):
    from edgesmith.plugins.evaluation.rollout import render_prompts

    lengths = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in render_prompts(tokenizer, tasks)]
    assert len(set(lengths)) > 2, lengths  # else sorting and padding would not be exercised
    assert lengths != sorted(lengths)
    return lengths


@pytest.mark.parametrize("which", ["llama", "edge", "lfm2"])
def test_sorting_by_length_keeps_greedy_completions_and_their_order(models, which):
    model, tokenizer = models[which], models["tokenizer"]
    tasks = _tasks(7)
    _lengths_differ(tokenizer, tasks)
    kwargs = dict(max_new_tokens=12, samples=0)
    one_by_one = generate_rollouts(model, tokenizer, tasks, batch_size=1, sort_by_length=False, **kwargs).greedy
    unsorted = generate_rollouts(model, tokenizer, tasks, batch_size=3, sort_by_length=False, **kwargs).greedy
    by_length = generate_rollouts(model, tokenizer, tasks, batch_size=3, sort_by_length=True, **kwargs).greedy
    expected = [c.token_ids for c in one_by_one]  # no padding at all
    assert [c.token_ids for c in unsorted] == expected
    assert [c.token_ids for c in by_length] == expected
    assert [c.text for c in by_length] == [c.text for c in one_by_one]
    # and the same as transformers' own greedy generate, prompt by prompt
    from edgesmith.plugins.evaluation.rollout import render_prompts

    for prompt, completion in zip(render_prompts(tokenizer, tasks), by_length):
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = model.generate(ids, do_sample=False, max_new_tokens=12, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)
        reference = out[0, ids.shape[1]:].tolist()
        assert completion.token_ids == reference[:len(completion.token_ids)]
        assert completion.finished == (reference[-1] == tokenizer.eos_token_id)


@pytest.mark.parametrize("which", ["llama", "edge", "lfm2"])
def test_greedy_and_sampled_share_a_batch_without_changing_greedy(models, which):
    model, tokenizer = models[which], models["tokenizer"]
    tasks = _tasks(5)
    alone = generate_rollouts(model, tokenizer, tasks, samples=0, max_new_tokens=10, batch_size=4)
    mixed = generate_rollouts(model, tokenizer, tasks, samples=3, sampled_tasks=2, temperature=1.0,
                              max_new_tokens=10, batch_size=4, seed=5)
    assert [c.token_ids for c in mixed.greedy] == [c.token_ids for c in alone.greedy]
    # samples only for the first sampled_tasks tasks, `samples` each, in task order
    assert [len(s) for s in mixed.sampled] == [3, 3]
    again = generate_rollouts(model, tokenizer, tasks, samples=3, sampled_tasks=2, temperature=1.0,
                              max_new_tokens=10, batch_size=4, seed=5)
    assert [[c.token_ids for c in s] for s in again.sampled] == [[c.token_ids for c in s] for s in mixed.sampled]
    other_seed = generate_rollouts(model, tokenizer, tasks, samples=3, sampled_tasks=2, temperature=1.0,
                                   max_new_tokens=10, batch_size=4, seed=6)
    assert [[c.token_ids for c in s] for s in other_seed.sampled] != [[c.token_ids for c in s] for s in mixed.sampled]
    # sampling at temperature 1 from a random model: the samples of one prompt differ
    assert len({tuple(c.token_ids) for c in mixed.sampled[0]}) > 1


def test_rows_that_end_leave_the_batch_and_keep_their_own_results(models):
    """A batch mixing rows that stop at once (eos) with rows that run to the budget."""
    from tiny_chat_models import constant_model

    tokenizer = models["tokenizer"]
    stopper = constant_model(None, tokenizer, tokenizer.eos_token_id)
    tasks = _tasks(4)
    # greedy rows stop at once; at temperature 1e4 the sampled rows are nearly uniform: they run on
    out = generate_rollouts(stopper, tokenizer, tasks, samples=2, temperature=1e4, max_new_tokens=6,
                            batch_size=12, seed=0)
    assert all(c.finished and c.token_ids == [tokenizer.eos_token_id] and c.stop_reason == "eos"
               for c in out.greedy)
    flat = [c for s in out.sampled for c in s]
    assert any(c.stop_reason == "budget" and c.n_tokens == 6 for c in flat)
    for c in flat:
        assert (c.stop_reason == "eos") == c.finished == (c.token_ids[-1] == tokenizer.eos_token_id)
        assert tokenizer.eos_token_id not in c.token_ids[:-1]


def test_generate_completions_keeps_its_contract(models):
    model, tokenizer = models["looping"], models["tokenizer"]
    tasks = _tasks(3)
    greedy = generate_completions(model, tokenizer, tasks, n_samples=2, max_new_tokens=8, batch_size=2)
    assert [len(c) for c in greedy] == [2, 2, 2] and greedy[0][0].token_ids == greedy[0][1].token_ids
    assert greedy[0][0].token_ids is not greedy[0][1].token_ids
    seen = []
    sampled = generate_completions(model, tokenizer, tasks, n_samples=3, temperature=0.7, max_new_tokens=8,
                                   batch_size=4, progress=seen.append)
    assert [len(c) for c in sampled] == [3, 3, 3] and sum(seen) == 9
    with pytest.raises(ValueError, match="batch_size >= 1"):
        generate_completions(model, tokenizer, tasks, batch_size=0)


def _record(stop_reason, correct=False):
    return {"looping": stop_reason == "budget", "correct": correct, "n_tokens": 4, "seconds": 0.1,
            "reward": float(correct), "finished": stop_reason == "eos", "stop_reason": stop_reason}


def test_eos_budget_and_guard_shares_of_a_constructed_case():
    from edgesmith.plugins.evaluation.evaluate import wilson_interval

    records = [_record("eos", True)] * 5 + [_record("budget")] * 3 + [_record("loop guard: a 2-token period")] * 2
    m = summarize(records)
    assert m["n"] == 10 and m["eos_share"] == 0.5 and m["budget_share"] == 0.3 and m["guard_share"] == 0.2
    assert m["eos_share_ci95"] == pytest.approx(list(wilson_interval(5, 10)))
    assert m["finished_rate"] == 0.5
    assert m["accuracy"] == 0.5 and m["accuracy_ci95"] == pytest.approx(list(wilson_interval(5, 10)))
    assert m["loop_rate"] == 0.3 and m["mean_length"] == 4


def test_eval_counts_how_generations_end(models):
    root = models["root"]
    guarded = evaluate(EvalOptions(envs=["reasoning"], n_prompts=3, samples=2, sampled_prompts=2,
                                   max_new_tokens=120, loop_guard=True), root / "looping")
    for mode, n in (("greedy", 3), ("sampled", 4)):
        m = guarded["environments"]["reasoning"][mode]
        assert m["n"] == n and m["eos_share"] == 0 and m["budget_share"] == 0 and m["guard_share"] == 1
        assert m["loop_rate"] == 1
    plain = evaluate(EvalOptions(envs=["reasoning"], n_prompts=3, samples=0, max_new_tokens=16),
                     root / "looping")["environments"]["reasoning"]
    assert set(plain) == {"greedy"}
    assert plain["greedy"]["budget_share"] == 1 and plain["greedy"]["eos_share"] == 0


def test_sampled_prompts_and_batch_size_are_validated():
    with pytest.raises(ConfigError, match="sampled_prompts") as info:
        EvalOptions(sampled_prompts=0)
    assert "null" in str(info.value) and "samples=0" in str(info.value)
    with pytest.raises(ConfigError, match="batch_size"):
        EvalOptions(batch_size=0)
    assert EvalOptions(sampled_prompts=None).sampled_prompts is None
    assert EvalOptions().batch_size >= 32
