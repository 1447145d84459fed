"""The stage interface: one step of the pipeline, reading its predecessors' artifacts.

A stage plugin is a class with an options dataclass (``options_class``: its Hydra structured
config, found at the top-level key of the stage's name, e.g. ``dpo.rounds``) and a ``run`` method that
writes into its own directory and returns an :class:`Artifact`.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .errors import StageError
from .options import NoOptions


@dataclass
class Artifact:
    """What a stage leaves behind: a kind (``model``, ``study``, ``report``...), a path and facts."""

    kind: str
    path: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Artifact:
        return cls(kind=data["kind"], path=data["path"], metadata=dict(data.get("metadata", {})))


@dataclass
class StageContext:
    """Everything a stage may read: the composed config, its options, earlier artifacts."""

    name: str
    config: Any  # the composed OmegaConf config of the whole run
    options: Any  # the stage's validated config dataclass
    out_dir: Path
    artifacts: dict[str, Artifact]  # earlier stages' artifacts, in pipeline order
    plugins: Any  # the PluginManager

    def latest(self, *kinds: str) -> Artifact | None:
        """The most recent earlier artifact of one of ``kinds``."""
        for artifact in reversed(list(self.artifacts.values())):
            if artifact.kind in kinds:
                return artifact
        return None

    def require(self, *kinds: str) -> Artifact:
        """Like :meth:`latest`, but an absent input is an error naming what is accepted."""
        found = self.latest(*kinds)
        if found is None:
            have = ", ".join(f"{n} gave '{a.kind}'" for n, a in self.artifacts.items()) or "none ran before it"
            wanted = " or ".join(f"'{kind}'" for kind in kinds)
            raise StageError(self.name, f"needs an input artifact of kind {wanted} from an earlier stage "
                                        f"(or init_from=DIR); earlier stages: {have}")
        return found

    def log_metrics(self, **metrics: Any) -> None:
        """Appends one JSON line to ``metrics.jsonl`` in the stage directory (main process only)."""
        from .distributed import is_main

        if not is_main():
            return
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = {"time": time.time(), **metrics}
        with open(self.out_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record, default=str) + "\n")


class Stage(ABC):
    """Base class of stage plugins.

    ``config_keys`` names other top-level config sections the stage's result depends on
    (``("model",)`` for pretraining): changing them re-runs the stage on a re-run.

    ``data_parallel``: under a multi-process launch (:mod:`.distributed`), True runs the
    stage on every process (it trains data-parallel and writes files only from the main
    process); False runs it on the main process alone and hands its artifact to the others.
    """

    name: ClassVar[str] = "stage"
    options_class: ClassVar[type] = NoOptions
    #: the Hydra config group that supplies this stage's section (``search``: conf/search/*.yaml),
    #: None when the section is plain ``<stage>.<key>=value`` overrides on the options dataclass
    options_group: ClassVar[str | None] = None
    config_keys: ClassVar[tuple[str, ...]] = ()
    data_parallel: ClassVar[bool] = False

    def __init__(self, options: Any):
        self.options = options

    def check(self, cfg: Any, plugins: Any) -> None:
        """Checks what can be checked before any stage runs: plugin names, input files.

        Called for every stage of the pipeline before the first one starts, so a typo in a
        late stage costs seconds, not the earlier stages' work. Raises ConfigError naming
        the key (or a file and line) and what is accepted.
        """

    @abstractmethod
    def run(self, ctx: StageContext) -> Artifact:
        """Does the work in ``ctx.out_dir`` (resuming from a checkpoint there if one exists)."""
