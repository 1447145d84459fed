"""A trial whose worker died before its first heartbeat is failed and retried, not waited on forever."""

from __future__ import annotations

import time

import optuna
import pytest
from optuna.trial import TrialState

from edgesmith.search.storage import fail_stale, resolve_storage

# study.ask() on a heartbeat storage is what these tests mean to do (a worker that never beat)
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed:UserWarning")


def _study(tmp_path, grace_period_s: int):
    resolved = resolve_storage(None, tmp_path, heartbeat_interval_s=1, grace_period_s=grace_period_s, max_retry=2)
    return optuna.create_study(storage=resolved.storage, study_name="s")


def test_a_running_trial_without_any_heartbeat_is_failed_and_requeued_after_the_grace_period(tmp_path):
    study = _study(tmp_path, grace_period_s=2)
    # study.ask() creates a RUNNING trial without starting a heartbeat: what a worker killed
    # between creating its trial and the first beat leaves in the storage.
    orphan = study.ask({"x": optuna.distributions.IntDistribution(0, 9)})
    fail_stale(study)
    assert study.trials[orphan.number].state == TrialState.RUNNING  # younger than the grace period
    time.sleep(2.5)
    fail_stale(study)
    states = [t.state for t in study.trials]
    assert states[orphan.number] == TrialState.FAIL
    retry = [t for t in study.trials if t.state == TrialState.WAITING]
    assert len(retry) == 1 and retry[0].params == study.trials[orphan.number].params


def test_a_trial_with_a_fresh_heartbeat_is_left_running(tmp_path):
    study = _study(tmp_path, grace_period_s=2)
    trial = study.ask()
    time.sleep(2.5)
    study._storage.record_heartbeat(trial._trial_id)  # its worker is alive
    fail_stale(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
