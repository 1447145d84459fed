"""A copy curriculum before pretraining: short random sequences in which a span repeats.

Tool calls and extractions are right only when the model copies values from the request,
which takes an induction circuit (attend to an earlier occurrence of the current token,
predict what followed it). Trained on the task corpus alone, a small model sits on a long
plateau before that circuit forms: attention starts uniform, so the gradient towards the one
matching position shrinks with the context length, and copy targets are a few percent of
the tokens. So pretraining starts with ``copy_warmup_steps`` steps on short (32-token)
random sequences in which a span of 3-8 tokens comes back again and again, each time after
a random gap of 0-4 tokens; the loss covers every repeat after its first token, which
nothing but copying can predict. The random span length and gaps matter: with a fixed
period the model learns "copy the token 8 back" (a position rule, useless on a request)
instead of matching content.

Measured with ``scripts/copy_plateau.py`` (1 thread, batch 64, lr 2e-3) on the shape of a
main-job search candidate whose warm-up stalled (hidden 192, 7 layers, 2 GQA layers with one
KV head, 2048-token vocabulary): with one repeated span per sequence (the previous
curriculum) the copy loss was still 6.4 nats after 600 steps (chance: ln 2032 = 7.6), and in
the main job that candidate was still on the plateau after 945 steps; with repeats after
random gaps it fell below 1 nat at step 213, and that model copies a single span at a random
distance, which it never trained on, at 0.87 nats.

The sequences are random token ids of the model's own vocabulary (special tokens
excluded), so nothing about the task world is planted: the model learns to copy, and what
to copy comes from the corpus and SFT.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from edgesmith.core.stage import StageContext

IGNORE_INDEX = -100


@dataclass
class CopyWarmup:
    """How the copy curriculum is drawn: ``sequences`` of ``seq_len`` tokens; in each, a span of
    ``min_span``..``span`` tokens repeats until the sequence ends, each repeat after a gap of
    0..``max_gap`` random tokens."""

    sequences: int
    seq_len: int = 32
    span: int = 8
    min_span: int = 3
    max_gap: int = 4


def copy_sequences(vocab_size: int, special_ids: set[int], warmup: CopyWarmup, seed: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``labels`` of the curriculum (labels on each repeat after its first token)."""
    import random

    generator = torch.Generator().manual_seed(seed)
    layout = random.Random(seed)  # span lengths and gaps: cheap per-row integers
    allowed = torch.tensor([i for i in range(vocab_size) if i not in special_ids])
    n, length = warmup.sequences, warmup.seq_len
    ids = allowed[torch.randint(len(allowed), (n, length), generator=generator)]
    labels = torch.full_like(ids, IGNORE_INDEX)
    for row in range(n):
        start = layout.randint(0, warmup.max_gap)
        size = layout.randint(warmup.min_span, warmup.span)
        source = ids[row, start:start + size].clone()
        at = start + size
        while True:
            at += layout.randint(0, warmup.max_gap)
            if at >= length:
                break
            k = min(size, length - at)
            ids[row, at:at + k] = source[:k]
            labels[row, at + 1:at + k] = source[1:k]
            at += k
    return {"input_ids": ids, "labels": labels}


class StopWhenCopying(TrainerCallback):
    """Ends the warm-up once the mean span loss of the last ``window`` steps is below ``target``.

    When the breakthrough comes depends on the architecture and the seed, so a fixed step
    count is either wasted time or too short; the step budget is only an upper bound.
    """

    def __init__(self, target: float, window: int = 10):
        self.target, self.window = target, window
        self.losses: list[float] = []
        self.stopped_at: int | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))
            recent = self.losses[-self.window:]
            if len(recent) == self.window and sum(recent) / self.window < self.target:
                self.stopped_at = state.global_step
                control.should_training_stop = True


def run_copy_warmup(ctx: StageContext, model: Any, tokenizer: Any, warmup: CopyWarmup, *, steps: int,
                    batch_size: int, learning_rate: float, seed: int, work_dir: Path,
                    target_loss: float = 0.0, precision: str = "fp32",
                    gradient_checkpointing: bool = False) -> dict[str, Any]:
    """Trains ``model`` in place on the copy curriculum with transformers' Trainer (checkpointed).

    At most ``steps`` steps; with ``target_loss`` > 0 it stops as soon as the span loss
    (mean of the last 10 steps) is below it. ``precision``: as the pretrain stage's (:mod:`.precision`).
    """
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    from .resume import train_with_resume
    from .stage_callback import StageCallback
    from .trainer_arguments import common_training_arguments

    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    data = copy_sequences(model.config.vocab_size, special, warmup, seed)
    dataset = Dataset.from_dict({k: v.tolist() for k, v in data.items()}).with_format("torch")
    checkpoints = work_dir / "checkpoints"
    settings = common_training_arguments(checkpoints, max_steps=steps, batch_size=batch_size,
                                         learning_rate=learning_rate, save_steps=max(1, steps // 2), seed=seed,
                                         precision=precision, gradient_checkpointing=gradient_checkpointing)
    # constant: the breakthrough comes after a plateau, and a decaying rate postpones it past the end
    settings["lr_scheduler_type"] = "constant"
    args = TrainingArguments(**settings, remove_unused_columns=False)
    stop = StopWhenCopying(target_loss) if target_loss > 0 else None
    trainer = Trainer(model=model, args=args, train_dataset=dataset,
                      callbacks=[StageCallback(ctx, "copy warm-up"), *([stop] if stop else [])])
    result = train_with_resume(trainer, checkpoints, ctx, "copy warm-up")
    final_loss = stop.losses[-1] if stop and stop.losses else None
    return {"copy_warmup_loss": result.training_loss, "copy_warmup_final_loss": final_loss,
            "copy_warmup_steps": trainer.state.global_step, "copy_warmup_max_steps": steps,
            "copy_warmup_reached_target": bool(stop and stop.stopped_at is not None)}
