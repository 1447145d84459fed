"""The pipeline runner: runs the configured stages in order, skipping and resuming.

Each stage writes under ``<run_dir>/<stage>/`` and, when done, a completion record
``_complete.json`` holding its artifact, its wall time (``started``, ``finished``,
``seconds``) and a fingerprint of its options, the config sections it depends on and its
predecessors' fingerprints. Re-running the same run
directory skips stages whose record matches; a stage whose inputs changed is re-run after
its old directory is kept aside (``<stage>.stale-N``), so nothing already written is lost.
An interrupted stage finds its own checkpoints in its directory and resumes from them.

Under a multi-process launch (:mod:`.distributed`) every process walks the same stages:
data-parallel stages run everywhere, the others on the main process (their artifact is sent
to the rest), and only the main process writes directories, records and messages.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import traceback
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

from . import distributed
from .errors import ConfigError, StageError
from .plugin_manager import PluginManager, get_plugin_manager
from .stage import Artifact, Stage, StageContext

COMPLETE = "_complete.json"
FAILED = "_failed.json"


def plan_stages(cfg: Any, plugins: PluginManager) -> list[Stage]:
    """Resolves and validates every stage before any work starts."""
    names = list(OmegaConf.select(cfg, "pipeline.stages", default=None) or [])
    if not names:
        raise ConfigError("pipeline.stages", names,
                          f"a non-empty list of stage names from: {', '.join(plugins.names('stage'))}")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError("pipeline.stages", names, "each stage at most once",
                          detail=f"repeated: {', '.join(duplicates)}")
    seed = OmegaConf.select(cfg, "seed", default=0, throw_on_resolution_failure=False)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError("seed", seed, "an integer (the default seed of every stage)")
    stages = []
    for i, name in enumerate(names):
        stages.append(plugins.build("stage", name, OmegaConf.select(cfg, name, default=None), key=name,
                                    name_key=f"pipeline.stages[{i}]"))
    # Plugin names and input files of every stage, before the first one does any work.
    for stage in stages:
        stage.check(cfg, plugins)
    return stages


def _fingerprint(stage: Stage, cfg: Any, upstream: str) -> str:
    parts = {"stage": stage.name, "options": _plain(stage.options), "upstream": upstream}
    for key in stage.config_keys:
        value = cfg[key] if key in cfg else None
        # A key may hold a section (model) or a scalar (init_from=DIR).
        parts[key] = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _plain(options: Any) -> Any:
    import dataclasses

    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else options


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _set_aside(stage_dir: Path) -> Path:
    n = 1
    while (aside := stage_dir.with_name(f"{stage_dir.name}.stale-{n}")).exists():
        n += 1
    stage_dir.rename(aside)
    return aside


def run_pipeline(cfg: Any, run_dir: str | Path, plugins: PluginManager | None = None,
                 console: Console | None = None) -> dict[str, Artifact]:
    """Runs ``cfg.pipeline.stages`` in ``run_dir``; returns every stage's artifact by name."""
    plugins = plugins or get_plugin_manager()
    main = distributed.is_main()
    console = console or Console(stderr=True, quiet=not main)
    run_dir = Path(run_dir)
    stages = plan_stages(cfg, plugins)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    artifacts: dict[str, Artifact] = {}
    upstream = ""
    for index, stage in enumerate(stages, start=1):
        name = stage.name
        stage_dir = run_dir / name
        fingerprint = _fingerprint(stage, cfg, upstream)
        record_path = stage_dir / COMPLETE
        label = f"[{index}/{len(stages)}] {name}"
        # Every process must take the same branch: the main process decides, from what it sees.
        record = distributed.from_main(json.loads(record_path.read_text()) if record_path.exists() else None)
        if record is not None:
            if record.get("fingerprint") == fingerprint:
                artifacts[name] = Artifact.from_dict(record["artifact"])
                upstream = fingerprint
                console.print(f"{label}: already complete, skipped")
                continue
            if main:
                aside = _set_aside(stage_dir)
                console.print(f"{label}: inputs changed since the last run; old output kept in {aside}")
        elif stage_dir.exists() and any(stage_dir.iterdir()):
            console.print(f"{label}: resuming in {stage_dir}")
        else:
            console.print(f"{label}: starting")
        if main:
            stage_dir.mkdir(parents=True, exist_ok=True)
            (stage_dir / FAILED).unlink(missing_ok=True)
        distributed.wait_for_everyone()
        ctx = StageContext(name=name, config=cfg, options=stage.options, out_dir=stage_dir,
                           artifacts=dict(artifacts), plugins=plugins)
        started = time.time()
        try:
            artifact = _run_stage(stage, ctx)
        except Exception as exc:
            if main:
                _write_json_atomic(stage_dir / FAILED, {
                    "stage": name, "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(), "time": time.time(),
                })
            if isinstance(exc, StageError) and exc.stage == name:
                raise
            raise StageError(name, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.time() - started
        distributed.wait_for_everyone()  # every process is done with the stage before it counts as complete
        if main:
            _write_json_atomic(record_path, {
                "stage": name, "fingerprint": fingerprint, "artifact": artifact.to_dict(),
                # wall time of this run of the stage: started/finished are Unix times, seconds their difference
                "started": started, "seconds": round(seconds, 3), "finished": started + seconds,
            })
        artifacts[name] = artifact
        upstream = fingerprint
        console.print(f"{label}: done in {seconds:.1f}s -> {artifact.kind} at {artifact.path}")
    return artifacts


def _run_stage(stage: Stage, ctx: StageContext) -> Artifact:
    """Runs the stage here, or on the main process only and receives its artifact (see Stage.data_parallel)."""
    if stage.data_parallel or not distributed.is_distributed():
        artifact = stage.run(ctx)
        if not isinstance(artifact, Artifact):
            raise TypeError(f"run() returned {type(artifact).__name__}, expected an Artifact")
        return artifact
    outcome: tuple[str, Any] = ("", None)
    if distributed.is_main():
        try:
            artifact = stage.run(ctx)
            if not isinstance(artifact, Artifact):
                raise TypeError(f"run() returned {type(artifact).__name__}, expected an Artifact")
            outcome = ("ok", artifact.to_dict())
        except Exception as exc:
            distributed.from_main(("error", f"{type(exc).__name__}: {exc}"))  # the others must not wait forever
            raise
    kind, value = distributed.from_main(outcome)
    if kind == "error":
        raise StageError(stage.name, f"failed on the main process: {value}")
    return Artifact.from_dict(value)
