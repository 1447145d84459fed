"""Preference pairs at the point where a loop starts: on-policy branches from its first repeat.

A whole-completion pair (a finished trace against a doom loop) tells DPO which of two long
texts is better, not where they part: a loop is a budget's worth of copies of one unit, and
the single decision that makes it (going round again instead of moving on) is averaged
with every other token of both sides. Pushing all of the loop down also pushes down the
lines a good trace writes once, and the cheapest way out the model then finds is to stop
early (on the search task: "Final answer" after the first dead end).

A branch pair puts the decision in the open. For a looping completion, the text up to where
it first re-writes what it already wrote (:func:`first_repeat`) becomes part of the prompt;
the policy continues it
``branches`` times at the sampling temperature; the jury judges each continuation as the
whole text it makes; the best one, if it beats the loop by ``min_margin``, is ``chosen``
and the loop's next unit (the repeat itself) is ``rejected``. Both sides share the prefix
exactly, so the preference is about what comes right after it.

With ``chosen="step"`` (the default) the chosen side is cut to the repeat's length in
tokens: one step against one step, as in step-level DPO (Lai et al., 2024, "Step-DPO").
Length-normalized DPO averages the log-ratio over each side's tokens, so a whole remaining
trace as the chosen side dilutes the one token that decides (which arm comes next) by the
trace's length, and trains on whatever the rest of that sample did (in run e11 the best
continuations still retried arms and walked edges that do not exist, and won only because
their final answer was right). ``chosen="rest"`` keeps the whole continuation.

``chosen="decision"`` goes one step further: the tokens the two steps share (on the search
task "3: dead end, back to 11.\nTry 11>") move into the prompt, and each side is the one
token where they part ("70" against the retried "75"). A step still carries everything
that follows the decision, and whatever differs there is learned with it: when the right
next arm is the target's, the chosen step ends "*: reached" and the retry ": dead end", and
DPO learned to claim the target (run base8: 39 of the 117 prompts SFT answered right were
lost to such claims and to retries ending "reached").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgesmith.core.environment import Environment, Task

from .preferences import Candidate, PreferencePair, prompt_text

#: a branch pair's sides: one step (the repeat's length), the rest, or the one token where they part
BRANCH_CHOSEN = ("step", "rest", "decision")
#: which completions are branched: looping ones, or every one that re-writes a step (a retry)
BRANCH_FROM = ("loops", "repeats")
#: where a loop is branched: before its first repeat (the retry itself), or after it (the
#: retry written once; the pair is about going round a second time)
BRANCH_AT = ("first_repeat", "second_repeat")


@dataclass
class LoopBranch:
    """A looping completion split at its first repeat."""

    task: Task
    prefix: str  # the completion up to the end of the loop's first unit
    repeat: str  # the unit the loop writes next: the rejected side of the pair
    loop_text: str  # the whole looping completion, judged beside the continuations
    loop_score: float
    repeat_tokens: int = 0  # the repeat's length in tokens (0: unknown, the chosen side is not cut)
    prefix_ids: tuple = ()  # the prefix's token ids, to check that a chosen step does not re-write it
    repeat_ids: tuple = ()  # the repeat's token ids, to find where a continuation parts from it
    looping: bool = True  # False: a repeat inside a completion that went on and ended (branch_from=repeats)
    after_repeat: bool = False  # cut after its first repeat (branch_at=second_repeat): the prefix holds one


#: the shortest re-written span that counts as going round again, in tokens: longer than the
#: phrasing a right search trace repeats (": dead end, back to 74.\nTry 74>" is 20 tokens with
#: the main job's BPEs), shorter than a re-tried step ("Try 74>13>22: dead end, back to 74.\n", 25)
MIN_REPEAT_TOKENS = 24


def first_repeat(token_ids: list, min_tokens: int = MIN_REPEAT_TOKENS) -> tuple[int, int] | None:
    """(index, length) of the first place the sequence re-writes >= ``min_tokens`` it already wrote.

    The length is the repeated span, at most the distance back to its first copy (one unit of
    the repetition). Most loops of the search task have no stable period (the model goes round
    two or three arms in turn), so the periodic tail starts long after the loop does; this is
    where it starts. One pass over the ``min_tokens``-grams: linear in the sequence.
    """
    ids = list(token_ids)
    first_at: dict[tuple, int] = {}
    for at in range(len(ids) - min_tokens + 1):
        gram = tuple(ids[at:at + min_tokens])
        earlier = first_at.setdefault(gram, at)
        if earlier == at:
            continue
        length = min_tokens
        while at + length < len(ids) and ids[earlier + length] == ids[at + length]:
            length += 1
        return at, min(length, at - earlier)
    return None


def rewrites(prefix: list, unit: list, min_tokens: int = MIN_REPEAT_TOKENS) -> bool:
    """Whether ``unit`` re-writes a span of >= ``min_tokens`` tokens that ``prefix`` holds."""
    seen = {tuple(prefix[at:at + min_tokens]) for at in range(len(prefix) - min_tokens + 1)}
    return any(tuple(unit[at:at + min_tokens]) in seen for at in range(len(unit) - min_tokens + 1))


def branch_point(loop: Any) -> tuple[int, int] | None:
    """(token index where the periodic tail's first repeat begins, period), or None without a stable unit."""
    if not loop.looping:
        return None
    if loop.rule == "period":
        period, repeats = loop.period, loop.repeats
    elif loop.rule == "near":
        period, repeats = loop.near_period, loop.near_repeats
    else:  # an n-gram loop has no unit to cut at
        return None
    start = max(0, loop.n_tokens - round(period * repeats))
    at = start + period
    return (at, period) if at < loop.n_tokens else None


def split_loop(tokenizer: Any, task: Task, token_ids: list[int], loop: Any, text: str,
               score: float, any_repeat: bool = False, at_repeat: str = "first_repeat") -> LoopBranch | None:
    """A completion cut at its first repeat (:func:`first_repeat`, else a loop's periodic tail).

    Only looping completions are cut unless ``any_repeat``: then a completion that re-writes a
    step once and still ends (a retried arm on the search task) is cut there too.
    ``at_repeat="second_repeat"`` cuts one unit later, after the first repeat, where the
    completion goes round a second time (None when it does not: it is not a loop there).

    Why the second: a pair at the first repeat asks for the next arm where the model has not
    retried yet; the loop lives in the state after a retry. What it did on base16's SFT model
    (README "DPO and RL on a looping model"): the model's samples from there rarely reach the
    target (7 pairs from 245 looping candidates, run y2), and with the whole step as the chosen
    side loops fell from 49.5% to 10.5%, but by claiming the target after a retry, which
    those chosen steps also do ("*: reached" after the retried arm's dead end).
    """
    if at_repeat not in BRANCH_AT:
        raise ValueError(f"at_repeat={at_repeat!r}: expected one of {', '.join(BRANCH_AT)}")
    if not loop.looping and not any_repeat:
        return None
    point = first_repeat(token_ids) or (branch_point(loop) if loop.looping else None)
    if point is None:
        return None
    at, period = point
    if at_repeat == "second_repeat":
        at += period
        if not rewrites(token_ids[:at], token_ids[at:at + period]):
            return None
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    return LoopBranch(task=task, prefix=decode(token_ids[:at]), repeat=decode(token_ids[at:at + period]),
                      loop_text=text, loop_score=score, repeat_tokens=period,
                      prefix_ids=tuple(token_ids[:at]), repeat_ids=tuple(token_ids[at:at + period]),
                      looping=bool(loop.looping), after_repeat=at_repeat == "second_repeat")


def branch_pairs(model: Any, tokenizer: Any, env_name: str, environment: Environment, jury: Any,
                 loops: list[LoopBranch], *, branches: int, temperature: float, max_new_tokens: int,
                 round_index: int, seed: int, min_margin: float, chosen: str = "step",
                 correct_only: bool = False) -> list[PreferencePair]:
    """One pair per loop whose best sampled continuation beats it by ``min_margin``.

    Only continuations whose chosen side neither equals the repeat nor re-writes the prefix
    itself (another retry) compete. A repeat in a completion that did not loop is paired when
    the best continuation scores above the completion (any margin): the retry is the mistake,
    the jury only makes sure the chosen path is not worse.

    ``chosen``: ``step`` (the best continuation cut to the repeat's length), ``rest`` (all of
    it) or ``decision`` (the first token where it parts from the repeat, against the repeat's
    token there; the tokens before it join the prompt).
    ``correct_only``: only continuations the environment verifies as correct compete. A jury
    prefers any ending to a loop, so without it the best continuation is often a wrong one
    that ends: on the listed search task (run f2) DPO then taught "Try <the same arm>*:
    reached", a retry that claims the target, and greedy loops fell from 38.5% to 1.0% while
    accuracy fell from 58.5% to 41.0%.
    """
    if chosen not in BRANCH_CHOSEN:
        raise ValueError(f"chosen={chosen!r}: expected one of {', '.join(BRANCH_CHOSEN)}")
    from edgesmith.plugins.evaluation.rollout import generate_completions

    if not loops or branches < 1:
        return []
    continued = generate_completions(model, tokenizer, [b.task for b in loops], n_samples=branches,
                                     temperature=temperature, max_new_tokens=max_new_tokens,
                                     seed=seed + 7919 * (round_index + 1), prefixes=[b.prefix for b in loops])
    pairs = []
    for branch, continuations in zip(loops, continued):
        texts = [branch.prefix + c.text for c in continuations]
        finished = [bool(c.finished) for c in continuations]
        verdict = jury.score(branch.task, texts, environment, finished)
        sides = [_chosen_side(tokenizer, c, branch, chosen) for c in continuations]
        # a continuation that repeats the unit once more and only then moves on would make a
        # chosen step equal to the rejected one (seen in run base3's pairs): no preference there
        eligible = [i for i, side in enumerate(sides)
                    if side.strip() != branch.repeat.strip() and not _rewrites_prefix(branch, continuations[i])
                    and (not correct_only or environment.verify(branch.task, texts[i]).correct)]
        if not eligible:
            continue
        best = max(eligible, key=lambda i: verdict.scores[i])
        margin = min_margin if branch.looping else 0.0
        if verdict.scores[best] - branch.loop_score < max(margin, 1e-9):
            continue
        prefix, chosen_side, rejected_side = branch.prefix, sides[best], branch.repeat
        ends = finished[best] and (chosen == "rest" or _ends_within(continuations[best], branch.repeat_tokens))
        if chosen == "decision":
            parted = _decision(tokenizer, branch, continuations[best])
            if parted is None:
                continue
            shared, chosen_side, rejected_side = parted
            prefix, ends = prefix + shared, False
        candidates = [Candidate(text=c.text, score=verdict.scores[i],
                                by_judge={k: v[i] for k, v in verdict.by_judge.items()},
                                finished=finished[i], greedy=False)
                      for i, c in enumerate(continuations)]
        pairs.append(PreferencePair(
            round=round_index, environment=env_name, task_id=branch.task.id,
            prompt=prompt_text(tokenizer, branch.task) + prefix,
            chosen=chosen_side, rejected=rejected_side,
            chosen_score=verdict.scores[best], rejected_score=branch.loop_score,
            candidates=candidates, prefix=prefix, chosen_ends=ends, rejected_ends=False))
    return pairs


def _chosen_side(tokenizer: Any, continuation: Any, branch: LoopBranch, chosen: str) -> str:
    if chosen == "rest" or branch.repeat_tokens < 1 or continuation.token_ids is None:
        return continuation.text
    return tokenizer.decode(list(continuation.token_ids)[:branch.repeat_tokens], skip_special_tokens=False)


def _ends_within(continuation: Any, tokens: int) -> bool:
    """Whether a finished continuation's end falls inside its first ``tokens`` tokens (the step)."""
    return tokens < 1 or continuation.token_ids is None or len(continuation.token_ids) <= tokens


def _decision(tokenizer: Any, branch: LoopBranch, continuation: Any) -> tuple[str, str, str] | None:
    """(shared text, the continuation's first own token, the repeat's token there), or None
    when the continuation does not part from the repeat within the repeat's length."""
    if not branch.repeat_ids or continuation.token_ids is None:
        return None
    ids = list(continuation.token_ids)
    at = next((i for i, (a, b) in enumerate(zip(ids, branch.repeat_ids)) if a != b), None)
    if at is None:
        return None
    decode = lambda part: tokenizer.decode(part, skip_special_tokens=False)  # noqa: E731
    return decode(ids[:at]), decode(ids[at:at + 1]), decode(list(branch.repeat_ids[at:at + 1]))


def _rewrites_prefix(branch: LoopBranch, continuation: Any) -> bool:
    """Whether the continuation's first step re-writes a span of the prefix (goes round again too)."""
    if not branch.prefix_ids or continuation.token_ids is None or branch.repeat_tokens < 1:
        return False
    step = list(continuation.token_ids)[:branch.repeat_tokens]
    prefix = list(branch.prefix_ids)
    if not branch.after_repeat:
        return first_repeat([*prefix, *step]) is not None
    # the prefix holds a repeat itself, so only what the step writes counts (with the spans
    # that cross into it from the prefix's end)
    return rewrites(prefix, prefix[-(MIN_REPEAT_TOKENS - 1):] + step)
