"""Greedy accuracy of one quickly trained model in float32, bf16, int8 and int8_dynamic, side by side.

No trained checkpoint ships with the project, so this trains one itself: a byte-level BPE
tokenizer on the world corpus, an edgesmith hybrid (hidden 256, short convs + 2 gqa layers),
then ``--steps`` of supervised fine-tuning on the environments' reference solutions
(assistant tokens only). The same weights are then evaluated greedily on each
environment's eval split as float32, as bf16, as int8 weight-only
(:func:`edgesmith.core.linear.quantize_int8`) and as int8 weights with int8 rows
(:func:`edgesmith.core.linear.quantize_int8_dynamic`), through the rollout loop the eval and
DPO stages use. Printed per environment: accuracy per dtype, and the share of prompts whose
int8 / int8_dynamic completion differs from the bf16 / float32 one (an upper bound on the
accuracy gap).

Usage: ``.venv/bin/python scripts/int8_accuracy.py [--steps 300] [--prompts 100] [--threads 1]``
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time

import torch

import edgesmith.core.modeling  # noqa: F401  (registers the model with the Auto classes)
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.linear import QUANT_LOAD_DTYPES, quantize
from edgesmith.core.modeling import EdgeForCausalLM
from edgesmith.core.plugin_manager import get_plugin_manager
from edgesmith.plugins.evaluation.rollout import generate_rollouts
from edgesmith.plugins.stages.sft import examples_from_tasks, tokenize_example
from edgesmith.plugins.world.corpus import build_corpus
from edgesmith.plugins.world.tokenizer import train_tokenizer

LAYERS = [{"op": "short_conv"}, {"op": "short_conv"}, {"op": "gqa"}, {"op": "short_conv"}, {"op": "gqa"},
          {"op": "short_conv"}]


def sft_rows(tokenizer, envs, n_tasks, max_length):
    plugins = get_plugin_manager()
    rows = []
    for name in envs:
        env = plugins.build("environment", name, key="envs", seed=0)
        for example in examples_from_tasks(name, env.tasks("train", n_tasks)):
            row = tokenize_example(tokenizer, example, max_length)
            if row is not None:
                rows.append(row)
    return rows


def train(model, rows, steps, batch, pad_id, seed):
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 50) * (1 - s / steps))
    model.train()
    started = time.time()
    for step in range(steps):
        chosen = rng.sample(rows, batch)
        width = max(len(r["input_ids"]) for r in chosen)
        ids = torch.full((batch, width), pad_id)
        labels = torch.full((batch, width), -100)
        mask = torch.zeros(batch, width, dtype=torch.long)
        for i, r in enumerate(chosen):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"])
            mask[i, :n] = 1
            keep = torch.tensor(r["assistant_masks"], dtype=torch.bool)
            labels[i, :n] = torch.where(keep, ids[i, :n], -100)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        if step % 50 == 0 or step == steps - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  ({time.time() - started:.0f} s)", flush=True)
    return model.eval()


def greedy(model, tokenizer, env, tasks, max_new_tokens):
    completions = generate_rollouts(model, tokenizer, tasks, greedy=True, samples=0,
                                    max_new_tokens=max_new_tokens, batch_size=32).greedy
    correct = [bool(env.verify(t, c.text).correct) for t, c in zip(tasks, completions)]
    return [c.token_ids for c in completions], correct


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=100, help="eval prompts per environment")
    parser.add_argument("--envs", nargs="+", default=["toolcall", "extraction", "reasoning"])
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--max-length", type=int, default=384, help="SFT rows longer than this are cut")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = train_tokenizer(build_corpus(400, seed=0), vocab_size=1024, save_dir=tmp)
    config = EdgeConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=768, num_attention_heads=8,
                        num_key_value_heads=2, layers=LAYERS, max_position_embeddings=2048,
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                        bos_token_id=tokenizer.bos_token_id)
    torch.manual_seed(0)
    model = EdgeForCausalLM(config)
    rows = sft_rows(tokenizer, args.envs, 2000, args.max_length)
    print(f"{len(rows)} SFT rows, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters", flush=True)
    model = train(model, rows, args.steps, args.batch, tokenizer.pad_token_id, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def variant(kind):
        m = EdgeForCausalLM(config)
        m.load_state_dict(state)
        m = m.eval()
        if kind in ("float32", "bfloat16"):
            return m.to(getattr(torch, kind))
        return quantize(m.to(QUANT_LOAD_DTYPES[kind]), kind)  # loaded as `edgesmith eval quant=...` does

    kinds, quantized = ("float32", "bfloat16", "int8", "int8_dynamic"), ("int8", "int8_dynamic")
    plugins = get_plugin_manager()
    print(f"\n{'environment':12s}" + "".join(f" {k:>12s}" for k in kinds) + "   completions differing from "
          f"bf16 / float32: int8, int8_dynamic ({args.prompts} prompts each, greedy, {args.max_new_tokens} new tokens)")
    with torch.inference_mode():
        for name in args.envs:
            env = plugins.build("environment", name, key="envs", seed=0)
            tasks = env.tasks("eval", args.prompts)
            out = {kind: greedy(variant(kind), tokenizer, env, tasks, args.max_new_tokens) for kind in kinds}
            acc = {k: sum(c) / len(c) for k, (_, c) in out.items()}
            differ = {(q, k): sum(a != b for a, b in zip(out[q][0], out[k][0])) / len(tasks)
                      for q in quantized for k in ("bfloat16", "float32")}
            print(f"{name:12s}" + "".join(f" {acc[k]:12.1%}" for k in kinds) + "   " + ", ".join(
                f"{differ[q, 'bfloat16']:.1%} / {differ[q, 'float32']:.1%}" for q in quantized), flush=True)


if __name__ == "__main__":
    main()
