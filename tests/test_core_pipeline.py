"""The pipeline runner: completion records, skip, resume, failure, changed inputs."""

from __future__ import annotations

import json

import pytest
from omegaconf import OmegaConf
from plugins_for_tests import stages as test_stages

from edgesmith.core.errors import ConfigError, StageError
from edgesmith.core.pipeline import COMPLETE, FAILED, run_pipeline
from edgesmith.core.plugin_manager import PluginManager


@pytest.fixture
def manager():
    pm = PluginManager(load_entry_points=False)
    pm.register(test_stages, name="tests:stages")
    return pm


def config(stages, **sections):
    return OmegaConf.create({"pipeline": {"stages": stages}, **sections})


def executed(run_dir):
    return [int(x) for x in (run_dir / "count" / "executed.log").read_text().split()]


def test_runs_stages_in_order_and_records_completion(tmp_path, manager):
    artifacts = run_pipeline(config(["produce", "count"]), tmp_path, manager)
    assert artifacts["count"].metadata == {"steps": 5, "source": str(tmp_path / "produce" / "data.txt")}
    record = json.loads((tmp_path / "count" / COMPLETE).read_text())
    assert record["artifact"]["kind"] == "model"
    assert len((tmp_path / "count" / "metrics.jsonl").read_text().splitlines()) == 5


def test_rerun_skips_completed_stages(tmp_path, manager):
    run_pipeline(config(["produce", "count"]), tmp_path, manager)
    run_pipeline(config(["produce", "count"]), tmp_path, manager)
    assert (tmp_path / "runs.log").read_text().splitlines() == ["produce hello"]
    assert executed(tmp_path) == [1, 2, 3, 4, 5]


def test_interrupted_stage_resumes_from_its_checkpoint(tmp_path, manager):
    with pytest.raises(StageError, match=r"stage 'count' failed: RuntimeError: interrupted at step 3"):
        run_pipeline(config(["produce", "count"], count={"fail_at": 3}), tmp_path, manager)
    assert (tmp_path / "count" / FAILED).exists()
    assert not (tmp_path / "count" / COMPLETE).exists()
    run_pipeline(config(["produce", "count"]), tmp_path, manager)
    assert executed(tmp_path) == [1, 2, 3, 4, 5]  # steps 1-3 were not redone
    assert (tmp_path / "runs.log").read_text().splitlines() == ["produce hello"]
    assert not (tmp_path / "count" / FAILED).exists()


def test_failing_stage_keeps_earlier_artifacts_and_names_the_stage(tmp_path, manager):
    with pytest.raises(StageError) as err:
        run_pipeline(config(["produce", "boom", "count"]), tmp_path, manager)
    assert str(err.value) == "stage 'boom' failed: ValueError: deliberate failure"
    assert (tmp_path / "produce" / "data.txt").read_text() == "hello"
    assert (tmp_path / "produce" / COMPLETE).exists()
    assert not (tmp_path / "count").exists()


def test_changed_options_rerun_the_stage_and_later_ones_keeping_old_output(tmp_path, manager):
    run_pipeline(config(["produce", "count"]), tmp_path, manager)
    run_pipeline(config(["produce", "count"], produce={"content": "bye"}), tmp_path, manager)
    assert (tmp_path / "produce" / "data.txt").read_text() == "bye"
    assert (tmp_path / "produce.stale-1" / "data.txt").read_text() == "hello"
    assert (tmp_path / "count.stale-1" / COMPLETE).exists()  # downstream re-ran too
    assert executed(tmp_path) == [1, 2, 3, 4, 5]


def test_stage_without_required_input_says_what_it_needs(tmp_path, manager):
    with pytest.raises(StageError, match=r"stage 'count' failed: needs an input artifact of kind 'dataset'"):
        run_pipeline(config(["count"]), tmp_path, manager)


def test_bad_stage_options_rejected_before_any_work(tmp_path, manager):
    with pytest.raises(ConfigError, match=r"count.steps=0: accepted a positive integer"):
        run_pipeline(config(["produce", "count"], count={"steps": 0}), tmp_path, manager)
    with pytest.raises(ConfigError, match=r"count.stepz"):
        run_pipeline(config(["produce", "count"], count={"stepz": 3}), tmp_path, manager)
    with pytest.raises(ConfigError, match=r"count.steps"):
        run_pipeline(config(["produce", "count"], count={"steps": "many"}), tmp_path, manager)
    assert not (tmp_path / "produce").exists()


def test_unknown_and_repeated_stage_names(tmp_path, manager):
    with pytest.raises(Exception, match=r"unknown stage 'nope' \(config key pipeline.stages\[1\]\); "
                                        r"registered stages: boom, count, produce"):
        run_pipeline(config(["produce", "nope"]), tmp_path, manager)
    with pytest.raises(ConfigError, match="repeated: produce"):
        run_pipeline(config(["produce", "produce"]), tmp_path, manager)
    with pytest.raises(ConfigError, match="pipeline.stages"):
        run_pipeline(config([]), tmp_path, manager)
