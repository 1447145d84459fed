"""The trainer callback of every training stage: a rich progress bar and ``metrics.jsonl``."""

from __future__ import annotations

from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import TrainerCallback

from edgesmith.core import distributed
from edgesmith.core.stage import StageContext


class StageCallback(TrainerCallback):
    """Shows a rich progress bar and writes the trainer's logs to the stage's ``metrics.jsonl``."""

    def __init__(self, ctx: StageContext, phase: str, **extra: Any):
        self.ctx = ctx
        self.phase = phase
        self.extra = extra
        self._progress: Progress | None = None
        self._task = None

    def on_train_begin(self, args, state, control, **kwargs):
        if not distributed.is_main():
            return  # one progress bar per launch
        self._progress = Progress(TextColumn(f"[bold]{self.ctx.name}[/bold] {self.phase}"), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
                                  transient=False)
        self._progress.start()
        self._task = self._progress.add_task(self.phase, total=state.max_steps, completed=state.global_step,
                                             info="")

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.update(self._task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        self.ctx.log_metrics(phase=self.phase, step=state.global_step, **self.extra, **logs)
        if self._progress is not None and "loss" in logs:
            self._progress.update(self._task, info=f"loss {logs['loss']:.3f}")

    def on_train_end(self, args, state, control, **kwargs):
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
