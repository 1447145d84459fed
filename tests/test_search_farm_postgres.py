"""A device farm on a real PostgreSQL server (tests/postgres_cluster.py): workers as separate
`edgesmith search` processes sharing one `postgresql://` study, a worker SIGKILLed mid-trial,
a worker joining late, the report written once, and a SQLite study moved over with copy_study."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import optuna
import pandas as pd
import pytest
import sqlalchemy

from edgesmith.search.claims import claim
from edgesmith.search.storage import resolve_storage
from edgesmith.search.study import run_search
from farm_support import edgesmith, finish, running_trial, still_running, worker_args
from postgres_cluster import postgres_db, postgres_url  # noqa: F401  (fixtures)
from test_search_study import tiny


@pytest.mark.parametrize("kind", ["postgresql", "sqlite", "journal"])
def test_report_claim_has_one_winner_when_workers_race(kind, tmp_path, request):
    url = {"postgresql": lambda: request.getfixturevalue("postgres_db"),
           "sqlite": lambda: f"sqlite:///{tmp_path}/s.db",
           "journal": lambda: f"journal://{tmp_path}/s.log"}[kind]()
    optuna.create_study(study_name="race", storage=resolve_storage(url, tmp_path).storage)
    racers, barrier, won = 8, threading.Barrier(8), {}

    def race(i: int) -> None:
        storage = resolve_storage(url, tmp_path).storage  # one connection per worker, as in a farm
        study = optuna.load_study(study_name="race", storage=storage)
        barrier.wait()
        won[i] = claim(study, storage, "report/5", {"worker": f"w{i}", "run_dir": f"/runs/{i}"})

    threads = [threading.Thread(target=race, args=(i,)) for i in range(racers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == racers
    winners = {json.dumps(w, sort_keys=True) for w in won.values()}
    assert len(winners) == 1, winners  # every worker agrees on one writer
    winner = won[0]
    assert winner["worker"] in {f"w{i}" for i in range(racers)}
    # A later claim of the same key (a worker re-run on the unchanged study) loses too.
    storage = resolve_storage(url, tmp_path).storage
    study = optuna.load_study(study_name="race", storage=storage)
    assert claim(study, storage, "report/5", {"worker": "late", "run_dir": "/runs/late"}) == winner


def test_three_workers_share_one_postgres_study(tmp_path, postgres_db):
    n_trials = 12  # enough left after the first finished trial for a late joiner to get some, however fast b is
    args = {name: worker_args(postgres_db, "farm", tmp_path / name, n_trials, 8192) for name in "abc"}
    # the victim's proxy trains 16x longer (no part of the candidate): still mid-trial when
    # killed, however fast the machine (an 8192-token trial can end within the wait below)
    args["a"] = worker_args(postgres_db, "farm", tmp_path / "a", n_trials, 16 * 8192)
    victim, steady = edgesmith(*args["a"]), edgesmith(*args["b"])
    killed = running_trial(postgres_db, "farm", victim)
    time.sleep(0.5)  # its heartbeat (every 1 s) is recorded
    assert still_running(postgres_db, "farm", killed.number), "the victim finished its trial before it was killed"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    storage = optuna.storages.RDBStorage(postgres_db)
    deadline = time.time() + 300
    while not optuna.load_study(study_name="farm", storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        assert time.time() < deadline and steady.poll() is None, "the live worker finished no trial"
        time.sleep(0.5)
    late = edgesmith(*args["c"])  # joins a study that already has finished trials
    outs = {"b": finish(steady), "c": finish(late)}

    study = optuna.load_study(study_name="farm", storage=postgres_db)
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost, none twice
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    # The killed worker's trial failed (no heartbeat) and was re-queued once, for a live worker.
    assert trials[killed.number].state.name == "FAIL"
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE", outs
    assert retries[0].params == trials[killed.number].params
    assert retries[0].user_attrs["worker"] != killed.user_attrs["worker"]
    counted = [t for t in trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    # Each worker stops at n_trials; trials started at the same moment may add one per worker.
    assert n_trials <= len(counted) <= n_trials + 1
    assert len({json.dumps(t.params, sort_keys=True) for t in counted}) == len(counted)  # no candidate measured twice
    by_worker = {name: [t.number for t in trials if t.user_attrs["worker"].endswith(f":{proc.pid}")]
                 for name, proc in (("a", victim), ("b", steady), ("c", late))}
    assert by_worker["a"] and by_worker["b"] and by_worker["c"], by_worker
    assert "study 'farm' on rdb storage (joined, " in outs["c"]
    assert "joined, 0 finished trials" not in outs["c"]

    # The report: written once, by a live worker, covering every trial of the study.
    writers = [name for name in "abc" if (tmp_path / name / "summary.json").exists()]
    assert len(writers) == 1 and writers[0] in "bc", writers
    writer, other = writers[0], ("c" if writers[0] == "b" else "b")
    assert not (tmp_path / other / "trials.csv").exists() and not (tmp_path / other / "pareto.txt").exists()
    summary = json.loads((tmp_path / writer / "summary.json").read_text())
    assert summary["report_writer"]["run_dir"] == str((tmp_path / writer).resolve())
    assert f"the study's report is written once, by worker {summary['report_writer']['worker']} into " \
           f"{(tmp_path / writer).resolve()}" in " ".join(outs[other].split())
    table = pd.read_csv(tmp_path / writer / "trials.csv")
    assert sorted(table["number"]) == [t.number for t in trials]
    assert (tmp_path / writer / "pareto.txt").exists() and (tmp_path / writer / "chosen" / "config.json").exists()


def test_a_sqlite_study_moves_to_postgres_with_copy_study(tmp_path, postgres_db):
    sqlite = f"sqlite:///{tmp_path}/study.db"
    run_search(tiny(storage=sqlite, n_trials=2), tmp_path / "on_sqlite")
    # The documented move (examples/search_farm/README.md): Optuna's own copy_study.
    optuna.copy_study(from_study_name="edgesmith-tiny", from_storage=sqlite, to_storage=postgres_db)
    moved = run_search(tiny(storage=postgres_db, n_trials=3), tmp_path / "on_postgres")
    assert moved.trials_run_here == [2]  # the copied trials count: only the third is new
    before = optuna.load_study(study_name="edgesmith-tiny", storage=sqlite)
    after = optuna.load_study(study_name="edgesmith-tiny", storage=postgres_db)
    for old, new in zip(before.trials, after.trials[:2]):
        assert (new.params, new.values, new.state, new.constraints) == (old.params, old.values, old.state,
                                                                         old.constraints)
        assert new.user_attrs["model_config"] == old.user_attrs["model_config"]
    assert after.user_attrs["target_fingerprint"] == before.user_attrs["target_fingerprint"]
    assert len(after.trials) == 3 and after.trials[2].state.name == "COMPLETE"
    summary = json.loads((tmp_path / "on_postgres" / "summary.json").read_text())
    assert summary["states"] == {"COMPLETE": 3} and summary["storage"] == postgres_db


def test_a_missing_postgres_driver_is_a_clear_error(tmp_path):
    # postgresql+pg8000:// names a driver edgesmith does not install.
    from edgesmith.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"search.storage.*driver is installed.*pip install 'edgesmith\[farm\]'"):
        resolve_storage("postgresql+pg8000://u@127.0.0.1:1/db", tmp_path)
    assert sqlalchemy.engine.make_url("postgresql://u@h/db").get_dialect().driver == "psycopg"
