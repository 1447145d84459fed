"""The report's paired changes: what each stage changed on the same greedy prompts.

Each stage is compared with the stage before it and, when the run has it, with a baseline
stage (``report.baseline``, default ``sft``: the issue's "not lower than after SFT"), per
environment, for accuracy and loop rate. Pairs are matched by task id on the greedy
completions each evaluation wrote (``completions.jsonl``); sampled completions are left out
(several per prompt, so not one pair per prompt).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgesmith.plugins.evaluation.paired import paired_change

# report metric -> the completion record's field that counts towards it
METRICS = (("accuracy", "correct"), ("loop_rate", "looping"))

Outcomes = dict[str, dict[str, dict[str, Any]]]  # env -> task id -> greedy completion record


def greedy_outcomes(completions: Path) -> Outcomes:
    """env -> task id -> greedy record, from an evaluation's ``completions.jsonl`` (empty if absent)."""
    outcomes: Outcomes = {}
    if not completions.is_file():
        return outcomes
    with completions.open() as f:
        for line in f:
            record = json.loads(line)
            if record.get("mode") == "greedy":
                outcomes.setdefault(record["env"], {})[record["task_id"]] = record
    return outcomes


def comparisons(stages: list[str], baseline: str | None) -> list[tuple[str, str]]:
    """(before, after) stage pairs: each stage after its predecessor, and after the baseline."""
    pairs = list(zip(stages, stages[1:]))
    if baseline in stages:
        start = stages.index(baseline)
        pairs += [(baseline, later) for later in stages[start + 2:]]  # start + 1 is already a neighbour
    return pairs


def stage_changes(per_stage: dict[str, Outcomes], baseline: str | None = "sft") -> list[dict[str, Any]]:
    """Paired change rows (env, metric, from, to, n, before, after, change, change_ci95, up, down, p_value, verdict)."""
    rows = []
    pairs = comparisons(list(per_stage), baseline)
    envs = list(dict.fromkeys(env for outcomes in per_stage.values() for env in outcomes))
    for env in envs:
        for metric, field in METRICS:
            for before_stage, after_stage in pairs:
                before = per_stage[before_stage].get(env, {})
                after = per_stage[after_stage].get(env, {})
                shared = [task for task in before if task in after]
                if not shared:
                    continue
                change = paired_change([bool(before[t][field]) for t in shared],
                                       [bool(after[t][field]) for t in shared])
                rows.append({"env": env, "metric": metric, "from": before_stage, "to": after_stage,
                             **change.as_dict()})
    return rows


def _points(value: float) -> str:
    return f"{100 * value:+.1f}"


def change_lines(changes: list[dict[str, Any]]) -> list[str]:
    """The report.md section for :func:`stage_changes` rows (nothing when there are none)."""
    if not changes:
        return []
    lines = ["", "## Changes between stages (paired, greedy)", "",
             "Each pair of stages on the same prompts: change = after - before in percentage points with "
             "Newcombe's 95% interval for paired proportions; up / down: prompts that turned true / false; "
             "p: McNemar's exact test. The verdict says whether the interval excludes 0.", "",
             "| env | metric | from | to | n | before | after | change (pts) | change 95% CI | up | down | p | verdict |",
             "|" + "---|" * 13]
    for c in changes:
        low, high = c["change_ci95"]
        lines.append(f"| {c['env']} | {c['metric'].replace('_', ' ')} | {c['from']} | {c['to']} | {c['n']} | "
                     f"{c['before']:.1%} | {c['after']:.1%} | {_points(c['change'])} | "
                     f"[{_points(low)}, {_points(high)}] | {c['up']} | {c['down']} | {c['p_value']:.3g} | "
                     f"{c['verdict']} |")
    return lines
