"""Candidates the sampler proposes again: their earlier results are reused, not re-measured.

Categorical spaces are small, and Optuna's samplers propose the same candidate again
(NSGA-II's random first generation did twice in eight trials; crossover of two parents that
share most genes does often). A trial whose candidate equals an earlier finished trial's
copies that trial's proxy value, measurements and constraints, so the sampler learns the
same thing, costs milliseconds, and does not count toward ``search.n_trials`` (which buys
distinct evaluations). :data:`MAX_CONSECUTIVE` duplicates in a row end the search: the
sampler has nothing new to offer.

In a farm two workers can propose the same candidate while neither has finished it. Before
measuring, a trial claims the candidate in the storage (:func:`claim_candidate`, one winner
however many race); a loser waits for the winner's trial and reuses its results. When the
winner's trial fails (its worker died, or it raised), the next claim is keyed on that
failure, so again one trial measures the candidate.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .claims import claim

MAX_CONSECUTIVE = 20
COPIED = ("estimate", "proxy", "proxy_curve", "profile", "feasible", "violations", "pruned")


def is_duplicate(trial: FrozenTrial) -> bool:
    return "duplicate_of" in trial.user_attrs


def find_twin(study: optuna.Study, model_config: dict[str, Any]) -> FrozenTrial | None:
    """An earlier original trial with this candidate, measured or pruned by the proxy."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if is_duplicate(t) or t.user_attrs.get("model_config") != model_config:
            continue
        if t.state == TrialState.COMPLETE or "pruned" in t.user_attrs:  # not a cost-model rejection
            return t
    return None


def reuse(trial: optuna.Trial, twin: FrozenTrial) -> list[float]:
    """Copies ``twin``'s results into ``trial``; returns its values, or prunes like it was."""
    trial.set_user_attr("duplicate_of", twin.number)
    for key in COPIED:
        if key in twin.user_attrs:
            trial.set_user_attr(key, twin.user_attrs[key])
    for key, value in twin.constraints.items():
        trial.set_constraint(key, value)
    if twin.state == TrialState.PRUNED:
        raise optuna.TrialPruned(f"same candidate as trial {twin.number}: {twin.user_attrs['pruned']}")
    return list(twin.values)


def trailing_duplicates(study: optuna.Study) -> int:
    """How many of the latest finished trials in a row were duplicates."""
    n = 0
    for t in reversed(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))):
        if not is_duplicate(t):
            break
        n += 1
    return n


def candidate_key(model_config: dict[str, Any], after_failed: int | None = None) -> str:
    """The claim key of a candidate; a new one after each failed trial that had claimed it."""
    digest = hashlib.sha256(json.dumps(model_config, sort_keys=True).encode()).hexdigest()[:24]
    return f"candidate/{digest}/{'first' if after_failed is None else after_failed}"


def claim_candidate(trial: optuna.Trial, storage: Any, model_config: dict[str, Any], worker: str,
                    poll_s: float, timeout_s: float, heartbeat: Callable[[], None],
                    say: Callable[[str], None]) -> FrozenTrial | None:
    """Claims ``model_config`` for ``trial``; returns ``None`` when this trial must measure it.

    Otherwise returns the finished trial of another worker that measured (or pruned) it, after
    waiting for it. ``heartbeat`` is called while waiting (it fails dead workers' trials, so a
    killed winner does not hold this trial forever); after ``timeout_s`` of waiting on a trial
    still running (the journal storage has no heartbeats) this trial measures it itself.
    """
    after_failed = None
    while True:
        mine = {"worker": worker, "trial": trial.number}
        winner = claim(trial.study, storage, candidate_key(model_config, after_failed), mine)
        if winner["trial"] == trial.number:
            return None
        # by number: a study copied to another storage (copy_study) keeps numbers, not ids
        storage_of_study = trial.study._storage
        winner_id = storage_of_study.get_trial_id_from_study_id_trial_number(trial.study._study_id, winner["trial"])
        say(f"trial {trial.number}: trial {winner['trial']} (worker {winner['worker']}) is measuring the same "
            "candidate; waiting for its results")
        waited_since = time.time()
        while True:
            state = storage_of_study.get_trial(winner_id).state
            if state != TrialState.RUNNING and state != TrialState.WAITING:
                break
            if time.time() - waited_since > timeout_s:
                say(f"trial {trial.number}: trial {winner['trial']} still runs after {timeout_s:.0f} s "
                    "(search.workers.wait_timeout_s); measuring the candidate here")
                return None
            heartbeat()
            time.sleep(poll_s)
        if state == TrialState.FAIL:
            after_failed = winner["trial"]
            continue
        # Finished: reused when it was measured or pruned by the proxy; anything else (the
        # profiler could not measure it) is evaluated again by this trial.
        return find_twin(trial.study, model_config)
