"""The report's paired changes: what each stage changed on the same greedy prompts.

Each stage is compared with the stage before it and, when the run has it, with a baseline
stage (``report.baseline``, default ``sft``: did post-training keep what SFT taught?), per
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


def plot_changes(changes: list[dict[str, Any]], path: Path, title: str = "") -> None:
    """A forest plot: one column per environment, one row per metric, a line per stage pair
    with its change and Newcombe 95% interval (percentage points); 0 drawn as the reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(dict.fromkeys(c["env"] for c in changes))
    metrics = [m for m, _ in METRICS if any(c["metric"] == m for c in changes)]
    pairs = list(dict.fromkeys((c["from"], c["to"]) for c in changes))
    better = {"accuracy": "higher", "loop_rate": "lower"}

    def color(c: dict[str, Any]) -> str:
        if c["verdict"] == "no clear change":
            return "tab:gray"
        return "tab:green" if c["verdict"] == better[c["metric"]] else "tab:red"

    by_key = {(c["env"], c["metric"], c["from"], c["to"]): c for c in changes}
    fig, axes = plt.subplots(len(metrics), len(envs), figsize=(4.2 * len(envs), 0.45 * len(pairs) * len(metrics) + 2),
                             squeeze=False, sharey=True)
    for col, env in enumerate(envs):
        for row, metric in enumerate(metrics):
            ax = axes[row][col]
            for y, pair in enumerate(pairs):
                c = by_key.get((env, metric, *pair))
                if c is None:
                    continue
                low, high = (100 * v for v in c["change_ci95"])
                ax.errorbar([100 * c["change"]], [y], xerr=[[max(0.0, 100 * c["change"] - low)],
                                                           [max(0.0, high - 100 * c["change"])]],
                            fmt="o", color=color(c), capsize=4)
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_yticks(range(len(pairs)), [f"{a} -> {b}" for a, b in pairs])
            ax.grid(alpha=0.3, axis="x")
            ax.set_title(f"{env}: {metric.replace('_', ' ')}")
            ax.set_xlabel("change (percentage points)")
    axes[0][0].invert_yaxis()  # the y axis is shared: the first stage pair on top everywhere
    legend = "green: better (accuracy up, loops down), red: worse, grey: no clear change"
    fig.suptitle(f"{title}: paired change between stages, Newcombe 95% intervals\n{legend}" if title else
                 f"paired change between stages, Newcombe 95% intervals\n{legend}", x=0.02, ha="left", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
