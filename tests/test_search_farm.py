"""`edgesmith search` as separate worker processes: the tiny study end to end, two workers on
one storage, and a worker killed with SIGKILL mid-trial whose trial another worker retries."""

from __future__ import annotations

import json
import os
import signal
import time

import optuna
import pandas as pd
from hydra import compose, initialize_config_module

from edgesmith.core.cli import register_stage_schemas
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.plugin_manager import get_plugin_manager
from edgesmith.core.validation import model_config_from_cfg
from farm_support import edgesmith, finish, running_trial, still_running, worker_args


def test_tiny_study_end_to_end_and_the_exported_model_config(tmp_path):
    run_dir = tmp_path / "run"
    out = finish(edgesmith("search", "search=tiny", "search.n_trials=3", f"hydra.run.dir={run_dir}"))
    assert "Pareto front of study 'edgesmith-tiny'" in out and "chosen (best_quality)" in out
    trials = pd.read_csv(run_dir / "trials.csv")
    assert len(trials) == 3 and set(trials["state"]) <= {"COMPLETE", "PRUNED"}
    done = trials[trials["state"] == "COMPLETE"]
    assert len(done) >= 1 and (done["decode_ms"] > 0).all() and (done["peak_rss_mb"] > 0).all()
    for png in ("pareto_front", "optimization_history", "param_importances"):
        assert (run_dir / f"{png}.png").stat().st_size > 1000
    summary = json.loads((run_dir / "summary.json").read_text())
    assert set(summary["spearman"]) == {"decode_flops_vs_decode_ms", "est_memory_vs_peak_rss"}
    assert summary["target_fingerprint"]["torch"]
    chosen = summary["chosen"]
    # The rule: best proxy value among feasible trials.
    assert chosen["values"]["proxy"] == done[done["feasible"]]["proxy"].min()
    config = EdgeConfig.from_pretrained(run_dir / "chosen")
    assert config.layers == chosen["model_config"]["layers"]
    # `edgesmith run hydra.searchpath=[file://<run>/conf] model=searched` composes the export.
    register_stage_schemas(get_plugin_manager())
    with initialize_config_module("edgesmith.conf", version_base=None):
        cfg = compose("run", overrides=[f"hydra.searchpath=[file://{run_dir}/conf]", "model=searched"])
    from_yaml = model_config_from_cfg(cfg.model)
    assert from_yaml.layers == config.layers and from_yaml.hidden_size == config.hidden_size
    from_yaml.resolve_operators()


def test_two_workers_share_one_journal_study(tmp_path):
    storage = f"journal://{tmp_path}/farm.log"
    procs = [edgesmith(*worker_args(storage, "farm", tmp_path / f"w{i}", 8, 1024)) for i in range(2)]
    outs = [finish(p) for p in procs]
    study = optuna.load_study(study_name="farm", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "farm.log"))))
    trials = study.trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # none lost, none twice
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    originals = [t for t in finished if "duplicate_of" not in t.user_attrs]  # repeats reuse results, uncounted
    # Each worker stops once 8 are finished; a trial both start at the same moment may add one.
    assert len(finished) == len(trials) and 8 <= len(originals) <= 9
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, outs  # both processes measured trials of the one study
    assert all(t.values[0] > 0 for t in trials if t.state.name == "COMPLETE")


def test_sigkilled_worker_trial_is_retried_by_another(tmp_path):
    storage = f"sqlite:///{tmp_path}/farm.db"
    # The victim's proxy trains 16x longer than the retrying worker's (the proxy's options are
    # no part of the candidate), so it is still mid-trial when killed however fast the machine:
    # on an idle one a 24576-token trial (~2.5 s) could finish within the wait below.
    victim = edgesmith(*worker_args(storage, "kill", tmp_path / "a", 2, 16 * 24576))
    running = running_trial(storage, "kill", victim)
    time.sleep(1.5)  # its heartbeat is recorded
    assert still_running(storage, "kill", running.number), "the victim finished its trial before it was killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()

    # The same study again: the worker resumes it and retries the dead worker's trial.
    out = finish(edgesmith(*worker_args(storage, "kill", tmp_path / "b", 2, 24576)))
    study = optuna.load_study(study_name="kill", storage=storage)
    by_number = {t.number: t for t in study.trials}
    assert by_number[running.number].state.name == "FAIL"
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == running.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE", out[-2000:]
    killed = by_number[running.number]
    assert killed.params and retries[0].params == killed.params  # the same candidate, re-measured
    assert retries[0].user_attrs["worker"] != running.user_attrs["worker"]
    assert sum(t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs for t in study.trials) == 2
    assert not [t for t in study.trials if t.state.name in ("RUNNING", "WAITING")]
