"""The search stage inside ``run``, SIGKILLed mid-study, resumes the same study on a re-run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow  # a search subprocess killed and rerun

COMMAND = [sys.executable, "-m", "edgesmith.core.cli", "run", "pipeline.stages=[search]", "search=tiny",
           "search.n_trials=3", "search.proxy.name=zero_cost"]


def _complete_trials(db) -> int:
    if not db.is_file():
        return 0
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
    except sqlite3.DatabaseError:  # the study's tables are not created yet
        return 0


def test_a_killed_search_resumes_its_study(tmp_path):
    run_dir = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    command = [*COMMAND, f"hydra.run.dir={run_dir}"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    db = run_dir / "search" / "study.db"
    deadline = time.time() + 300
    while _complete_trials(db) < 1 and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the search finished before it could be killed"
    os.killpg(first.pid, signal.SIGKILL)  # the stage and its profiling subprocesses
    first.wait()
    kept = _complete_trials(db)
    assert kept >= 1 and not (run_dir / "search" / "_complete.json").exists()

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-2000:]
    assert (run_dir / "search" / "_complete.json").is_file()
    assert (run_dir / "search" / "chosen" / "config.json").is_file()
    # the re-run continued the same study: the trials finished before the kill are still there
    assert _complete_trials(db) >= max(kept, 3)
