"""Precision and recall of the doom-loop detector on a labelled set of crafted generations.

Run ``OMP_NUM_THREADS=1 python -m pytest tests/test_loops_labelled.py -q -s`` to see the
numbers (they are also in the docstring of edgesmith.plugins.loops.detector). Also: the
main job's search traces, the streaming guard on near-repeats and long periods, linear cost.
"""

from __future__ import annotations

import pytest
import torch

from edgesmith.plugins.loops import detect_loop
from edgesmith.plugins.loops.detector import RepeatTracker, text_to_tokens
from loop_cases import cut, labelled_cases, search_trace, to_ids

MAIN_JOB_FINISHED = ("Start at 15.\nTry 15>68>31: dead end, back to 15.\nTry 15>80>70: reached 70.\n"
                     "Final answer: 15,80,70")
MAIN_JOB_LOOPING = "Start at 15.\n" + "Try 15>68>31: dead end, back to 15.\n" * 40


def precision_recall(verdicts: list[tuple[bool, bool]]) -> tuple[float, float, int, int, int]:
    tp = sum(1 for predicted, truth in verdicts if predicted and truth)
    fp = sum(1 for predicted, truth in verdicts if predicted and not truth)
    fn = sum(1 for predicted, truth in verdicts if not predicted and truth)
    return tp / max(tp + fp, 1), tp / max(tp + fn, 1), tp, fp, fn


def test_the_labelled_set_is_large_and_balanced():
    cases = labelled_cases()
    assert len(cases) >= 50 and len({name for name, *_ in cases}) == len(cases)
    loops = sum(1 for *_, looping in cases if looping)
    assert loops >= 25 and len(cases) - loops >= 25
    assert all(not looping for _, _, finished, looping in cases if finished)


@pytest.mark.parametrize("mode, min_precision, min_recall", [("text", 0.95, 0.9), ("token ids", 0.95, 0.8)])
def test_precision_and_recall_on_the_labelled_set(mode, min_precision, min_recall):
    verdicts, missed, false_alarms = [], [], []
    for name, text, finished, looping in labelled_cases():
        tokens = text if mode == "text" else to_ids(text)
        predicted = detect_loop(tokens, finished).looping
        verdicts.append((predicted, looping))
        if predicted != looping:
            (missed if looping else false_alarms).append(name)
    precision, recall, tp, fp, fn = precision_recall(verdicts)
    print(f"\nloop detector, {mode}: {len(verdicts)} cases ({tp + fn} loops): precision {precision:.2f}, "
          f"recall {recall:.2f} (tp {tp}, fp {fp}, fn {fn}); missed: {missed}; false alarms: {false_alarms}")
    assert precision >= min_precision and recall >= min_recall, (missed, false_alarms)


def test_the_main_jobs_search_traces_keep_their_verdicts():
    for tokens in (MAIN_JOB_FINISHED, to_ids(MAIN_JOB_FINISHED)):
        assert not detect_loop(tokens, finished=True).looping
    looping = cut(MAIN_JOB_LOOPING, 192)  # the budget of the main job
    assert len(text_to_tokens(looping)) == 192
    for tokens in (looping, to_ids(looping)):
        verdict = detect_loop(tokens, finished=False)
        assert verdict.looping and verdict.rule == "period", verdict
        assert not detect_loop(tokens, finished=True).looping  # finished is never a loop
    # the same legitimate trace cut by the budget is not a loop, at every difficulty
    for seed in range(20):
        for difficulty in (1, 3, 5):
            legit, _ = search_trace(seed, difficulty)
            for budget in (64, 128, 192):
                text = cut(legit, budget)
                assert not detect_loop(text, finished=False).looping, (seed, difficulty, budget, text)
                assert not detect_loop(to_ids(text), finished=False).looping, (seed, difficulty, budget)


def test_near_repeats_name_their_rule_and_numbers():
    kiwis = cut("".join(f"{i}. kiwis\n" for i in range(1, 80)), 192)
    verdict = detect_loop(kiwis, finished=False)
    assert verdict.looping and verdict.rule == "near" and verdict.near_period == 6, verdict
    assert verdict.reason.startswith("near-repeat") and verdict.near_edits > 0
    # the same shape with a new word in every line is a list, not a loop
    assert not detect_loop(cut("".join(f"{i}. {w}\n" for i, w in enumerate(
        "kiwis apples pears plums figs dates limes lemons melons grapes cherries olives".split() * 1, 1)), 192),
        finished=False).looping
    # numerals are known for token ids when their ids are given
    steps = cut("".join(f"Step {i}: add one to the counter and check it again.\n" for i in range(1, 40)), 192)
    ids = to_ids(steps)
    digits = {i for i, piece in zip(ids, text_to_tokens(steps)) if piece.isdigit()}
    assert detect_loop(steps, finished=False).looping and detect_loop(ids, finished=False, numeral_ids=digits).looping


def test_tracker_follows_a_counter_that_gains_a_digit():
    tokens = text_to_tokens("".join(f"Step {i}: check the counter again.\n" for i in range(1, 30)))
    tracker = RepeatTracker(text=True).extend(tokens)
    period, repeats, changed, per_period, share = tracker.near_repeat()
    assert period == len(text_to_tokens("Step 29: check the counter again.\n"))
    assert repeats > 15 and per_period <= 1.5 and share < 0.15


@pytest.mark.parametrize("kind", ["counter", "long near-repeat", "tool calls", "random"])
def test_near_repeat_cost_is_linear(kind):
    def make(n):
        if kind == "counter":
            return to_ids("".join(f"Step {i}: add one. " for i in range(n)))[:n]
        if kind == "long near-repeat":
            return to_ids("".join(f"Round {i}: " + " ".join(f"w{j}" for j in range(60)) + ". " for i in range(n)))[:n]
        if kind == "tool calls":
            return to_ids(", ".join(f'get(city="c{i}")' for i in range(n)))[:n]
        import random

        rng = random.Random(n)
        return [rng.randrange(4) for _ in range(n)]

    ops = {n: detect_loop(make(n), finished=False).operations for n in (2000, 8000, 32000)}
    assert all(count <= 8 * n + 4000 for n, count in ops.items()), ops
    assert ops[32000] <= 4.4 * ops[8000] and ops[8000] <= 4.4 * ops[2000] + 4000, ops


# --- the streaming guard, fed token by token as generate() does ---------------------------------

def run_guard(ids: list[int], **options):
    from edgesmith.plugins.loops.guard import LoopGuard

    guard = LoopGuard(2, eos_token_id=0, **options)
    full = torch.tensor([[1, 2] + list(ids)])  # a 2-token prompt, then the generated ids
    for length in range(1, len(ids) + 1):
        stop = guard(full[:, :2 + length])
        if bool(stop[0]):
            return guard, length
    return guard, None


def test_guard_stops_a_near_repeat_loop():
    ids = to_ids("".join(f"Step {i}: add one to the counter and check it again.\n" for i in range(1, 200)))
    guard, stopped = run_guard(ids[:2000])
    assert stopped is not None and stopped < 600, stopped  # digits are known after ten steps
    assert "changed tokens" in guard.reasons[0] and guard.stopped_at[0] == stopped
    # the exact-only guard of before never stopped it
    assert run_guard(ids[:2000], near=False)[1] is None


def test_guard_stops_a_loop_whose_period_exceeds_its_window():
    block = ("To find the path I first list every edge of the graph, then I look for the node that has no "
             "outgoing edge, because that node must be the end of an arm, and from there I walk back towards "
             "the centre one edge at a time while writing each node down, and when the walk reaches the centre "
             "the path is complete and I reverse the list. ")
    ids = to_ids(block * 12)
    period = len(text_to_tokens(block))
    assert period > 128  # more than the 512-token window holds 4 times, and more than window=256 once
    guard, stopped = run_guard(ids, window=256)
    assert stopped is not None and stopped <= 4 * period + 8, (stopped, period)
    assert f"a {period}-token period" in guard.reasons[0]


@pytest.mark.parametrize("name", ["40 parallel JSON tool calls", "40 parallel pythonic tool calls",
                                  "parallel calls over city and date", "numeric table n, n^2, n^3",
                                  "times table", "code: a class", "code: a dict of 40 entries", "CSV rows",
                                  "markdown table", "numbered list", "100 made-up words, numbered",
                                  "search trace cut by the budget (difficulty 5)"])
def test_guard_lets_legitimate_structure_run(name):
    (text,) = [t for n, t, _, _ in labelled_cases() if n == name]
    guard, stopped = run_guard(to_ids(text))
    assert stopped is None, (name, guard.reasons)


def test_guard_cost_is_linear():
    ops = {}
    for n in (1000, 4000):
        ids = to_ids(", ".join(f'get(city="c{i}")' for i in range(n)))[:n]
        guard, _ = run_guard(ids, window=64)
        ops[n] = guard.operations
    assert ops[4000] <= 4.4 * ops[1000], ops
