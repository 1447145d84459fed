"""The ``report`` stage: report.json beside report.md and report.png, stage wall times, the search's choice."""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest
import torch
from omegaconf import OmegaConf

from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.pipeline import COMPLETE, run_pipeline
from edgesmith.core.stage import Artifact, Stage

torch.set_num_threads(1)

MODELS: dict[str, str] = {}  # stage name -> model directory, filled by the fixture

CHOICE = {"rule": "best_quality", "budgets": {"decode_ms": 5.0},
          "reason": "best proxy loss (2.1) among 3 feasible measured candidates within decode <= 5 ms/token",
          "row": {"number": 7, "pattern": "conv conv gqa", "params": 1234567, "proxy": 2.1, "decode_ms": 1.5},
          "pareto": [{"number": 3, "pattern": "conv gqa", "params": 900000, "proxy": 2.5, "decode_ms": 0.9},
                     {"number": 7, "pattern": "conv conv gqa", "params": 1234567, "proxy": 2.1, "decode_ms": 1.5}]}


class ChooserStage(Stage):
    """Stands in for the search: a model_config artifact with the search's account of its choice."""

    name = "chooser"

    def run(self, ctx):
        shutil.copy(f"{MODELS['looper']}/config.json", ctx.out_dir / "config.json")
        return Artifact("model_config", str(ctx.out_dir), {"choice": CHOICE, "trial": 7})


class LooperStage(Stage):
    """A 'training' stage whose model repeats one token forever (every generation runs to the budget)."""

    name = "looper"

    def run(self, ctx):
        time.sleep(0.3)  # a wall time the report must show
        return Artifact("model", MODELS["looper"])


class StopperStage(Stage):
    """A 'training' stage whose model ends every generation at once (end-of-sequence first)."""

    name = "stopper"

    def run(self, ctx):
        return Artifact("model", MODELS["stopper"])


class _Plugins:
    @hookimpl
    def edgesmith_stages(self):
        return {"chooser": ChooserStage, "looper": LooperStage, "stopper": StopperStage}


@pytest.fixture(scope="module")
def manager(tmp_path_factory):
    from edgesmith.core.plugin_manager import get_plugin_manager
    from tiny_chat_models import constant_model, train_test_tokenizer

    root = tmp_path_factory.mktemp("report_models")
    tokenizer = train_test_tokenizer(root / "tokenizer")
    constant_model(root / "looper", tokenizer, tokenizer.convert_tokens_to_ids("a"))
    constant_model(root / "stopper", tokenizer, tokenizer.eos_token_id)
    MODELS.update(looper=str(root / "looper"), stopper=str(root / "stopper"))
    manager = get_plugin_manager()
    manager.register(_Plugins(), name="tests:report", provider="edgesmith tests (test_report)")
    try:
        yield manager
    finally:
        manager.unregister("tests:report")


def _config(stages):
    return OmegaConf.create({"seed": 0, "pipeline": {"stages": stages},
                             "eval": {"envs": ["reasoning"], "n_prompts": 3, "samples": 2, "sampled_prompts": 2,
                                      "max_new_tokens": 40, "batch_size": 4}})


def _pct(cell):
    return float(cell.rstrip("%")) / 100


def _markdown_rows(text):
    """The report's main table as dicts keyed by its header."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| stage | env | mode |"))
    header = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, [c.strip() for c in line.strip("|").split("|")])))
    return rows


def _interval(cell):
    low, high = re.fullmatch(r"\[(.+)%, (.+)%\]", cell).groups()
    return [float(low) / 100, float(high) / 100]


def test_report_json_md_png_agree_and_show_wall_times_and_the_choice(tmp_path, manager):
    run_dir = tmp_path / "run"
    artifacts = run_pipeline(_config(["chooser", "looper", "stopper", "report"]), run_dir, manager)
    out = run_dir / "report"
    report = json.loads((out / "report.json").read_text())
    assert (out / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "report.png").stat().st_size > 5000
    assert report["stages"] == ["looper", "stopper"]

    # the rows: every field, the right counts, and what the two models do
    rows = {(r["stage"], r["mode"]): r for r in report["rows"]}
    assert set(rows) == {(s, m) for s in ("looper", "stopper") for m in ("greedy", "sampled")}
    fields = {"stage", "env", "mode", "n", "loop_rate", "loop_rate_ci95", "accuracy", "accuracy_ci95",
              "mean_reward", "mean_length", "eos_share", "budget_share"}
    for r in report["rows"]:
        assert fields <= set(r), fields - set(r)
        assert r["env"] == "reasoning" and r["n"] == (3 if r["mode"] == "greedy" else 4)
        for key in ("loop_rate", "accuracy"):
            low, high = r[f"{key}_ci95"]
            assert 0 <= low <= r[key] <= high <= 1
    for mode in ("greedy", "sampled"):
        loop, stop = rows["looper", mode], rows["stopper", mode]
        assert loop["budget_share"] == 1 and loop["eos_share"] == 0 and loop["loop_rate"] == 1
        assert loop["mean_length"] == 40
        assert stop["eos_share"] == 1 and stop["budget_share"] == 0 and stop["loop_rate"] == 0
        assert stop["mean_length"] == 1
    assert artifacts["report"].metadata["rows"] == report["rows"]

    # report.md prints the same numbers
    text = (out / "report.md").read_text()
    printed = _markdown_rows(text)
    assert len(printed) == len(report["rows"])
    for cells, r in zip(printed, report["rows"]):
        assert (cells["stage"], cells["env"], cells["mode"]) == (r["stage"], r["env"], r["mode"])
        assert int(cells["n"]) == r["n"]
        for column, key in (("loop rate", "loop_rate"), ("accuracy", "accuracy"), ("EOS share", "eos_share"),
                            ("budget share", "budget_share")):
            assert _pct(cells[column]) == pytest.approx(r[key], abs=5e-4), column
        for column, key in (("loop 95% CI", "loop_rate_ci95"), ("accuracy 95% CI", "accuracy_ci95")):
            assert _interval(cells[column]) == pytest.approx(r[key], abs=5e-4), column
        assert float(cells["mean length"]) == pytest.approx(r["mean_length"], abs=0.05)
        assert float(cells["mean reward"]) == pytest.approx(r["mean_reward"], abs=5e-4)

    # paired changes, looper -> stopper on the same 3 greedy prompts: every loop gone, accuracy unchanged
    changes = {(c["metric"], c["from"], c["to"]): c for c in report["changes"]}
    assert set(changes) == {("loop_rate", "looper", "stopper"), ("accuracy", "looper", "stopper")}
    loops = changes["loop_rate", "looper", "stopper"]
    assert (loops["n"], loops["before"], loops["after"], loops["down"], loops["up"]) == (3, 1, 0, 3, 0)
    assert loops["change"] == -1 and loops["change_ci95"][1] < 0 and loops["verdict"] == "lower"
    assert loops["p_value"] == pytest.approx(0.25)
    assert changes["accuracy", "looper", "stopper"]["verdict"] == "no clear change"
    assert "## Changes between stages (paired, greedy)" in text
    assert (out / "changes.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "changes.png").stat().st_size > 5000
    assert "| reasoning | loop rate | looper | stopper | 3 | 100.0% | 0.0% | -100.0 |" in text

    # wall times: from the pipeline's completion records, in report.json and report.md
    walls = report["stage_wall_time_s"]
    assert list(walls) == ["chooser", "looper", "stopper", "report"]
    for name in ("chooser", "looper", "stopper"):
        record = json.loads((run_dir / name / COMPLETE).read_text())
        assert record["finished"] - record["started"] == pytest.approx(record["seconds"], abs=1e-3)
        assert walls[name] == pytest.approx(record["seconds"])
        assert report["stage_times"][name]["start"] == record["started"]
        assert f"| {name} | {record['seconds']:.1f} |" in text
    assert walls["looper"] >= 0.3 and walls["report"] > 0
    assert "## Wall time per stage" in text and "| total |" in text

    # the search's choice: rule, reason and the Pareto front with the chosen row marked
    assert report["choice"] == CHOICE
    assert "- rule: best_quality" in text and f"- reason: {CHOICE['reason']}" in text
    assert "Pareto front (2 candidates; * = chosen)" in text
    front = [line for line in text.splitlines() if line.startswith("| * |") or line.startswith("|  |")]
    assert len(front) == 2 and front[1].startswith("| * | 7 | conv conv gqa |") and "| 2.1 |" in front[1]


def test_report_without_a_search_choice_still_renders(tmp_path, manager):
    run_pipeline(_config(["looper", "report"]), tmp_path / "run", manager)
    out = tmp_path / "run" / "report"
    report = json.loads((out / "report.json").read_text())
    assert report["choice"] is None and list(report["stage_wall_time_s"]) == ["looper", "report"]
    text = (out / "report.md").read_text()
    assert "## Chosen architecture" in text and "Pareto" not in text and "- reason:" not in text
    assert "| looper | reasoning | greedy | 3 |" in text
    assert "report.baseline 'sft' is not among this run's stages (looper)" in text
    assert report["changes"] == [] and not (out / "changes.png").exists()  # one stage: nothing to compare


def test_markdown_renders_a_malformed_choice_defensively():
    from edgesmith.plugins.stages.report import markdown

    row = {"stage": "sft", "env": "toolcall", "mode": "greedy", "n": 2, "loop_rate": 0.5,
           "loop_rate_ci95": [0.1, 0.9], "accuracy": None, "accuracy_ci95": None}
    text = markdown("t", [row], {}, [], None, {"reason": "picked", "pareto": ["not a row", {"x": 1.23456}]})
    assert "- reason: picked" in text and "| | x |" in text and "| 1.235 |" in text
    assert "| sft | toolcall | greedy | 2 | 50.0% | [10.0%, 90.0%] | - | - |" in text
