"""Reproduces the copy-plateau measurement behind ``pretrain.copy_warmup_steps``.

Trains the ``small`` preset's shape (hidden 192, 6 layers, 2 attention layers, vocabulary
1024) on random token sequences with repeated spans, loss on the repeated span only, and
prints the span loss every 25 steps for three schedules side by side:

* ``long``: 256-token sequences from the start (plateau: ln(1014) ~ 6.9 nats throughout),
* ``short``: 32-token sequences (the loss breaks through after a few hundred steps),
* ``short_then_long``: the short phase, then 256-token sequences (carries over at once).

Usage: ``.venv/bin/python scripts/copy_plateau.py [--steps 400] [--threads 2]``
"""

from __future__ import annotations

import argparse
import time

import torch

import edgesmith.core.modeling  # noqa: F401  (registers the model with the Auto classes)
from edgesmith.core.configuration import EdgeConfig
from edgesmith.plugins.stages.copy_warmup import CopyWarmup, copy_sequences


def model():
    layers = [{"op": "short_conv", "conv_length": 3}] * 2 + [{"op": "gqa"}, {"op": "short_conv", "conv_length": 3},
                                                           {"op": "gqa"}, {"op": "short_conv", "conv_length": 3}]
    config = EdgeConfig(vocab_size=1024, hidden_size=192, intermediate_size=576, num_attention_heads=6,
                        num_key_value_heads=2, layers=layers, max_position_embeddings=2048)
    torch.manual_seed(0)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config)


def train(net, optimizer, steps, seq_len, batch, label, seed):
    data = copy_sequences(1024, set(range(10)), CopyWarmup(sequences=steps * batch, seq_len=seq_len), seed)
    started = time.time()
    for step in range(steps):
        rows = slice(step * batch, (step + 1) * batch)
        loss = net(input_ids=data["input_ids"][rows], labels=data["labels"][rows]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 25 == 0 or step == steps - 1:
            print(f"{label:>16} step {step:4d}  span loss {loss.item():.3f}  ({time.time() - started:.0f} s)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for schedule in ("long", "short", "short_then_long"):
        net = model()
        optimizer = torch.optim.AdamW(net.parameters(), 2e-3)
        if schedule == "long":
            train(net, optimizer, args.steps, 256, 16, schedule, 0)
        else:
            train(net, optimizer, args.steps, 32, 64, schedule, 0)
            if schedule == "short_then_long":
                train(net, optimizer, 100, 256, 16, schedule + " (256)", 1)


if __name__ == "__main__":
    main()
