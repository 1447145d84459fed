"""The ``model`` artifact: how a training stage hands its model directory to the next one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from edgesmith.core.stage import Artifact, StageContext

from .model_files import check_model_dir

MODEL_KIND = "model"


def model_artifact(path: Path, **metadata: Any) -> Artifact:
    """The artifact of a model directory a stage wrote."""
    return Artifact(kind=MODEL_KIND, path=str(path), metadata=metadata)


def model_input(ctx: StageContext) -> Path:
    """The model a post-training stage starts from.

    The latest earlier artifact of kind ``model``; else the top-level ``init_from=DIR``;
    else the error of :meth:`StageContext.require`, naming what the earlier stages gave
    (e.g. ``sft`` after ``search``).
    """
    init_from = OmegaConf.select(ctx.config, "init_from", default=None)
    if ctx.latest(MODEL_KIND) is None and init_from:
        return check_model_dir(init_from, "init_from", ctx.name)
    artifact = ctx.require(MODEL_KIND)
    return check_model_dir(artifact.path, "the model artifact of an earlier stage", ctx.name)
