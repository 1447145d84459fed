"""The study in-process: resume after an interruption, infeasible spaces, fingerprints, journal, stage."""

from __future__ import annotations

import types
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

import edgesmith.conf
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.pipeline import run_pipeline
from edgesmith.core.plugin_manager import PluginManager
from edgesmith.core.options import build_options
from edgesmith.search.config import SearchConfig, load_preset
from edgesmith.search.proxies.zero_cost import ZeroCostProxy
from edgesmith.search.study import FingerprintMismatchError, InfeasibleSpaceError, run_search

TINY = Path(edgesmith.conf.__file__).parent / "search" / "tiny.yaml"


def tiny_section(**overrides) -> dict:
    """The tiny preset with cheap trials: the zero-cost proxy as the only objective, no profiling."""
    section = OmegaConf.to_container(load_preset(TINY))
    section.update(objectives=["proxy"], plots=False)
    section["constraints"]["peak_memory_mb"] = None
    section["proxy"] = {"name": "zero_cost", "options": {}}
    if "sampler_options" in overrides:  # replaced, not merged: options belong to one sampler
        section["sampler_options"] = overrides.pop("sampler_options")
    merged = OmegaConf.merge(OmegaConf.create(section), OmegaConf.create(overrides))
    return OmegaConf.to_container(merged)


def tiny(**overrides) -> SearchConfig:
    return build_options(SearchConfig, tiny_section(**overrides), key="search")


class InterruptOnSecondCall(ZeroCostProxy):
    """The zero-cost proxy, but the second evaluation is a Ctrl-C (an interrupted study)."""

    calls = 0

    def evaluate(self, model_config, report=None):
        type(self).calls += 1
        if type(self).calls == 2:
            raise KeyboardInterrupt
        return super().evaluate(model_config, report)


def test_interrupted_study_resumes_without_redoing_finished_trials(tmp_path):
    plugins = PluginManager()
    plugins.register(types.SimpleNamespace(
        edgesmith_quality_proxies=hookimpl(lambda: {"interrupting": InterruptOnSecondCall})), name="test-proxy")
    storage = f"sqlite:///{tmp_path}/study.db"
    with pytest.raises(KeyboardInterrupt):
        run_search(tiny(storage=storage, n_trials=3, proxy={"name": "interrupting"}), tmp_path / "a", plugins)
    study = optuna.load_study(study_name="edgesmith-tiny", storage=storage)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "FAIL"]
    first = study.trials[0]

    result = run_search(tiny(storage=storage, n_trials=3), tmp_path / "b", plugins)
    assert result.trials_run_here == [2, 3]  # trial 0 is kept, not redone
    study = optuna.load_study(study_name="edgesmith-tiny", storage=storage)
    assert study.trials[0].params == first.params and study.trials[0].values == first.values
    assert result.states == {"COMPLETE": 3, "FAIL": 1}
    again = run_search(tiny(storage=storage, n_trials=3), tmp_path / "c", plugins)
    assert again.trials_run_here == []
    # The study's report is written once: the re-run on the unchanged study points at b's.
    assert (tmp_path / "b" / "chosen" / "config.json").exists() and not (tmp_path / "c" / "summary.json").exists()
    assert again.report_writer["run_dir"] == str((tmp_path / "b").resolve())
    copy = run_search(tiny(storage=storage, n_trials=3, workers={"report": "every_worker"}), tmp_path / "d", plugins)
    assert copy.trials_run_here == [] and (tmp_path / "d" / "chosen" / "config.json").exists()


def test_infeasible_space_is_reported_after_max_infeasible_trials(tmp_path):
    cfg = tiny(storage=f"sqlite:///{tmp_path}/s.db", n_trials=10, max_infeasible=3,
               constraints={"max_params": 1000})
    with pytest.raises(InfeasibleSpaceError) as info:
        run_search(cfg, tmp_path)
    message = str(info.value)
    assert "3 trials" in message and "above constraints.max_params" in message
    assert "search.max_infeasible=3" in message and "loosen search.constraints" in message
    study = optuna.load_study(study_name="edgesmith-tiny", storage=f"sqlite:///{tmp_path}/s.db")
    assert len(study.trials) == 3 and all(t.state.name == "PRUNED" for t in study.trials)
    assert all(t.constraints["params_max"] > 0 for t in study.trials)


def test_a_worker_on_another_device_is_refused(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    run_search(tiny(storage=storage, n_trials=1), tmp_path / "a")
    study = optuna.load_study(study_name="edgesmith-tiny", storage=storage)
    mine = study.user_attrs["target_fingerprint"]
    assert mine["cpu_model"] and mine["logical_cores"] >= 1 and mine["torch"]
    study.set_user_attr("target_fingerprint", {**mine, "cpu_model": "Imaginary CPU 9000"})
    with pytest.raises(FingerprintMismatchError, match=r"cpu_model: study target 'Imaginary CPU 9000'"):
        run_search(tiny(storage=storage, n_trials=2), tmp_path / "b")
    assert len(optuna.load_study(study_name="edgesmith-tiny", storage=storage).trials) == 1  # nothing measured
    result = run_search(tiny(storage=storage, n_trials=2, workers={"check_fingerprint": False}), tmp_path / "c")
    assert result.trials_run_here == [1]


def test_journal_storage_study_and_resume(tmp_path):
    storage = f"journal://{tmp_path}/study.log"
    first = run_search(tiny(storage=storage, n_trials=2, sampler="tpe", sampler_options={}), tmp_path / "a")
    assert first.states == {"COMPLETE": 2} and (tmp_path / "study.log").stat().st_size > 0
    second = run_search(tiny(storage=storage, n_trials=3, sampler="tpe", sampler_options={}), tmp_path / "b")
    assert second.trials_run_here == [2]


def test_start_up_says_whether_a_dead_workers_trial_is_retried(tmp_path, caplog):
    import io
    import logging

    from rich.console import Console

    said = {}
    for kind, storage in (("journal", f"journal://{tmp_path}/j.log"), ("sqlite", f"sqlite:///{tmp_path}/s.db")):
        out = io.StringIO()
        with caplog.at_level(logging.WARNING, logger="edgesmith.search"):
            caplog.clear()
            run_search(tiny(storage=storage, n_trials=1), tmp_path / kind, console=Console(file=out, width=400))
            said[kind] = (out.getvalue(), [r.getMessage() for r in caplog.records])
    text, warned = said["journal"]
    assert "storage journal: a dead worker's trial is NOT retried" in text
    assert any("NOT retried" in w and "wait_timeout_s" in w for w in warned)
    text, warned = said["sqlite"]
    assert "storage sqlite: a dead worker's trial is retried" in text and not warned


def test_search_stage_hands_a_model_config_to_the_next_stage(tmp_path):
    section = tiny_section(n_trials=1, objectives=["proxy", "decode_ms"])
    section["profiler"]["options"].update(repeats=2, warmup=0)
    cfg = OmegaConf.create({"pipeline": {"stages": ["search"]}, "search": section})
    artifacts = run_pipeline(cfg, tmp_path)
    artifact = artifacts["search"]
    assert artifact.kind == "model_config"
    config = EdgeConfig.from_pretrained(artifact.path)
    study = optuna.load_study(study_name="edgesmith-tiny", storage=artifact.metadata["storage"])
    assert config.layers == study.trials[artifact.metadata["trial"]].user_attrs["model_config"]["layers"]
    profile = artifact.metadata["profile"]
    assert profile["decode_ms_per_token"] > 0 and 0 < profile["peak_rss_mb"] < profile["baseline_rss_mb"]
    assert profile["peak_rss_total_mb"] == pytest.approx(profile["baseline_rss_mb"] + profile["peak_rss_mb"])
    choice = artifact.metadata["choice"]
    assert choice["rule"] == "best_quality" and choice["row"]["number"] == artifact.metadata["trial"]
    assert f"trial {artifact.metadata['trial']}" in choice["reason"] and choice["pareto"]
    assert profile["measured_params"] == artifact.metadata["estimate"]["params"]
    assert (tmp_path / "search" / "study.db").exists()


def test_n_trials_counts_evaluations_not_rejected_candidates(tmp_path):
    storage = f"sqlite:///{tmp_path}/s.db"
    result = run_search(tiny(storage=storage, n_trials=3, constraints={"max_params": 200_000}), tmp_path)
    study = optuna.load_study(study_name="edgesmith-tiny", storage=storage)
    rejected = [t for t in study.trials if t.state.name == "PRUNED"]
    assert result.states["COMPLETE"] == 3 and len(study.trials) == 3 + len(rejected)
    assert all(t.user_attrs["feasible"] is False and t.constraints["params_max"] > 0 for t in rejected)
    assert all(t.user_attrs["estimate"]["params"] <= 200_000 for t in study.trials if t.state.name == "COMPLETE")
