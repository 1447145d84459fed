"""Which stages the report compares, and how the rows are matched by task id."""

from __future__ import annotations

import json

from edgesmith.plugins.stages.report_changes import change_lines, comparisons, greedy_outcomes, stage_changes


def test_each_stage_against_its_predecessor_and_against_the_baseline():
    stages = ["pretrain", "sft", "dpo", "rl"]
    assert comparisons(stages, "sft") == [("pretrain", "sft"), ("sft", "dpo"), ("dpo", "rl"), ("sft", "rl")]
    assert comparisons(stages, "pretrain") == [("pretrain", "sft"), ("sft", "dpo"), ("dpo", "rl"),
                                               ("pretrain", "dpo"), ("pretrain", "rl")]
    assert comparisons(["dpo", "rl"], "sft") == [("dpo", "rl")]  # no sft in the run: neighbours only
    assert comparisons(["sft"], "sft") == []


def _record(task, correct, looping, mode="greedy", env="reasoning"):
    return {"env": env, "task_id": task, "mode": mode, "correct": correct, "looping": looping}


def test_rows_pair_greedy_outcomes_by_task_id(tmp_path):
    before = tmp_path / "before.jsonl"
    after = tmp_path / "after.jsonl"
    before.write_text("\n".join(json.dumps(r) for r in [
        _record("a", True, False), _record("b", False, True), _record("c", False, True),
        _record("a", False, True, mode="sampled"),  # sampled rows are not pairs
        _record("z", True, False)]) + "\n")  # only in before: left out
    after.write_text("\n".join(json.dumps(r) for r in [  # another order
        _record("c", True, False), _record("b", False, False), _record("a", True, False)]) + "\n")
    outcomes = {"sft": greedy_outcomes(before), "rl": greedy_outcomes(after)}
    assert set(outcomes["sft"]["reasoning"]) == {"a", "b", "c", "z"}
    rows = {r["metric"]: r for r in stage_changes(outcomes)}
    assert rows["accuracy"]["n"] == 3 and (rows["accuracy"]["up"], rows["accuracy"]["down"]) == (1, 0)
    assert (rows["loop_rate"]["before"], rows["loop_rate"]["after"]) == (2 / 3, 0)
    assert greedy_outcomes(tmp_path / "missing.jsonl") == {}
    lines = change_lines(list(rows.values()))
    assert any(line.startswith("| reasoning | accuracy | sft | rl | 3 | 33.3% | 66.7% | +33.3 |") for line in lines)
    assert change_lines([]) == []
