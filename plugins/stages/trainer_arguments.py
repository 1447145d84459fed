"""The TRL/transformers ``TrainingArguments`` every training stage shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .library_logging import quiet_libraries
from .precision import trains_in_bf16


def common_training_arguments(output_dir: Path, *, max_steps: int, batch_size: int, learning_rate: float,
                              save_steps: int, seed: int, precision: str, grad_accum: int = 1,
                              warmup_ratio: float = 0.0, gradient_checkpointing: bool = False,
                              ) -> dict[str, Any]:
    """Keyword arguments every TRL config here shares (checkpointing, logging, CPU friendliness);
    ``precision`` and ``gradient_checkpointing`` are the stage's options (:mod:`.precision`).

    ``gradient_checkpointing`` is off unless asked for: TRL's configs turn it on by default,
    which recomputes every layer's forward during the backward pass to save activation memory.
    The main job's models hold a few MB of activations, so that was pure cost (a pretrain step
    of the 3.45M model: median 1.08 s with it in run base11, 0.92 s without in run base15;
    README "The pipeline"). tests/test_trainer_arguments.py checks which the trainers get. Turn it on for
    models whose activations do not fit (e.g. ``model=lfm2_350m`` with long sequences).
    """
    quiet_libraries()
    bf16 = trains_in_bf16(precision)
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
        bf16=bf16,
        # the Trainer refuses bf16 without a GPU unless told the CPU is meant (autocast on CPU)
        use_cpu=bf16 and not torch.cuda.is_available(),
        fp16=False,
        gradient_checkpointing=gradient_checkpointing,
    )
