"""Whole-completion pairs cut where the rejected side first parts from the chosen side.

A whole-completion pair of the search task is the worked solution (or a right sample)
against a doom loop. The two agree until the loop's first mistake (on the search task,
re-trying an arm instead of taking the next one); after it the loop goes on writing steps
that are right for the arm it re-tried: "Try 85>71>59: dead end" is true the second time
too. DPO lowers every rejected token, so it also lowers ": dead end" after a retried arm,
and the model learns to claim the target there. In run base16, 43 of the 90 reasoning
prompts SFT answered right were lost after DPO, nearly all to "Try <an arm it already
tried>*: reached" (scripts/stage_flips.py on outputs/base16/report/{sft,dpo}/completions.jsonl).

``rejected_cut="parting"`` keeps the preference on the mistake itself: the tokens both sides
share join the prompt, the chosen side keeps the rest of its text, and the rejected side is
only the one token where it parts from the chosen (the retried arm). That is the first
error of the rejected trace, in its own on-policy context, against what the chosen trace
does there.

What it did on base16's SFT model (run x1, README "DPO and RL on a looping model"): SFT's
right answers were kept (3 lost to wrong answers, against 43), and the loops were kept too
(49.5% -> 49.0% after DPO and RL): lowering the retried arm alone did not teach the next one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .preferences import PreferencePair

#: how a whole-completion pair's rejected side is cut: not at all, or at the token where it
#: parts from the chosen side
REJECTED_CUT = ("none", "parting")


def cut_at_parting(tokenizer: Any, pair: PreferencePair) -> PreferencePair | None:
    """The pair with the shared start moved into the prompt and the rejected side cut to the
    token where it parts from the chosen side (EOS counts where a side ended: a rejected side
    that stops where the chosen one goes on parts there); None when the sides never part.
    Where that token holds part of a character, the cut takes the tokens that complete it."""
    eos = tokenizer.eos_token_id

    def ids(text: str, ends: bool) -> list[int]:
        out = tokenizer(text, add_special_tokens=False)["input_ids"]
        return out + [eos] if ends and out[-1:] != [eos] else out

    chosen, rejected = ids(pair.chosen, pair.chosen_ends), ids(pair.rejected, pair.rejected_ends)
    at = next((i for i, (a, b) in enumerate(zip(chosen, rejected)) if a != b), None)
    if at is None:
        return None
    decode = lambda part: tokenizer.decode(part, skip_special_tokens=False)  # noqa: E731
    # a byte-level token can hold part of a character: split and cut where whole characters end
    whole_chosen, whole_rejected = decode(chosen), decode(rejected)
    start = at
    while start > 0 and not whole_chosen.startswith(decode(chosen[:start])):
        start -= 1
    end = at + 1
    while end < len(rejected) and not whole_rejected.startswith(decode(rejected[:end])):
        end += 1
    chosen_rest, rejected_part = chosen[start:], rejected[start:end]
    chosen_ends, rejected_ends = chosen_rest[-1:] == [eos], rejected_part[-1:] == [eos]
    return replace(pair, prompt=pair.prompt + decode(chosen[:start]),
                   chosen=decode(chosen_rest[:-1] if chosen_ends else chosen_rest), chosen_ends=chosen_ends,
                   rejected=decode(rejected_part[:-1] if rejected_ends else rejected_part),
                   rejected_ends=rejected_ends)
