"""Candidates the sampler proposes again: their earlier results are reused, not re-measured.

Categorical spaces are small, and Optuna's samplers propose the same candidate again
(NSGA-II's random first generation did twice in eight trials; crossover of two parents that
share most genes does often). A trial whose candidate equals an earlier finished trial's
copies that trial's proxy value, measurements and constraints, so the sampler learns the
same thing, costs milliseconds, and does not count toward ``search.n_trials`` (which buys
distinct evaluations). :data:`MAX_CONSECUTIVE` duplicates in a row end the search: the
sampler has nothing new to offer.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

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
