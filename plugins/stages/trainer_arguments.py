"""The TRL/transformers ``TrainingArguments`` every training stage shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .library_logging import quiet_libraries


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
