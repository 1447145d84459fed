"""Resuming an interrupted training stage from its newest complete ``checkpoint-N``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from edgesmith.core import distributed
from edgesmith.core.stage import StageContext

from .stage_callback import StageCallback


def last_checkpoint(directory: str | Path, ctx: StageContext | None = None, phase: str = "") -> str | None:
    """The newest *complete* ``checkpoint-N`` in ``directory`` (HF Trainer layout), if any.

    Partial checkpoints newer than it (a save that was killed) are renamed
    ``incomplete-checkpoint-N`` and reported, never deleted (see ``checkpoints.py``).
    """
    from .checkpoints import newest_complete_checkpoint

    # The main process sets partial checkpoints aside; the others then see what it left.
    found, set_aside = newest_complete_checkpoint(directory) if distributed.is_main() else (None, [])
    distributed.wait_for_everyone()
    if not distributed.is_main():
        found, _ = newest_complete_checkpoint(directory)
    for path, why in set_aside:
        message = f"checkpoint {path.name[len('incomplete-'):]} is incomplete ({why}); kept as {path}"
        if ctx is not None:
            ctx.log_metrics(phase=phase, event="incomplete_checkpoint", kept_as=str(path), reason=why)
            Console(stderr=True).print(f"[yellow]{ctx.name}:[/yellow] {message}", highlight=False, soft_wrap=True)
    return str(found) if found else None


def train_with_resume(trainer: Any, checkpoints: Path, ctx: StageContext, phase: str) -> Any:
    """Runs ``trainer.train``, resuming from the newest checkpoint in ``checkpoints`` if one exists."""
    from transformers.trainer_callback import PrinterCallback

    # StageCallback writes the logs (metrics.jsonl) and draws the progress; the printer would repeat them.
    trainer.remove_callback(PrinterCallback)
    resume = last_checkpoint(checkpoints, ctx, phase)
    if resume:
        ctx.log_metrics(phase=phase, event="resume", resumed_from=resume)
    try:
        return trainer.train(resume_from_checkpoint=resume)
    finally:
        # A stopped progress bar must not be left drawing when training raises.
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, StageCallback) and callback._progress is not None:
                callback._progress.stop()
                callback._progress = None
