"""Shared plumbing of the training stages: inputs, loading, saving, Trainer settings, logging.

Every training stage reads a model directory (``save_pretrained`` model + tokenizer), trains
with a TRL trainer that checkpoints into the stage directory, and writes a model directory
back. An interrupted stage finds its newest complete ``checkpoint-N`` and resumes from it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers import TrainerCallback

from edgesmith.core import distributed
from edgesmith.core.environment import Environment
from edgesmith.core.errors import ConfigError, DataError, StageError
from edgesmith.core.stage import Artifact, StageContext

MODEL_KIND = "model"
DONE_MARKER = "_done"


def register_model_classes() -> None:
    """Imports edgesmith's model so AutoConfig/AutoModelForCausalLM know ``edgesmith``."""
    try:
        import edgesmith.core.modeling  # noqa: F401  (registers with the Auto classes)
    except ImportError:
        pass


def check_model_dir(path: str | Path, what: str, stage: str) -> Path:
    """A directory holding a loadable model, or a StageError naming the bad file and what is accepted."""
    from .model_files import model_dir_problem

    path = Path(str(path)).expanduser()
    problem = model_dir_problem(path)
    if problem:
        raise StageError(stage, f"{what} is not a usable model: {problem}")
    return path


def check_init_from(value: Any, key: str) -> None:
    """Before any stage runs: ``init_from`` (when set) is a loadable model directory."""
    from .model_files import SAVED_BY, model_dir_problem

    if value:
        problem = model_dir_problem(value)
        if problem:
            raise ConfigError(key, str(value), SAVED_BY, detail=problem)


def check_plugin_names(plugins: Any, kind: str, names: Any, key: str) -> None:
    """Before any stage runs: every name in ``names`` is a registered ``kind`` plugin (and there is one)."""
    names = list(names or [])
    if not names:
        raise ConfigError(key, names, f"a non-empty list of {kind}s from: {', '.join(plugins.names(kind))}")
    for i, name in enumerate(names):
        plugins.get(kind, name, key=f"{key}[{i}]")


def model_input(ctx: StageContext) -> Path:
    """The model a post-training stage starts from.

    The latest earlier artifact of kind ``model``; else the top-level ``init_from=DIR``;
    an earlier artifact of another kind is a clear error (e.g. ``sft`` after ``search``).
    """
    artifact = ctx.latest(MODEL_KIND)
    if artifact is not None:
        return check_model_dir(artifact.path, "the model artifact of an earlier stage", ctx.name)
    init_from = OmegaConf.select(ctx.config, "init_from", default=None)
    if init_from:
        return check_model_dir(init_from, "init_from", ctx.name)
    have = ", ".join(f"{n} gave '{a.kind}'" for n, a in ctx.artifacts.items())
    if have:
        raise StageError(ctx.name, f"needs an input artifact of kind '{MODEL_KIND}' (a model directory) from an "
                                   f"earlier stage or init_from=DIR; got: {have}")
    raise StageError(ctx.name, f"needs a model to start from: put a stage that makes one (pretrain) before it, "
                               "or set init_from=DIR (a save_pretrained model directory)")


def load_model_and_tokenizer(path: str | Path) -> tuple[Any, Any]:
    """A causal LM (edgesmith's or any transformers one) and its tokenizer from a directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .model_files import model_dir_problem

    register_model_classes()
    quiet_libraries()
    problem = model_dir_problem(path)
    if problem:
        raise DataError(problem)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: cannot load its tokenizer ({_first_line(exc)}); accepted: tokenizer files "
                        "written by save_pretrained (tokenizer.json + tokenizer_config.json)") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot load it as a causal LM ({_first_line(exc)}); accepted: {SAVED_BY_ANY}") \
            from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


SAVED_BY_ANY = "an edgesmith, LFM2 or transformers causal LM directory written by save_pretrained"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def save_model_dir(model: Any, tokenizer: Any, destination: str | Path) -> Path:
    """Saves model + tokenizer so a half-written directory never looks finished.

    Under a multi-process launch the main process saves and the others wait for it.
    """
    destination = Path(destination)
    if not distributed.is_main():
        distributed.wait_for_everyone()
        return destination
    tmp = destination.with_name(destination.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / DONE_MARKER).write_text("complete\n")
    if destination.exists():
        shutil.rmtree(destination)
    os.replace(tmp, destination)
    distributed.wait_for_everyone()
    return destination


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes ``path`` through a temporary file, so a kill never leaves it half-written (main process only)."""
    path = Path(path)
    if distributed.is_main():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    distributed.wait_for_everyone()


def is_finished_model_dir(path: str | Path) -> bool:
    return (Path(path) / DONE_MARKER).is_file()


def model_artifact(path: Path, **metadata: Any) -> Artifact:
    return Artifact(kind=MODEL_KIND, path=str(path), metadata=metadata)


def build_environments(ctx: StageContext, names: list[str], seed: int, difficulty: int = 1,
                       key: str | None = None) -> dict[str, Environment]:
    """Instantiates the named environment plugins (unknown names list the registered ones)."""
    key = key or f"{ctx.name}.environments"
    if not names:
        raise ConfigError(key, names, f"a non-empty list of environments from: "
                                      f"{', '.join(ctx.plugins.names('environment'))}")
    return {name: ctx.plugins.build("environment", name, key=f"{key}[{i}]", seed=seed, difficulty=difficulty)
            for i, name in enumerate(names)}


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


def quiet_libraries() -> None:
    """Silences per-dataset-map progress bars (the stage's own rich progress shows the work) and
    an upstream deprecation notice that TRL 1.16 triggers on every trainer (not actionable here)."""
    import warnings

    import datasets

    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()  # per-file load/save bars
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)


def common_training_arguments(output_dir: Path, *, max_steps: int, batch_size: int, learning_rate: float,
                              save_steps: int, seed: int, grad_accum: int = 1, warmup_ratio: float = 0.0,
                              ) -> dict[str, Any]:
    """Keyword arguments every TRL config here shares (checkpointing, logging, CPU friendliness)."""
    quiet_libraries()
    return dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=learning_rate,
        lr_scheduler_type="cosine" if warmup_ratio else "linear",
        warmup_steps=warmup_ratio,
        save_strategy="steps",
        save_steps=max(1, save_steps),
        save_total_limit=2,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,  # progress is shown by StageCallback (rich)
        seed=seed,
        data_seed=seed,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,
        bf16=False,
        fp16=False,
    )


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
