"""The doom-loop detector on crafted texts, its linear cost, and the streaming guard on a real generate."""

from __future__ import annotations

import random

import pytest
import torch

from edgesmith.plugins.loops import detect_loop
from edgesmith.plugins.loops.detector import periodic_tail, text_to_tokens
from loop_cases import WORDS, markdown_table

def numbered_list(n: int) -> str:
    return "Shopping list:\n" + "".join(f"{i}. {WORDS[i % len(WORDS)]}\n" for i in range(1, n + 1))


LOOPING = {
    "sentence repeated": "Let me think about the path. " + "Wait, let me check the path again. " * 20,
    "single token": "The answer is" + "!" * 100,
    "drifting counter": "".join(f"Step {i}: add one to the counter and check whether the counter is still "
                                f"below the limit, then go back to the start. " for i in range(1, 40)),
    "paragraph repeated": ("First I list the edges. Then I look for the target node among the leaves, "
                           "and I walk back to the centre one edge at a time.\n") * 8,
}

NOT_LOOPING = {
    "numbered list": numbered_list(40),
    "markdown table": markdown_table(30),
    "prose": " ".join(f"{random.Random(i).choice(WORDS)} {random.Random(i + 1000).choice(WORDS)} and"
                      for i in range(80)),
    "three repeats only": "I computed 3 * 7 = 21 and 21 + 4 = 25. " + "Let me check again. " * 3,
}


@pytest.mark.parametrize("name", sorted(LOOPING))
def test_looping_texts_at_the_budget_are_loops(name):
    verdict = detect_loop(LOOPING[name], finished=False)
    assert verdict.looping, (name, verdict)
    assert verdict.reason


@pytest.mark.parametrize("name", sorted(LOOPING))
def test_a_finished_generation_is_never_a_loop(name):
    verdict = detect_loop(LOOPING[name], finished=True)
    assert not verdict.looping and verdict.reason.startswith("finished")


@pytest.mark.parametrize("name", sorted(NOT_LOOPING))
def test_legitimate_repetition_is_not_a_loop(name):
    verdict = detect_loop(NOT_LOOPING[name], finished=False)
    assert not verdict.looping, (name, verdict)


def test_periodic_tail_reports_period_and_repeats_of_token_ids():
    tokens = [9, 1, 2] + [5, 6, 7, 8, 9, 10, 11, 12, 13, 14] * 5
    verdict = detect_loop(tokens, finished=False)
    assert verdict.looping and verdict.period == 10 and verdict.repeats == pytest.approx(5.0)
    # a short period counts only once its unit is stretched to min_span tokens: 3 x 3 < 8 x 4
    assert not detect_loop([1, 2, 3] * 3, finished=False).looping
    assert not detect_loop([1, 2, 3] * 11, finished=False).looping  # 33 tokens = 3.7 units of 9
    assert detect_loop([1, 2, 3] * 12, finished=False).looping  # 36 tokens = 4 units of 9
    verdict = detect_loop([1, 2, 3] * 11, finished=False, min_repeats=3)
    assert verdict.looping and verdict.period == 3


def test_ngram_rule_catches_a_drifting_loop_the_period_rule_misses():
    verdict = detect_loop(LOOPING["drifting counter"], finished=False)
    assert verdict.reason.startswith("n-gram repetition")
    assert verdict.ngram_repetition >= 0.7


def test_text_is_split_into_words_marks_and_spaces():
    assert text_to_tokens("a, bb  c") == ["a", ",", " ", "bb", "  ", "c"]


def test_bad_options_are_rejected():
    with pytest.raises(ValueError, match="min_repeats"):
        detect_loop([1, 2], finished=False, min_repeats=1)


@pytest.mark.parametrize("kind", ["constant", "periodic", "random", "near-periodic"])
def test_cost_is_linear_in_the_length(kind):
    def make(n):
        rng = random.Random(n)
        if kind == "constant":
            return [7] * n
        if kind == "periodic":
            return [i % 13 for i in range(n)]
        if kind == "random":
            return [rng.randrange(50) for _ in range(n)]
        return ([1] * 20 + [2]) * (n // 21) + [1] * (n % 21)  # many long partial matches

    ops = {n: detect_loop(make(n), finished=False).operations for n in (1000, 4000, 16000)}
    for n, count in ops.items():
        assert count <= 4 * n + 2000, (kind, n, count)
    # quadrupling the length at most quadruples the work (plus the fixed n-gram window)
    assert ops[16000] <= 4.2 * ops[4000] and ops[4000] <= 4.2 * ops[1000] + 2000


def test_periodic_tail_matches_a_brute_force_search():
    rng = random.Random(3)
    for _ in range(200):
        seq = [rng.randrange(3) for _ in range(rng.randint(1, 40))]
        period, repeats, _ = periodic_tail(seq, min_span=4)
        best = 0.0
        for p in range(1, len(seq) // 2 + 1):
            covered = p
            while covered < len(seq) and seq[-1 - covered] == seq[-1 - covered + p]:
                covered += 1
            unit = p * -(-4 // p)
            best = max(best, covered / unit)
        assert repeats == pytest.approx(best), seq


# --- the streaming guard on a real transformers generate -------------------------------------

@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    from tiny_chat_models import train_test_tokenizer

    return train_test_tokenizer(tmp_path_factory.mktemp("tok"))


def test_guard_stops_a_looping_generate_early_and_says_why(tokenizer):
    from transformers import StoppingCriteriaList

    from edgesmith.plugins.loops.guard import LoopGuard
    from tiny_chat_models import constant_model

    torch.set_num_threads(1)
    model = constant_model(None, tokenizer, tokenizer.convert_tokens_to_ids("a"))
    prompt = tokenizer(["hello there", "hi"], return_tensors="pt", padding=True, padding_side="left")
    length = prompt["input_ids"].shape[1]
    guard = LoopGuard(length, eos_token_id=tokenizer.eos_token_id)
    out = model.generate(**prompt, max_new_tokens=300, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                         eos_token_id=tokenizer.eos_token_id, stopping_criteria=StoppingCriteriaList([guard]))
    generated = out.shape[1] - length
    assert generated < 100  # 8-token span x 6 copies = 48 tokens, checked every 8
    assert all(r is not None and r.startswith("loop guard") for r in guard.reasons)
    assert all(s is not None and s <= generated for s in guard.stopped_at)


def test_guard_leaves_a_sequence_that_ended_alone(tokenizer):
    from transformers import StoppingCriteriaList

    from edgesmith.plugins.loops.guard import LoopGuard
    from tiny_chat_models import constant_model

    model = constant_model(None, tokenizer, tokenizer.eos_token_id)
    prompt = tokenizer(["hello"], return_tensors="pt")
    guard = LoopGuard(prompt["input_ids"].shape[1], eos_token_id=tokenizer.eos_token_id, check_every=1)
    model.generate(**prompt, max_new_tokens=20, do_sample=False, pad_token_id=tokenizer.pad_token_id,
                   eos_token_id=tokenizer.eos_token_id, stopping_criteria=StoppingCriteriaList([guard]))
    assert guard.reasons == [None]
