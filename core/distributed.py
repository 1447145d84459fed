"""One process of several: who writes files, and how the processes wait for and talk to each other.

Under a multi-process launch (``accelerate launch --multi_gpu --num_processes N`` or
``torchrun``, which set ``WORLD_SIZE`` and ``RANK``) every process runs the same command.
Data-parallel stages (the training stages) run on every process: TRL's trainers train
through Accelerate, and rollouts are split across processes and gathered
(:func:`shard`, :func:`gather`). Every other stage runs on the main process alone and its
artifact is sent to the others. Only the main process writes files: artifacts, completion
records, metrics, reports, checkpoints (Hugging Face's Trainer adds one file per process
to a checkpoint, that process's own random-number state, ``rng_state_<rank>.pth``).

Without CUDA the processes talk over gloo; Accelerate picks it only when told the run is on
CPU, which TrainingArguments reads from ``ACCELERATE_USE_CPU``, so that is set here too.
One process (no ``WORLD_SIZE``) never touches torch.distributed.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

T = TypeVar("T")


def world_size() -> int:
    """How many processes the launch started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's global index (0: the main process)."""
    return int(os.environ.get("RANK", "0"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """Whether this process writes files (always, for a single process)."""
    return rank() == 0


def _state() -> Any:
    """Accelerate's process state; initializes the process group on first use."""
    import torch
    from accelerate import PartialState

    cpu = not torch.cuda.is_available()
    if cpu:
        os.environ.setdefault("ACCELERATE_USE_CPU", "true")  # for TrainingArguments' own PartialState
    return PartialState(cpu=cpu)


def setup() -> None:
    """Joins the process group early (before any stage), so a missing peer fails fast."""
    if is_distributed():
        _state()


def wait_for_everyone() -> None:
    """A barrier: returns when every process has reached it (no-op for one process)."""
    if is_distributed():
        _state().wait_for_everyone()


def shard(items: list[T]) -> list[T]:
    """This process's share of ``items``: every ``world_size``-th one, starting at its rank."""
    return items[rank()::world_size()]


def gather(share: list[T]) -> list[T]:
    """Every process's ``share`` (as given to :func:`shard`), back in the original order, on every process."""
    if not is_distributed():
        return list(share)
    import torch.distributed as dist

    _state()
    shares: list[list[T] | None] = [None] * world_size()
    dist.all_gather_object(shares, list(share))
    merged: list[T] = []
    longest = max(len(s or []) for s in shares)
    for i in range(longest):  # undo the round-robin of shard()
        for s in shares:
            if s is not None and i < len(s):
                merged.append(s[i])
    return merged


def from_main(value: T) -> T:
    """The main process's ``value``, on every process."""
    if not is_distributed():
        return value
    import torch.distributed as dist

    _state()
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
