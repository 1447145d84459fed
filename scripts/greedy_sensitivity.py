"""How far greedy reasoning accuracy moves when a model moves as little as RL moves it.

The main job's RL stage ends about 0.01-0.02 nats per token (TRL's ``kl``) from the model it
started from, yet its greedy reasoning accuracy on 200 held-out prompts moves by several
points. This script asks whether a move that small, in no particular direction, already does
that: it evaluates the model greedily (the main job's eval options), then perturbs every
weight by Gaussian noise (``--scale`` times each tensor's own standard deviation, one seed
per draw), measures the perturbed model's per-token KL from the original on the original's
greedy completions (teacher-forced), and evaluates it again. Printed per draw: KL, greedy
accuracy and loop rate, and the prompts whose outcome (correct / loop / wrong) changed.

    .venv/bin/python scripts/greedy_sensitivity.py outputs/<run>/sft/model \\
        [--scale 0.01] [--draws 5] [--prompts 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import stage_flips  # scripts/ (this script's directory) is on sys.path
import torch
import torch.nn.functional as F
from rich.console import Console

from edgesmith.plugins.evaluation.evaluate import build_task_sets, evaluate, load_model
from edgesmith.plugins.evaluation.options import EvalOptions
from edgesmith.plugins.evaluation.rollout import render_prompts

KL_PROMPTS = 50  # prompts whose greedy completions measure the KL (teacher-forced)


def outcomes(model, tokenizer, options: EvalOptions) -> tuple[dict[str, str], dict[str, str], dict]:
    """Per task: C / L / W (as scripts/stage_flips.py reads them) and the greedy completion's text;
    the greedy summary."""
    with tempfile.TemporaryDirectory() as out:
        results = evaluate(options, model=model, tokenizer=tokenizer, console=Console(quiet=True), out_dir=out)
        path = Path(out) / "completions.jsonl"
        texts = {r["task_id"]: r["text"] for r in map(json.loads, path.open()) if r["mode"] == "greedy"}
        return stage_flips.outcomes(str(path)), texts, results["environments"]["reasoning"]["greedy"]


def teacher_forced(model, tokenizer, prompts: list[str], completions: list[str]) -> list[torch.Tensor]:
    """Log-probabilities at each completion position, one tensor per prompt."""
    out = []
    with torch.no_grad():
        for prompt, completion in zip(prompts, completions):
            head = tokenizer(prompt, add_special_tokens=False)["input_ids"]
            tail = tokenizer(completion, add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([head + tail])).logits[0, len(head) - 1:-1]
            out.append(F.log_softmax(logits.float(), dim=-1))
    return out


def mean_kl(reference: list[torch.Tensor], other: list[torch.Tensor]) -> float:
    """KL(reference || other) per token, averaged over every completion position."""
    total = sum((p.exp() * (p - q)).sum().item() for p, q in zip(reference, other))
    return total / sum(p.shape[0] for p in reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--scale", type=float, default=0.01, help="noise std as a share of each tensor's std")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    options = EvalOptions(envs=["reasoning"], n_prompts=args.prompts, samples=0, sampled_prompts=None,
                          max_new_tokens=192)
    model, tokenizer = load_model(args.model, device="cpu")
    model.eval()
    base, texts, summary = outcomes(model, tokenizer, options)
    tasks = build_task_sets(options)["reasoning"][1][:KL_PROMPTS]
    prompts = render_prompts(tokenizer, tasks)
    completions = [texts[t.id] for t in tasks]
    reference = teacher_forced(model, tokenizer, prompts, completions)
    print(f"original: accuracy {summary['accuracy']:.1%}, loops {summary['loop_rate']:.1%}", flush=True)
    original = {name: p.detach().clone() for name, p in model.named_parameters()}
    accuracies = []
    for draw in range(args.draws):
        generator = torch.Generator().manual_seed(1000 + draw)
        with torch.no_grad():
            for name, p in model.named_parameters():
                w = original[name]
                spread = w.std() if w.numel() > 1 else w.abs()
                p.copy_(w + args.scale * spread * torch.randn(w.shape, generator=generator))
        kl = mean_kl(reference, teacher_forced(model, tokenizer, prompts, completions))
        after, _, summary = outcomes(model, tokenizer, options)
        changed = sum(base[t] != after[t] for t in base)
        accuracies.append(summary["accuracy"])
        print(f"draw {draw}: KL {kl:.4f} nats/token, accuracy {summary['accuracy']:.1%}, "
              f"loops {summary['loop_rate']:.1%}, {changed} of {len(base)} prompts changed outcome", flush=True)
    if len(accuracies) > 1:
        print(f"accuracy over draws: mean {statistics.mean(accuracies):.1%}, "
              f"min {min(accuracies):.1%}, max {max(accuracies):.1%}, sd {statistics.stdev(accuracies):.1%}")


if __name__ == "__main__":
    main()
