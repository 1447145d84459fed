"""Eval throughput benchmark: one random tiny edgesmith model, ``n`` eval prompts of one environment.

``python -m edgesmith.plugins.evaluation.throughput [--env toolcall] [--n 200] [--max-new-tokens 128]
[--batch-size 32] [--samples 0] [--sampled-prompts 50] [--threads 2]``

Builds (untrained, seeded) an :class:`EdgeForCausalLM` of hidden 192, 6 layers (short conv and
GQA, as the tiny preset), vocab 1024, with a tokenizer trained on the built-in world's corpus,
then times :func:`edgesmith.plugins.evaluation.evaluate.evaluate` on it and prints the wall
time, completions, generated tokens and tokens/s. Nothing is timed in tests: this is how the
eval's speed is compared before and after a change (same seed, same machine, side by side).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def build_model(save_dir: Path, hidden: int = 192, layers: int = 6, vocab: int = 1024, seed: int = 0) -> Path:
    """A random EdgeForCausalLM with a real tokenizer, saved as a model directory."""
    import torch

    from edgesmith.core.configuration import EdgeConfig
    from edgesmith.core.modeling import EdgeForCausalLM
    from edgesmith.plugins.world.corpus import build_corpus
    from edgesmith.plugins.world.tokenizer import train_tokenizer

    docs = [d if isinstance(d, str) else getattr(d, "text", str(d)) for d in build_corpus(300, seed=seed)]
    tokenizer = train_tokenizer(docs, vocab_size=vocab, save_dir=str(save_dir))
    ops = [{"op": "short_conv", "conv_length": 3}, {"op": "short_conv", "conv_length": 3}, {"op": "gqa"}]
    config = EdgeConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 3,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                        tie_word_embeddings=True, layers=[dict(ops[i % len(ops)]) for i in range(layers)],
                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    EdgeForCausalLM(config).save_pretrained(save_dir)
    return save_dir


def measure(model_dir: Path, env: str, n: int, max_new_tokens: int, **options: Any) -> dict[str, Any]:
    from rich.console import Console

    from edgesmith.plugins.evaluation.evaluate import evaluate, load_model
    from edgesmith.plugins.evaluation.options import EvalOptions

    eval_options = EvalOptions(envs=[env], n_prompts=n, max_new_tokens=max_new_tokens, **options)
    model, tokenizer = load_model(model_dir, device="cpu")
    started = time.perf_counter()
    results = evaluate(eval_options, model=model, tokenizer=tokenizer, console=Console(stderr=True, quiet=True))
    seconds = time.perf_counter() - started
    modes = results["environments"][env]
    tokens = sum(m["mean_length"] * m["n"] for m in modes.values())
    return {"env": env, "seconds": round(seconds, 2), "tokens": int(tokens),
            "tokens_per_s": round(tokens / seconds, 1),
            "modes": {mode: {k: m[k] for k in ("n", "mean_length", "loop_rate", "accuracy")}
                      for mode, m in modes.items()}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="toolcall")
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--samples", type=int, default=0)
    parser.add_argument("--sampled-prompts", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model-dir", default=None, help="reuse a model directory instead of building one")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    options: dict[str, Any] = {"samples": args.samples}
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    if args.sampled_prompts is not None:
        options["sampled_prompts"] = args.sampled_prompts
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(args.model_dir) if args.model_dir else build_model(Path(tmp) / "model")
        print(json.dumps(measure(model_dir, args.env, args.n, args.max_new_tokens, **options)))


if __name__ == "__main__":
    main()
