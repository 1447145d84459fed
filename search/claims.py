"""Claims that exactly one worker of a farm wins, decided by the storage itself.

Two things in a farm must happen once however many workers race for them: writing the
study's report (several workers see the study finish at the same moment) and measuring a
candidate (two workers' samplers can propose the same one at the same moment; see
:mod:`.duplicates`). A claim is a study user attribute -- ``report/<finished trials>``
holding who wrote the report and where, ``candidate/...`` holding the trial that measures
the candidate -- decided atomically by the storage:

- RDB storages (SQLite, PostgreSQL, MySQL): an ``INSERT`` into Optuna's
  ``study_user_attributes`` table, whose ``(study_id, key)`` pair is unique, so exactly one
  insert succeeds however many workers try at once. (Optuna's own ``set_user_attr``
  overwrites an existing value, so it cannot serve as a claim.)
- the journal storage: every worker appends its own key; the log is totally ordered, and
  the first claim in it wins (a study's attributes replay in log order).

A report's key counts finished trials, so a study that later grows (a larger ``search.n_trials``)
gets a new report, while a worker re-run on an unchanged study points at the existing one.
"""

from __future__ import annotations

import json
from typing import Any

import optuna
from optuna.storages import JournalStorage, RDBStorage
from optuna.trial import TrialState

PREFIX = "report/"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


def claim_key(study: optuna.Study) -> str:
    """The claim's key for the study as it stands: one report per number of finished trials."""
    return f"{PREFIX}{len(study.get_trials(deepcopy=False, states=FINISHED))}"


def claim(study: optuna.Study, storage: Any, key: str, record: dict[str, Any]) -> dict[str, Any]:
    """Claims ``key`` for ``record`` unless another worker did first; returns the winning record.

    ``storage`` is the study's underlying storage (:class:`RDBStorage` or :class:`JournalStorage`,
    not the cache Optuna wraps around it). ``record`` names its ``worker``. The caller won iff
    the returned record is its own.
    """
    study_id = study._study_id
    if isinstance(storage, RDBStorage):
        return _claim_rdb(storage, study_id, key, record)
    if isinstance(storage, JournalStorage):
        return _claim_journal(storage, study_id, key, record)
    raise TypeError(f"no atomic claim for storage {type(storage).__name__}: "
                    "accepted RDBStorage or JournalStorage")


def _claim_rdb(storage: RDBStorage, study_id: int, key: str, record: dict[str, Any]) -> dict[str, Any]:
    import sqlalchemy
    from optuna.storages._rdb.models import StudyUserAttributeModel

    table = StudyUserAttributeModel.__table__
    try:
        with storage.engine.begin() as connection:
            connection.execute(table.insert().values(study_id=study_id, key=key, value_json=json.dumps(record)))
    except sqlalchemy.exc.IntegrityError:
        pass  # another worker's insert came first: the unique (study_id, key) refused ours
    return storage.get_study_user_attrs(study_id)[key]


def _claim_journal(storage: JournalStorage, study_id: int, key: str, record: dict[str, Any]) -> dict[str, Any]:
    mine = f"{key}/{record['worker']}/{record.get('trial', '')}"  # unique: one worker runs one trial at a time
    storage.set_study_user_attr(study_id, mine, record)
    attrs = storage.get_study_user_attrs(study_id)  # replayed in log order, ours included
    first = next(k for k in attrs if k.startswith(f"{key}/"))
    return attrs[first]
