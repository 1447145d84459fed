"""What does a DPO round's chosen side teach on the search task?

Reads a round's ``pairs.jsonl`` and sorts each whole-completion pair (branch pairs are
counted apart) by its chosen side: the task's reference solution, a sample that tries the
centre's arms in the order the prompt lists them (the procedure SFT taught), or a sample
that tries them out of order (it reached the target by a lucky guess, or after a retry).
The verifier scores a lucky guess as high as the worked solution, so when the jury also
rewards brevity such samples win the chosen side.

    .venv/bin/python scripts/chosen_sides.py outputs/<run>/dpo/round_0/pairs.jsonl [more files]
"""

from __future__ import annotations

import collections
import json
import re
import sys


def arms_listed(prompt: str) -> list[str]:
    """The centre's arms (first node after it) in the order the prompt's edges list them."""
    edges, centre = re.search(r"Edges: (.*?)\. Find the path from (\d+)", prompt).groups()
    return [b for a, b in re.findall(r"(\d+)>(\d+)", edges) if a == centre]


def arms_tried(completion: str) -> list[str]:
    """The first node after the centre of every "Try" line, in order (retries included)."""
    walks = re.findall(r"^Try (\d+)>(\d+)", completion, flags=re.MULTILINE)
    return [arm for _, arm in walks]


ASSISTANT = "<|im_start|>assistant\n"


def whole_chosen(pair: dict) -> str:
    """The chosen completion as the policy would write it: a pair cut at its parting point
    (``dpo.rejected_cut=parting``) keeps the shared start at the end of its prompt."""
    return pair["prompt"].rsplit(ASSISTANT, 1)[-1] + pair["chosen"]


def chosen_kind(pair: dict) -> str:
    if pair.get("prefix"):
        return "branch pair"
    chosen = whole_chosen(pair)
    if any(c.get("reference") and c["text"].removesuffix("<|im_end|>") == chosen.removesuffix("<|im_end|>")
           for c in pair.get("candidates", [])):
        return "reference solution"
    tried, listed = arms_tried(chosen), arms_listed(pair["prompt"])
    if tried == listed[:len(tried)]:
        return "sample, arms in listed order"
    return "sample, arms out of order" + (" (with a retry)" if len(set(tried)) < len(tried) else "")


def main(paths: list[str]) -> None:
    for path in paths:
        with open(path) as f:
            pairs = [json.loads(line) for line in f if line.strip()]
        kinds = collections.Counter(chosen_kind(p) for p in pairs if p.get("environment") == "reasoning")
        print(f"{path}: {sum(kinds.values())} reasoning pairs")
        for kind, n in kinds.most_common():
            print(f"  {n:4d}  {kind}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
