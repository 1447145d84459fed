"""Reproduces the copy-plateau measurement behind the copy warm-up (plugins/stages/copy_warmup.py).

Trains the shape of a main-job search candidate whose warm-up stalled (hidden 192, 7
layers with GQA at 4 and 7, one KV head, 2048-token vocabulary) from the same seed on two
curricula of 32-token random sequences, batch 64, AdamW lr 2e-3, and prints the loss on the
copied tokens every 25 steps:

* ``single_span``: one span of 6 tokens repeated once at a random distance (the old curriculum),
* ``repeats``: the current one (``copy_sequences``: a 3-8 token span repeated after random gaps).

Each run stops when the mean loss of 10 steps is below 1 nat (the warm-up's default target)
or at ``--steps``; then both models are scored on fresh single-span sequences, which a model
copies only by matching content (a fixed period cannot be used).

Usage: ``.venv/bin/python scripts/copy_plateau.py [--steps 600] [--threads 1]``
"""

from __future__ import annotations

import argparse
import time

import torch

import edgesmith.core.modeling  # noqa: F401  (registers the model with the Auto classes)
from edgesmith.core.configuration import EdgeConfig
from edgesmith.plugins.stages.copy_warmup import IGNORE_INDEX, CopyWarmup, copy_sequences

VOCAB, SPECIAL = 2048, set(range(16))


def model():
    conv = {"op": "short_conv", "conv_length": 3}
    config = EdgeConfig(vocab_size=VOCAB, hidden_size=192, intermediate_size=576, num_attention_heads=4,
                        num_key_value_heads=1, layers=[conv, conv, conv, {"op": "gqa"}, conv, conv, {"op": "gqa"}],
                        max_position_embeddings=2048, tie_word_embeddings=True)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config)


def single_span(n: int, seed: int, length: int = 32, span: int = 6) -> dict[str, torch.Tensor]:
    """One span repeated once, later, at a random distance; labels on the copy after its first token."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(SPECIAL), VOCAB, (n, length), generator=generator)
    labels = torch.full_like(ids, IGNORE_INDEX)
    for row in range(n):
        src = int(torch.randint(0, length // 2, (1,), generator=generator))
        dst = src + span + int(torch.randint(0, length - 2 * span - src + 1, (1,), generator=generator))
        ids[row, dst:dst + span] = ids[row, src:src + span]
        labels[row, dst + 1:dst + span] = ids[row, dst + 1:dst + span]
    return {"input_ids": ids, "labels": labels}


def train(curriculum: str, steps: int, batch: int = 64) -> float:
    net = model()
    optimizer = torch.optim.AdamW(net.parameters(), 2e-3)
    n = steps * batch
    data = single_span(n, 0) if curriculum == "single_span" else copy_sequences(VOCAB, SPECIAL, CopyWarmup(n), 0)
    started, losses = time.time(), []
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        loss = net(input_ids=data["input_ids"][rows], labels=data["labels"][rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        recent = sum(losses[-10:]) / len(losses[-10:])
        if step % 25 == 0 or recent < 1.0 or step == steps - 1:
            print(f"{curriculum:>12} step {step:4d}  copy loss {recent:.3f}  ({time.time() - started:.0f} s)", flush=True)
        if len(losses) >= 10 and recent < 1.0:
            break
    with torch.no_grad():
        probe = single_span(256, 1)
        return float(net(input_ids=probe["input_ids"], labels=probe["labels"]).loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for curriculum in ("single_span", "repeats"):
        probe = train(curriculum, args.steps)
        print(f"{curriculum:>12}: loss on fresh single-span copies {probe:.3f} nats (chance ~ ln {VOCAB - 16})")


if __name__ == "__main__":
    main()
