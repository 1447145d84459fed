"""Correction pairs: the policy's own text up to its first mistake, then the expert's next token
against the policy's (``dpo.corrections``).

Every other pair DPO gets here is judged between the policy's own candidates (and the
reference solution), and on the search task the candidates that end are mostly wrong: the
jury's "best" taught the model to stop or to claim the target, not to move on (README "DPO
and RL on a looping model"). A correction needs no candidate to be right. The environment's
expert (:meth:`Environment.correct <edgesmith.core.environment.Environment.correct>`) finds
where a candidate first goes wrong (on the search task: the retried arm where a doom loop
starts, a claimed target on a dead end, a final answer before the target) and writes how a
right trace goes on from the state the policy reached there. The two sides share the
policy's text up to that point and then every token both write; they part at one token (the
next arm the expert takes against the retried one). This is the step-level correction of
DAgger (Ross et al., 2011) and of step-level DPO with expert steps: states the policy reaches
itself, labels from the expert, so the pairs sit exactly where SFT's teacher-forced traces
never went.

``corrections="decision"``: each side is the one token where they part (the tokens before
it join the prompt). ``"rest"``: the chosen side is the expert's whole remaining trace, the
rejected side still the one token. ``corrections_at="every"`` also corrects the mistakes
after the first that the expert can go on from (on the search task, what comes after each
retried arm: a loop gives a pair at each of its retries, and a trace that quits after a
retry is told to try the next arm instead).

What it did on base16's SFT model (49.5% greedy loops, 45.0% accuracy; README "DPO and RL on
a looping model"): added to the main job's DPO, 8.5% loops at 41.0% accuracy after DPO (run
c2, against 0.5% / 34.0% without), 6.5% / 45.5% after RL; other seeds and sizes kept less,
and with 100 prompts instead of 120 the loops stayed (55.0%, run base18). Corrections alone,
on one token each, made the model drift (71.0% loops, c1): the whole-completion pairs' SFT
term on whole traces is what keeps the rest of the text in place.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from edgesmith.core.environment import Environment, Task

from .parting import cut_at_parting
from .preferences import PreferencePair

#: what a correction pair's chosen side is: none (no correction pairs), the expert's one token
#: where it parts from the policy, or the expert's whole remaining trace
CORRECTIONS = ("none", "decision", "rest")
#: where a candidate is corrected: at its first mistake, or at every one the expert can go on from
CORRECTIONS_AT = ("first", "every")


def correction_pairs(tokenizer: Any, environment: Environment, env_name: str, task: Task, prompt: str,
                     text: str, ended: bool, score: float, round_index: int, sides: str,
                     at: str = "first") -> list[PreferencePair]:
    """The correction pairs of one candidate completion: at its first mistake (``at="first"``)
    or at every mistake the expert can go on from (``"every"``; on the search task, also after
    each retried arm). None without an expert or a mistake, or where the sides never part."""
    if sides not in CORRECTIONS[1:]:
        raise ValueError(f"sides={sides!r}: expected one of {', '.join(CORRECTIONS[1:])}")
    if at not in CORRECTIONS_AT:
        raise ValueError(f"at={at!r}: expected one of {', '.join(CORRECTIONS_AT)}")
    if at == "every":
        fixes = environment.corrections(task, text, ended)
    else:
        first = environment.correct(task, text, ended)
        fixes = [first] if first is not None else []
    pairs = []
    for fix in fixes:
        kept = text[:fix.keep]
        pair = PreferencePair(round=round_index, environment=env_name, task_id=task.id, prompt=prompt + kept,
                              chosen=fix.continuation, rejected=text[fix.keep:], chosen_score=1.0,
                              rejected_score=score, prefix=kept, chosen_ends=True, rejected_ends=ended,
                              correction=True)
        pair = cut_at_parting(tokenizer, pair)
        if pair is None:
            continue
        pair = replace(pair, prefix=pair.prompt[len(prompt):])
        if sides == "decision" and pair.chosen:
            pair = replace(pair, chosen=_first_token(tokenizer, pair.chosen), chosen_ends=False)
        pairs.append(pair)
    return pairs


def _first_token(tokenizer: Any, text: str) -> str:
    """The text of ``text``'s first token (with the tokens that complete its last character)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    end = 1
    while end < len(ids) and not text.startswith(tokenizer.decode(ids[:end], skip_special_tokens=False)):
        end += 1
    return tokenizer.decode(ids[:end], skip_special_tokens=False)
