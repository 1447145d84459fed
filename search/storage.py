"""Resolves ``search.storage`` into an Optuna storage; a malformed URL is a clear error.

Accepted forms:

- null: ``sqlite:///<run_dir>/study.db`` (one machine, several processes);
- ``sqlite:///PATH`` or any SQLAlchemy URL (``postgresql://``, ``mysql+pymysql://``...):
  Optuna's RDB storage, with heartbeats so a live worker retries a dead worker's trial.
  ``postgresql://`` uses psycopg 3 (SQLAlchemy 2.1's default PostgreSQL driver; the ``farm``
  extra installs it; ``postgresql+psycopg://`` names it explicitly for older SQLAlchemy);
- ``journal:///PATH``: Optuna's journal file (``JournalFileBackend``) for file systems
  where SQLite locking is unreliable (e.g. NFS). Optuna's journal storage has no
  heartbeat, so a killed worker's trial stays RUNNING and is not retried.

Which storages retry a dead worker's trial: only the RDB ones (SQLite, PostgreSQL, MySQL,
any SQLAlchemy URL), through heartbeats (:data:`RETRY_NOTE` says it at start-up).

``grpc://HOST:PORT`` (Optuna's ``GrpcStorageProxy``) is not accepted: edgesmith neither
declares nor tests ``grpcio``, so instead of a path that only constructs the proxy it is
an error naming the accepted storages. Machines that cannot share a file can share a
database server (``postgresql://...``), which also retries dead workers' trials.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage

from edgesmith.core.errors import ConfigError

ACCEPTED = ("null (SQLite file in the run directory), sqlite:///PATH, journal:///PATH, "
            "or an SQLAlchemy database URL such as postgresql://USER:PASS@HOST/DB")

#: what a worker says at start-up about a dead worker's trial, by storage kind
RETRY_NOTE = {
    "sqlite": "a dead worker's trial is retried: RDB storage with heartbeats (a trial with no heartbeat "
              "for search.workers.grace_period_s is failed and re-queued, at most search.workers.max_retry "
              "times)",
    "rdb": "a dead worker's trial is retried: RDB storage with heartbeats (a trial with no heartbeat "
           "for search.workers.grace_period_s is failed and re-queued, at most search.workers.max_retry "
           "times)",
    "journal": "a dead worker's trial is NOT retried: the journal storage has no heartbeats, so a killed "
               "worker's trial stays RUNNING and the other workers stop waiting for it after "
               "search.workers.wait_timeout_s; only RDB storages (sqlite:///..., postgresql://..., "
               "mysql+pymysql://...) retry it",
}


@dataclass
class ResolvedStorage:
    """The Optuna storage object plus what the study needs to know about it."""

    url: str
    kind: str  # sqlite | rdb | journal
    storage: Any
    heartbeat: bool

    @property
    def retries_dead_trials(self) -> bool:
        """Whether a trial whose worker died is failed and re-queued (only with heartbeats)."""
        return self.heartbeat

    @property
    def retry_note(self) -> str:
        """One sentence for the start-up log: is a dead worker's trial retried on this storage?"""
        return RETRY_NOTE[self.kind]


def _bad(url: Any, detail: str) -> ConfigError:
    return ConfigError("search.storage", url, ACCEPTED, detail=detail)


def resolve_storage(url: str | None, run_dir: Path, heartbeat_interval_s: int = 5,
                    grace_period_s: int = 15, max_retry: int = 2) -> ResolvedStorage:
    """Builds the storage for ``url`` (see the module docstring for the accepted forms)."""
    if url is None or url == "":
        url = f"sqlite:///{(Path(run_dir) / 'study.db').resolve()}"
    if not isinstance(url, str) or "://" not in url:
        raise _bad(url, "no scheme: expected SCHEME://...")
    scheme, rest = url.split("://", 1)
    if scheme == "journal":
        if not rest.startswith("/") or len(rest) < 2:
            raise _bad(url, "a journal URL needs an absolute path: journal:///abs/path/study.log")
        path = Path(rest)
        path.parent.mkdir(parents=True, exist_ok=True)
        return ResolvedStorage(url, "journal", JournalStorage(JournalFileBackend(str(path))), False)
    if scheme == "grpc":
        raise _bad(url, "the gRPC storage proxy is not supported (grpcio is not a dependency of edgesmith); "
                        "machines that cannot share a file can share a database server instead "
                        "(postgresql://..., which also retries a dead worker's trial)")
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        parsed = sqlalchemy.engine.make_url(url)
        parsed.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise _bad(url, f"not a storage URL Optuna can open: {exc}") from exc
    except ImportError as exc:
        raise ConfigError("search.storage", url, "a database whose driver is installed",
                          detail=f"{type(exc).__name__}: {exc}") from exc
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise _bad(url, "an in-memory or path-less SQLite database cannot be shared or resumed; "
                            "use sqlite:///PATH")
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    import warnings

    with warnings.catch_warnings():
        # Heartbeats are "experimental" in Optuna since 2.x; they are what lets a farm recover.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            storage = RDBStorage(
                url,
                heartbeat_interval=heartbeat_interval_s,
                grace_period=grace_period_s,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry),
                # SQLite serialises writers; waiting on its lock beats failing a worker's write.
                engine_kwargs={"connect_args": {"timeout": 60}} if parsed.get_backend_name() == "sqlite" else None,
            )
        except ImportError as exc:  # the database driver (DBAPI module) is not installed
            cause = exc.__cause__ or exc
            raise ConfigError("search.storage", url, "a database whose driver is installed",
                              detail=f"{type(cause).__name__}: {cause}; for PostgreSQL install the farm extra "
                                     "(pip install 'edgesmith[farm]', psycopg 3)") from exc
    kind = "sqlite" if parsed.get_backend_name() == "sqlite" else "rdb"
    return ResolvedStorage(url, kind, storage, True)


def fail_stale(study: optuna.Study) -> None:
    """Fails trials whose worker stopped beating (and queues their retries); a no-op without heartbeats.

    Optuna's own check skips a RUNNING trial that has no heartbeat row at all, which is what a
    worker killed between creating a trial and its first heartbeat leaves behind: such a trial
    would hold its place in ``n_trials`` forever. It is failed here too, once it started more
    than the grace period ago, and goes through the same retry callback.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    storage = study._storage
    rdb = getattr(storage, "_backend", storage)  # Optuna wraps an RDBStorage in a cache
    if isinstance(rdb, RDBStorage) and rdb.heartbeat_interval is not None:
        for trial_id in _never_beaten_trial_ids(rdb, study._study_id):
            try:
                failed = storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker failed it first
                continue
            callback = storage.get_heartbeat_stale_trial_callback()
            if failed and callback is not None:
                callback(study, storage.get_trial(trial_id))


def _never_beaten_trial_ids(storage: RDBStorage, study_id: int) -> list[int]:
    """RUNNING trials with no heartbeat row that started more than the grace period ago."""
    import datetime

    from optuna.storages._rdb import models

    grace = datetime.timedelta(seconds=storage.grace_period or 2 * storage.heartbeat_interval)
    # Optuna stamps datetime_start with the worker's local clock, so compare with the same clock.
    now = datetime.datetime.now()
    session = storage.scoped_session()
    try:
        from sqlalchemy.orm import selectinload

        running = (session.query(models.TrialModel)
                   .options(selectinload(models.TrialModel.heartbeats))  # one query, not one per trial
                   .filter(models.TrialModel.study_id == study_id,
                           models.TrialModel.state == optuna.trial.TrialState.RUNNING)
                   .all())
        return [t.trial_id for t in running
                if not t.heartbeats and t.datetime_start is not None and now - t.datetime_start > grace]
    finally:
        session.close()
