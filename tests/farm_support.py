"""Workers of a search farm as separate `edgesmith search` processes (tests/test_search_farm*.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial


def edgesmith(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgesmith.core.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(proc: subprocess.Popen, timeout: float = 900) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 0, out[-3000:]
    return out


def worker_args(storage: str, study: str, run_dir: Path, n_trials: int, tokens: int) -> list[str]:
    """A quick worker: the short-training proxy as the only objective, no latency profile."""
    return ["search", "search=tiny", f"search.storage={storage}", f"search.study_name={study}",
            f"search.n_trials={n_trials}", "search.objectives=[proxy]", "search.plots=false",
            "search.constraints.peak_memory_mb=null", "search.proxy.name=short_train",
            f"++search.proxy.options={{width:32,tokens:{tokens},seq_len:32,batch_size:4,eval_every:100000}}",
            "search.corpus_documents=40", "search.pruning_startup_trials=100", f"hydra.run.dir={run_dir}"]


def running_trial(storage: str, study_name: str, worker: subprocess.Popen, timeout: float = 150) -> FrozenTrial:
    """Waits until ``worker`` is mid-trial (candidate sampled, training) and returns that trial."""
    deadline = time.time() + timeout
    rdb = optuna.storages.RDBStorage(storage)
    while time.time() < deadline:
        time.sleep(0.3)
        assert worker.poll() is None, f"the worker exited before it started a trial: {worker.communicate()[0][-3000:]}"
        try:
            study = optuna.load_study(study_name=study_name, storage=rdb)
        except KeyError:  # not created yet
            continue
        for t in study.get_trials(deepcopy=False):
            if (t.state.name == "RUNNING" and "model_config" in t.user_attrs
                    and t.user_attrs.get("worker", "").endswith(f":{worker.pid}")):
                return t
    raise AssertionError(f"worker {worker.pid} started no trial within {timeout} s")


def still_running(storage: str, study_name: str, number: int) -> bool:
    """Whether trial ``number`` is still RUNNING: a worker killed now dies mid-trial."""
    study = optuna.load_study(study_name=study_name, storage=storage)
    return study.trials[number].state.name == "RUNNING"
