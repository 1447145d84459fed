"""Two workers that propose the same candidate at the same moment measure it once: the second
waits for the first's trial and reuses its results; a failed first trial hands the candidate on."""

from __future__ import annotations

import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from edgesmith.search.duplicates import candidate_key, claim_candidate
from edgesmith.search.storage import resolve_storage

CANDIDATE = {"vocab_size": 320, "hidden_size": 64, "layers": [{"op": "short_conv"}, {"op": "gqa"}]}


@pytest.fixture(params=["sqlite", "journal"])
def study(request, tmp_path):
    url = {"sqlite": f"sqlite:///{tmp_path}/s.db", "journal": f"journal://{tmp_path}/s.log"}[request.param]
    resolved = resolve_storage(url, tmp_path)
    created = optuna.create_study(study_name="claims", storage=resolved.storage)
    return created, resolved.storage


def claim(trial, storage, timeout_s=30.0, said=None):
    return claim_candidate(trial, storage, CANDIDATE, f"host:{trial.number}", 0.05, timeout_s,
                           heartbeat=lambda: None, say=said.append if said is not None else print)


def test_the_second_claim_waits_for_the_first_trial_and_gets_its_results(study):
    study, storage = study
    first, second = study.ask(), study.ask()
    first.set_user_attr("model_config", CANDIDATE)
    assert claim(first, storage) is None  # the first measures

    def finish_first():
        time.sleep(0.5)
        first.set_user_attr("proxy", 3.5)
        study.tell(first, 3.5)

    finisher = threading.Thread(target=finish_first)
    finisher.start()
    said: list[str] = []
    started = time.time()
    twin = claim(second, storage, said=said)
    finisher.join()
    assert time.time() - started >= 0.4  # it waited for the first trial to finish
    assert twin is not None and twin.number == first.number and twin.values == [3.5]
    assert "trial 0 (worker host:0) is measuring the same candidate" in said[0]


def test_a_failed_claimer_hands_the_candidate_to_one_waiter(study):
    study, storage = study
    first, second, third = study.ask(), study.ask(), study.ask()
    assert claim(first, storage) is None
    study.tell(first, state=TrialState.FAIL)  # its worker raised, or was failed for want of heartbeats
    assert claim(second, storage) is None  # the next claim, keyed on the failure, is the second's

    results: dict[str, object] = {}
    waiter = threading.Thread(target=lambda: results.update(third=claim(third, storage)))
    waiter.start()
    time.sleep(0.3)
    assert waiter.is_alive()  # the third waits for the second, not for the failed first
    second.set_user_attr("model_config", CANDIDATE)
    study.tell(second, 1.25)
    waiter.join(timeout=30)
    assert results["third"].number == second.number


def test_a_waiter_measures_itself_after_the_wait_timeout(study):
    study, storage = study
    first, second = study.ask(), study.ask()
    assert claim(first, storage) is None  # and never finishes: a dead worker on a storage without heartbeats
    said: list[str] = []
    assert claim(second, storage, timeout_s=0.3, said=said) is None
    assert "measuring the candidate here" in said[-1]


def test_claim_keys_differ_by_candidate_and_by_failed_trial():
    other = {**CANDIDATE, "hidden_size": 128}
    reordered = dict(reversed(list(CANDIDATE.items())))
    assert candidate_key(CANDIDATE) == candidate_key(reordered)
    assert len({candidate_key(CANDIDATE), candidate_key(other), candidate_key(CANDIDATE, 4)}) == 3
