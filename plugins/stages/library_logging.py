"""Quieting the libraries under a stage: its own rich progress is the one to watch."""

from __future__ import annotations


def quiet_libraries() -> None:
    """Silences per-dataset-map progress bars (the stage's own rich progress shows the work) and
    an upstream deprecation notice that TRL 1.16 triggers on every trainer (not actionable here)."""
    import warnings

    import datasets

    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()  # per-file load/save bars
    warnings.filterwarnings("ignore", message=r".*gradient_checkpointing.* is deprecated", category=FutureWarning)
