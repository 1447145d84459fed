"""The hardware-in-the-loop study: Optuna multi-objective search over measured candidates.

One call of :func:`run_search` is one worker. Workers started anywhere with the same
``search.storage`` and ``search.study_name`` share one study (a device farm); each checks
that its device fingerprint matches the study's target before it measures anything.
``search.n_trials`` counts the study's evaluated trials (measured, or pruned by the proxy;
candidates the analytic cost model rejects are not counted), so a re-run resumes with
what is left and never redoes a finished trial; a trial whose worker died (no heartbeat for
``grace_period_s``) is failed and queued again with the same parameters for any live worker
on RDB storages (SQLite, PostgreSQL, MySQL); the journal storage has no heartbeats, so there
it stays RUNNING. Each worker says which at start-up (and warns on the journal). A queued
trial (a dead worker's retry) is run even past ``n_trials``; a worker stops when the study
has ``n_trials`` and nothing runs or waits. The study's report is written once, by the worker
that wins the storage's atomic claim (:mod:`.claims`), unless
``search.workers.report=every_worker``.

Per trial: the space suggests a candidate (one already evaluated, or being evaluated by
another worker, reuses its results, :mod:`.duplicates`); the analytic cost model rejects candidates
outside the parameter range, embedding share or memory budget without building them
(pruned, marked infeasible); the quality proxy runs (its intermediate values may prune
the trial); the profiler measures it on the target. Constraints go to Optuna with
``trial.set_constraint`` (Optuna 5's replacement of the deprecated ``constraints_func``),
so NSGA-II, NSGA-III, TPE and GP samplers all treat infeasible trials as such.
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console

from edgesmith.core.errors import ConfigError, EdgesmithError
from edgesmith.core.plugin_manager import PluginManager, get_plugin_manager
from edgesmith.core.options import PluginChoice
from edgesmith.core.profiler import CandidateNotMeasurable, QualityProxy, TrialPruned

from .config import SearchConfig
from .cost import estimate_cost
from .duplicates import MAX_CONSECUTIVE, claim_candidate, find_twin, is_duplicate, reuse, trailing_duplicates
from .claims import claim, claim_key
from .space import SearchSpace, layer_pattern
from .storage import ResolvedStorage, fail_stale, resolve_storage

CONSTRAINT_KEYS = ("params_min", "params_max", "embedding_share", "memory", "decode_ms", "prefill_ms")
OBJECTIVE_SOURCE = {"decode_ms": "decode_ms_per_token", "peak_rss_mb": "peak_rss_mb", "prefill_ms": "prefill_ms"}


class InfeasibleSpaceError(EdgesmithError):
    """Too many trials violated the constraints and none satisfied them."""


class FingerprintMismatchError(EdgesmithError):
    """This worker's device differs from the study's target device."""


class TrialFailed(RuntimeError):
    """A trial's measurement or proxy raised; the study records it and goes on."""


class SearchFailedError(EdgesmithError):
    """Too many trials failed (the profiler or proxy raised)."""


@dataclass
class SearchResult:
    """What a worker leaves behind: counts, the chosen trial and the files written."""

    study_name: str
    storage_url: str
    run_dir: Path
    states: dict[str, int]
    chosen: dict[str, Any] | None = None
    chosen_dir: Path | None = None
    model_yaml: Path | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    spearman: dict[str, float | None] = field(default_factory=dict)
    trials_run_here: list[int] = field(default_factory=list)
    #: who writes the study's report and where (``search.workers.report=once``); None: not claimed
    report_writer: dict[str, Any] | None = None


def make_sampler(cfg: SearchConfig, seed: int) -> optuna.samplers.BaseSampler:
    """The configured sampler (``search.sampler`` and ``search.sampler_options``)."""
    options = dict(cfg.sampler_options)
    factories = {
        "nsga2": optuna.samplers.NSGAIISampler,
        "nsga3": optuna.samplers.NSGAIIISampler,
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "gp": optuna.samplers.GPSampler,
    }
    try:
        return factories[cfg.sampler](seed=seed, **options)
    except TypeError as exc:
        raise ConfigError("search.sampler_options", options, f"keyword arguments of {cfg.sampler}'s sampler",
                          detail=str(exc)) from exc


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _relative(value: float, limit: float | None) -> float:
    """Constraint value: > 0 when ``value`` exceeds ``limit``, scaled by the limit."""
    if limit is None:
        return 0.0
    return (value - limit) / max(abs(limit), 1e-12)


def check_fingerprint(study: optuna.Study, mine: dict[str, Any], cfg: SearchConfig,
                      runtime_keys: tuple[str, ...] = ()) -> None:
    """Records the target fingerprint on first use; refuses a worker whose device differs.

    Compared: ``search.workers.fingerprint_keys`` plus the profiler's ``runtime_keys`` (its
    runtime build, quant type), so measurements of different runtimes never mix in one study
    unless ``search.workers.check_fingerprint=false``."""
    target = study.user_attrs.get("target_fingerprint")
    if target is None:
        study.set_user_attr("target_fingerprint", mine)
        return
    if not cfg.workers.check_fingerprint:
        return
    diffs = [f"{k}: study target {target.get(k)!r}, this worker {mine.get(k)!r}"
             for k in dict.fromkeys([*cfg.workers.fingerprint_keys, *runtime_keys]) if target.get(k) != mine.get(k)]
    if diffs:
        raise FingerprintMismatchError(
            f"this worker's device does not match the target of study '{study.study_name}' "
            f"({'; '.join(diffs)}); run it on the target device, use another search.study_name, or "
            "set search.workers.check_fingerprint=false to measure here anyway")


def open_study(cfg: SearchConfig, resolved: ResolvedStorage) -> tuple[optuna.Study, bool]:
    """Creates the study, or joins it when another worker (or an earlier run) created it."""
    directions = ["minimize"] * len(cfg.objectives)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=cfg.pruning_startup_trials) \
        if len(directions) == 1 else None
    try:
        study = optuna.create_study(study_name=cfg.study_name, storage=resolved.storage, directions=directions,
                                    sampler=make_sampler(cfg, cfg.seed), pruner=pruner)
        study.set_user_attr("objectives", list(cfg.objectives))
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    # A joining worker needs its own random stream, or it would propose the same candidates.
    seed = (cfg.seed + zlib.crc32(worker_id().encode())) % 2**31
    study = optuna.load_study(study_name=cfg.study_name, storage=resolved.storage,
                              sampler=make_sampler(cfg, seed), pruner=pruner)
    existing = study.user_attrs.get("objectives")
    if existing is not None and list(existing) != list(cfg.objectives):
        raise ConfigError("search.objectives", list(cfg.objectives),
                          f"the objectives of the existing study '{cfg.study_name}': {existing}")
    return study, False


def build_proxy(plugins: PluginManager, choice: PluginChoice, key: str, offered: dict[str, Any]) -> QualityProxy:
    """The quality proxy ``choice`` names, given those of the ``offered`` inputs (a corpus, a
    tokenizer trainer) that its ``runtime_inputs`` asks for; errors name ``key.name`` / ``key.options``."""
    cls = plugins.get("quality_proxy", choice.name, key=f"{key}.name")
    wanted = {k: v for k, v in offered.items() if k in cls.runtime_inputs}
    return plugins.build("quality_proxy", choice.name, choice.options, key=f"{key}.options", name_key=f"{key}.name",
                         **wanted)


class Objective:
    """One trial: sample, reject by analytic cost, proxy (with pruning), measure, constrain."""

    def __init__(self, cfg: SearchConfig, space: SearchSpace, profiler: Any, proxy: Any,
                 plugins: PluginManager, console: Console, storage: Any):
        self.cfg, self.space, self.profiler, self.proxy = cfg, space, profiler, proxy
        self.storage = storage  # the study's underlying storage, for candidate claims
        self.plugins, self.console = plugins, console
        # The analytic estimate is made at what the profiler measures, so the two are comparable.
        self.context, self.dtype_bytes = profiler.estimate_basis()
        self.worker = worker_id()
        self.ran: list[int] = []

    def _prune_rule(self, trial: optuna.Trial, step: int, value: float) -> bool:
        """Median rule on the proxy curve, usable in multi-objective studies (Optuna's pruners are not)."""
        if len(self.cfg.objectives) == 1:
            trial.report(value, step)
            return trial.should_prune()
        if not self.cfg.pruning:
            return False
        others = [t.user_attrs["proxy_curve"][str(step)]
                  for t in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if str(step) in t.user_attrs.get("proxy_curve", {})]
        return len(others) >= self.cfg.pruning_startup_trials and value > statistics.median(others)

    def __call__(self, trial: optuna.Trial) -> list[float]:
        self.ran.append(trial.number)
        trial.set_user_attr("worker", self.worker)
        try:
            return self._evaluate(trial)
        except (optuna.TrialPruned, ConfigError):
            raise  # pruned, or a config mistake the user must fix: not a failed measurement
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("error", message[-2000:])
            self.console.print(f"trial {trial.number}: [red]failed[/red] ({message[:300]})", highlight=False)
            raise TrialFailed(message) from exc

    def _evaluate(self, trial: optuna.Trial) -> list[float]:
        c = self.cfg.constraints
        model_config = self.space.sample(trial)
        trial.set_user_attr("model_config", model_config)
        trial.set_user_attr("pattern", layer_pattern(model_config))
        twin = find_twin(trial.study, model_config)
        if twin is not None:
            return self._reuse(trial, twin)
        try:
            est = estimate_cost(model_config, self.context, 1, self.dtype_bytes, self.plugins)
        except ConfigError as exc:  # an operator refused its options at these dims
            self._infeasible(trial, {}, [f"invalid candidate: {exc}"])
        trial.set_user_attr("estimate", est.to_dict())
        values = {
            "params_min": _relative(c.min_params, est.params) if c.min_params else 0.0,
            "params_max": _relative(est.params, c.max_params),
            "embedding_share": _relative(est.embedding_share, c.max_embedding_share),
            "memory": _relative(est.memory_mb, c.peak_memory_mb),
        }
        reasons = []
        if values["params_min"] > 0:
            reasons.append(f"params {est.params:,} below constraints.min_params")
        if values["params_max"] > 0:
            reasons.append(f"params {est.params:,} above constraints.max_params")
        if values["embedding_share"] > 0:
            reasons.append(f"embedding share {est.embedding_share:.2f} above constraints.max_embedding_share")
        if values["memory"] > 0:
            reasons.append(f"estimated weights+state {est.memory_mb:.0f} MB above constraints.peak_memory_mb")
        unmeasurable = self.profiler.why_not_measurable(model_config)
        if unmeasurable:
            reasons.append(unmeasurable)
        if reasons:
            self._infeasible(trial, values, reasons)
        w = self.cfg.workers
        twin = claim_candidate(trial, self.storage, model_config, self.worker, w.poll_s, w.wait_timeout_s,
                               heartbeat=lambda: fail_stale(trial.study),
                               say=lambda line: self.console.print(line, highlight=False))
        if twin is not None:
            return self._reuse(trial, twin)

        curve: dict[str, float] = {}

        def report(value: float, step: int) -> bool:
            curve[str(step)] = float(value)
            trial.set_user_attr("proxy_curve", dict(curve))
            return self._prune_rule(trial, step, value)

        proxy_start = time.perf_counter()
        try:
            proxy_value = float(self.proxy.evaluate(model_config, report=report))
        except TrialPruned as exc:
            trial.set_user_attr("pruned", str(exc))
            raise optuna.TrialPruned(str(exc)) from exc
        finally:
            trial.set_user_attr("proxy_s", time.perf_counter() - proxy_start)
        trial.set_user_attr("proxy", proxy_value)
        profile = {}
        if any(o != "proxy" for o in self.cfg.objectives) or c.peak_memory_mb or c.decode_ms or c.prefill_ms:
            try:
                profile = self.profiler.profile(model_config)
            except CandidateNotMeasurable as exc:
                self._infeasible(trial, values, [str(exc)])
            trial.set_user_attr("profile", profile)
        measured = {
            "memory": _relative(profile["peak_rss_mb"], c.peak_memory_mb) if profile else values["memory"],
            "decode_ms": _relative(profile["decode_ms_per_token"], c.decode_ms) if profile else 0.0,
            "prefill_ms": _relative(profile["prefill_ms"], c.prefill_ms) if profile else 0.0,
        }
        values.update(measured)
        for key in CONSTRAINT_KEYS:
            trial.set_constraint(key, values[key])
        violated = [k for k in CONSTRAINT_KEYS if values[k] > 0]
        trial.set_user_attr("feasible", not violated)
        trial.set_user_attr("violations", [f"measured {k} over budget" for k in violated])
        result = [proxy_value if o == "proxy" else float(profile[OBJECTIVE_SOURCE[o]]) for o in self.cfg.objectives]
        self.console.print(
            f"trial {trial.number}: {layer_pattern(model_config)} | params {est.params:,} | "
            + " | ".join(f"{o}={v:.4g}" for o, v in zip(self.cfg.objectives, result))
            + ("" if not violated else f" | [yellow]infeasible: {', '.join(violated)}[/yellow]"),
            highlight=False)
        return result

    def _reuse(self, trial: optuna.Trial, twin: optuna.trial.FrozenTrial) -> list[float]:
        self.console.print(f"trial {trial.number}: same candidate as trial {twin.number}, its results "
                           "reused (not counted)", highlight=False)
        return reuse(trial, twin)

    def _infeasible(self, trial: optuna.Trial, values: dict[str, float], reasons: list[str]) -> None:
        # An invalid candidate has no cost values: it is marked violating through params_max.
        values = values or {"params_max": 1.0}
        for key in CONSTRAINT_KEYS:
            trial.set_constraint(key, max(values.get(key, 0.0), 0.0))
        trial.set_user_attr("feasible", False)
        trial.set_user_attr("violations", reasons)
        self.console.print(f"trial {trial.number}: [yellow]infeasible[/yellow] ({'; '.join(reasons)})",
                           highlight=False)
        raise optuna.TrialPruned("infeasible: " + "; ".join(reasons))


def _counts(study: optuna.Study) -> Counter:
    return Counter(t.state.name for t in study.get_trials(deepcopy=False))


def _evaluated(study: optuna.Study) -> int:
    """Trials that count toward ``n_trials``: measured (complete) or pruned by the proxy.

    Candidates rejected by the analytic cost model cost milliseconds and are not counted,
    so ``n_trials`` buys that many real evaluations; ``max_infeasible`` stops a space where
    nothing is feasible.
    """
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    return sum((t.state == TrialState.COMPLETE or t.user_attrs.get("feasible") is not False)
               and not is_duplicate(t) for t in trials)


def _check_infeasible(study: optuna.Study, cfg: SearchConfig) -> None:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    feasible = [t for t in trials if t.user_attrs.get("feasible") is True]
    infeasible = [t for t in trials if t.user_attrs.get("feasible") is False]
    if feasible or len(infeasible) < cfg.max_infeasible:
        return
    reasons = Counter(r.split(" (")[0] for t in infeasible for r in t.user_attrs.get("violations", []))
    detail = "; ".join(f"{n}x {r}" for r, n in reasons.most_common(6))
    raise InfeasibleSpaceError(
        f"the search space looks infeasible: {len(infeasible)} trials of study '{study.study_name}' violated "
        f"the constraints and none met them (search.max_infeasible={cfg.max_infeasible}). Violations: {detail}. "
        "Widen search.space or loosen search.constraints.")


def _check_failures(study: optuna.Study, cfg: SearchConfig) -> None:
    failed = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)) if "error" in t.user_attrs]
    if len(failed) >= cfg.max_infeasible:
        raise SearchFailedError(
            f"{len(failed)} trials of study '{study.study_name}' failed (search.max_infeasible={cfg.max_infeasible}); "
            f"last error: {failed[-1].user_attrs['error']}")


def run_search(cfg: SearchConfig, run_dir: str | Path, plugins: PluginManager | None = None,
               proxy_kwargs: dict[str, Any] | None = None, console: Console | None = None,
               write_outputs: bool = True, report: str | None = None) -> SearchResult:
    """Runs (or joins, or resumes) the study until it has ``cfg.n_trials`` finished trials.

    ``report`` overrides ``cfg.workers.report`` (``once`` or ``every_worker``); with
    ``write_outputs=False`` no file is written at all.
    """
    plugins = plugins or get_plugin_manager()
    console = console or Console(stderr=True)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = SearchSpace(cfg.space, plugins)  # validates operator names before anything runs
    profiler = plugins.build("profiler", cfg.profiler.name, cfg.profiler.options, key="search.profiler.options",
                             name_key="search.profiler.name")
    proxy = build_proxy(plugins, cfg.proxy, "search.proxy", proxy_kwargs or {})
    w = cfg.workers
    resolved = resolve_storage(cfg.storage, run_dir, w.heartbeat_interval_s, w.grace_period_s, w.max_retry)
    study, created = open_study(cfg, resolved)
    fingerprint = profiler.fingerprint()
    check_fingerprint(study, fingerprint, cfg, tuple(profiler.fingerprint_keys))
    objective = Objective(cfg, space, profiler, proxy, plugins, console, resolved.storage)
    done0 = _evaluated(study)
    console.print(f"study '{cfg.study_name}' on {resolved.kind} storage "
                  f"({'created' if created else f'joined, {done0} finished trials'}); "
                  f"target {cfg.n_trials} finished trials", highlight=False)
    # Say at start-up whether a killed worker's trial will be retried on this storage.
    console.print(f"storage {resolved.kind}: {resolved.retry_note}", highlight=False)
    runtime = {k: fingerprint.get(k) for k in profiler.fingerprint_keys}
    console.print(f"profiler {cfg.profiler.name} on {fingerprint.get('cpu_model')} "
                  f"({fingerprint.get('threads')} threads)"
                  + "".join(f"; {k}: {v}" for k, v in runtime.items()), highlight=False)
    if not resolved.retries_dead_trials:
        logging.getLogger("edgesmith.search").warning("storage %s: %s", resolved.kind, resolved.retry_note)

    stop = _work(study, cfg, objective, console)
    result = SearchResult(study_name=cfg.study_name, storage_url=resolved.url, run_dir=run_dir,
                          states=dict(_counts(study)), trials_run_here=list(objective.ran))
    if write_outputs:
        _report(study, cfg, resolved, result, stop, report or w.report, console, plugins)
    return result


def _work(study: optuna.Study, cfg: SearchConfig, objective: Objective, console: Console) -> str:
    """Runs trials until the study is finished; returns why it stopped.

    ``finished``: ``n_trials`` evaluated and no trial running or queued; ``stopped_waiting``:
    other workers' trials still ran after ``search.workers.wait_timeout_s``; ``timeout`` or
    ``exhausted``: this worker stopped early (others may go on).
    """
    w = cfg.workers
    started = time.time()
    waited_since: float | None = None
    while True:
        fail_stale(study)
        _check_infeasible(study, cfg)
        _check_failures(study, cfg)
        counts = _counts(study)
        done = _evaluated(study)
        if counts["WAITING"]:
            # A dead worker's trial queued again (or a trial a user enqueued): the study owes it
            # an evaluation, even past n_trials.
            waited_since = None
            study.optimize(objective, n_trials=1, catch=(TrialFailed,))
            continue
        if done >= cfg.n_trials and counts["RUNNING"] == 0:
            return "finished"
        if cfg.timeout_s is not None and time.time() - started > cfg.timeout_s:
            console.print(f"search.timeout_s={cfg.timeout_s} reached with {done} finished trials")
            return "timeout"
        if trailing_duplicates(study) >= MAX_CONSECUTIVE:
            console.print(f"the sampler proposed only known candidates {MAX_CONSECUTIVE} times in a row: "
                          f"the space looks exhausted; stopping with {done} finished trials")
            return "exhausted"
        if done + counts["RUNNING"] >= cfg.n_trials:
            # Other workers hold the last trials; wait in case one dies and its trial is requeued.
            waited_since = waited_since or time.time()
            if time.time() - waited_since > w.wait_timeout_s:
                console.print("stopped waiting for other workers' running trials "
                              f"(search.workers.wait_timeout_s={w.wait_timeout_s})")
                return "stopped_waiting"
            time.sleep(w.poll_s)
            continue
        waited_since = None
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))


def _report(study: optuna.Study, cfg: SearchConfig, resolved: ResolvedStorage, result: SearchResult,
            stop: str, mode: str, console: Console, plugins: PluginManager) -> None:
    """Writes the study's report here, unless another worker writes (or wrote) it."""
    from .report import write_outputs

    if mode == "every_worker":
        write_outputs(study, cfg, result, console, plugins)
        return
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if stop in ("timeout", "exhausted") and running:
        console.print(f"{len(running)} trials of other workers are still running: the last worker to finish "
                      "writes the study's report", highlight=False)
        return
    record = {"worker": worker_id(), "run_dir": str(result.run_dir.resolve()),
              "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    winner = claim(study, resolved.storage, claim_key(study), record)
    result.report_writer = winner
    if winner != record:
        console.print(f"the study's report is written once, by worker {winner['worker']} into {winner['run_dir']} "
                      "(search.workers.report=every_worker writes a copy here too)", highlight=False)
        return
    write_outputs(study, cfg, result, console, plugins)
