"""Per prompt, what a later stage did to an earlier stage's greedy reasoning answers.

Each greedy reasoning completion is one of C (correct), L (looping) or W (wrong, ended);
the script counts the pairs "before -> after" over the prompts both files share, and prints
the paired change in accuracy and loop rate with Newcombe's 95% interval and McNemar's p
(plugins/evaluation/paired.py; the report's "Changes between stages" table does the same
for the stages of one run). Equal rates can hide much churn: after base16's DPO, 43 of
the 90 prompts SFT answered right were wrong, and 20 loops became right answers.

    .venv/bin/python scripts/stage_flips.py outputs/<run>/report/sft/completions.jsonl \\
        outputs/<run>/report/dpo/completions.jsonl [more files]
"""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from edgesmith.plugins.evaluation.paired import paired_change
from edgesmith.plugins.stages.report_changes import greedy_outcomes


def outcomes(path: str, env: str = "reasoning") -> dict[str, str]:
    """task id -> C, L or W for the greedy completions of ``env`` in a completions.jsonl."""
    records = greedy_outcomes(Path(path)).get(env, {})
    return {task: "C" if r["correct"] else "L" if r["looping"] else "W" for task, r in records.items()}


def main(paths: list[str]) -> None:
    before = outcomes(paths[0])
    for path in paths[1:]:
        after = outcomes(path)
        shared = sorted(set(before) & set(after))
        flips = collections.Counter(before[t] + after[t] for t in shared)
        print(f"{path}: {len(shared)} prompts, " + ", ".join(f"{k} {flips[k]}" for k in sorted(flips)))
        for metric, outcome in (("accuracy", "C"), ("loop rate", "L")):
            change = paired_change([before[t] == outcome for t in shared], [after[t] == outcome for t in shared])
            low, high = change.change_ci95
            print(f"  {metric} {change.before:.1%} -> {change.after:.1%}: {100 * change.change:+.1f} points "
                  f"[{100 * low:+.1f}, {100 * high:+.1f}], McNemar p {change.p_value:.3g} ({change.verdict})")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1:])
