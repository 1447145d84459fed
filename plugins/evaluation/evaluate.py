"""``edgesmith eval``: doom-loop rate, task accuracy, length and speed per environment.

For each environment, the eval-split prompts are answered greedily and/or by sampling
(``samples`` completions at ``temperature`` for each of the first ``sampled_prompts``
prompts); a prompt's greedy and sampled rows share one prefill. Every completion is verified
by its environment and judged by the loop detector (a loop = the token budget was reached
without an end-of-sequence token and the tail repeats). Per environment and decoding mode
the result holds the loop rate and the accuracy, each with its Wilson 95% interval, mean
reward, mean length in tokens, how the generations ended (``eos_share``: by themselves,
``budget_share``: at the token budget, ``guard_share``: cut by the loop guard) and tokens
per second, plus every completion in ``completions.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgesmith.core.environment import Environment, Task
from edgesmith.core.errors import ConfigError, EdgesmithError

from .options import EvalOptions
from .rollout import Completion, generate_rollouts, render_prompts

Z95 = 1.959963984540054  # the 97.5% quantile of the standard normal


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (sensible at 0 and at small n)."""
    if n <= 0:
        raise ValueError("wilson_interval needs n >= 1")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at 0 and n successes the bounds are exactly 0 and 1 (float rounding aside)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def load_model(model_path: str | Path, device: str | None = None, quant: str | None = None) -> tuple[Any, Any]:
    """Model and tokenizer of a transformers causal-LM directory (edgesmith models included).

    ``quant``: loaded in the dtype the mode runs its other layers in, then its linear layers
    quantized (CPU; :func:`edgesmith.core.linear.quantize`): ``int8`` weight-only from bf16,
    ``int8_dynamic`` (int8 weights and rows, fbgemm) from float32.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import edgesmith.core.modeling  # noqa: F401  (registers "edgesmith" with the Auto classes)

    path = Path(model_path)
    if not (path / "config.json").is_file():
        raise ConfigError("model_path", str(model_path), "a model directory holding config.json "
                          "(saved with save_pretrained), its weights and a tokenizer with a chat template")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError("model_path", str(model_path), "a model directory whose tokenizer has a chat template",
                          detail="no 'chat_template' in tokenizer_config.json and no chat_template.jinja; "
                                 "prompts with tools cannot be rendered")
    if quant is None:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        return model.to(device), tokenizer
    from edgesmith.core.linear import quant_load_dtype, quantize

    model = AutoModelForCausalLM.from_pretrained(path, dtype=quant_load_dtype(quant))
    return quantize(model.eval(), quant), tokenizer  # the int8 kernels are CPU ones


def build_task_sets(options: EvalOptions, plugins: Any | None = None) -> dict[str, tuple[Environment, list[Task]]]:
    """The environments and their evaluation tasks (eval split, or the tasks file)."""
    from edgesmith.core.plugin_manager import get_plugin_manager

    plugins = plugins or get_plugin_manager()
    names = plugins.names("environment")
    unknown = [e for e in options.envs if e not in names]
    if unknown:
        raise ConfigError("envs", list(options.envs), f"names of registered environments: {', '.join(names)}",
                          detail=f"unknown: {', '.join(map(str, unknown))}")
    bad_options = sorted(set(options.env_options) - set(names))
    if bad_options:
        raise ConfigError(f"env_options.{bad_options[0]}", options.env_options[bad_options[0]],
                          f"options keyed by registered environment names: {', '.join(names)}")

    def make(name: str) -> Environment:
        return plugins.build("environment", name, options.env_options.get(name), key=f"env_options.{name}",
                             name_key="envs", seed=options.seed, difficulty=options.difficulty)

    sets: dict[str, tuple[Environment, list[Task]]] = {}
    if options.tasks_file:
        from .tasks_file import read_tasks_file

        for name, tasks in read_tasks_file(options.tasks_file, names).items():
            sets[name] = (make(name), tasks[:options.n_prompts])
    else:
        for name in options.envs:
            env = make(name)
            tasks = env.tasks("eval", options.n_prompts)
            if not tasks:
                raise ConfigError("envs", name, "environments with evaluation tasks",
                                  detail=f"'{name}' gave no eval tasks: the evaluation set is empty")
            sets[name] = (env, tasks)
    return sets


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Loop rate and accuracy (+ Wilson 95%), reward, length, endings and speed of one environment x mode."""
    n = len(records)
    loops = sum(r["looping"] for r in records)
    correct = sum(r["correct"] for r in records)
    tokens = sum(r["n_tokens"] for r in records)
    seconds = sum(r["seconds"] for r in records)
    eos = sum(r["stop_reason"] == "eos" for r in records)
    budget = sum(r["stop_reason"] == "budget" for r in records)
    return {
        "n": n,
        "loops": loops,
        "loop_rate": loops / n,
        "loop_rate_ci95": list(wilson_interval(loops, n)),
        "accuracy": correct / n,
        "accuracy_ci95": list(wilson_interval(correct, n)),
        "mean_reward": sum(r["reward"] for r in records) / n,
        "mean_length": tokens / n,
        # how generations ended: by themselves, at the budget, or cut by the loop guard (sums to 1)
        "eos_share": eos / n,
        "eos_share_ci95": list(wilson_interval(eos, n)),
        "budget_share": budget / n,
        "guard_share": (n - eos - budget) / n,
        "finished_rate": sum(r["finished"] for r in records) / n,  # = eos_share; kept for old readers
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
    }


def _judge(env: Environment, task: Task, completion: Completion, mode: str, sample: int,
           detector_options: dict[str, Any]) -> dict[str, Any]:
    from edgesmith.plugins.loops import detect_loop

    verdict = detect_loop(completion.token_ids, completion.finished, **detector_options)
    looping = verdict.looping or completion.stop_reason.startswith("loop guard")
    try:
        verification = env.verify(task, completion.text)
        reward, correct, details = float(verification.reward), bool(verification.correct), verification.details
    except Exception as exc:  # a verifier bug must not lose the whole run; it is recorded
        reward, correct, details = 0.0, False, {"verifier_error": f"{type(exc).__name__}: {exc}"}
    return {
        "task_id": task.id, "mode": mode, "sample": sample, "text": completion.text,
        "n_tokens": completion.n_tokens, "seconds": completion.seconds, "finished": completion.finished,
        "stop_reason": completion.stop_reason, "looping": looping,
        "loop_reason": verdict.reason if verdict.looping else (completion.stop_reason if looping else ""),
        "reward": reward, "correct": correct, "details": details,
    }


def evaluate(options: EvalOptions, model_path: str | Path | None = None, *, model: Any = None,
             tokenizer: Any = None, out_dir: str | Path | None = None, plugins: Any = None,
             console: Console | None = None) -> dict[str, Any]:
    """Runs the evaluation; writes ``results.json``, ``report.md``, ``report.png`` and
    ``completions.jsonl`` into ``out_dir`` (when given) and returns the results.

    Pass ``model_path`` (a transformers causal-LM directory) or ``model`` and ``tokenizer``.
    """
    console = console or Console(stderr=True)
    if model is None or tokenizer is None:
        if model_path is None:
            raise ConfigError("model_path", None, "a model directory (or a model and tokenizer)")
        task_sets = build_task_sets(options, plugins)  # cheap checks first: fail before loading
        model, tokenizer = load_model(model_path, quant=options.quant)
    else:
        task_sets = build_task_sets(options, plugins)
    render_prompts(tokenizer, [t for _, tasks in task_sets.values() for t in tasks[:1]])  # fails on no template
    # (tasks[:None] is every task: sampled_prompts=null samples them all)
    total = sum(options.greedy * len(tasks) + options.samples * len(tasks[:options.sampled_prompts])
                for _, tasks in task_sets.values())
    if total == 0:
        raise EdgesmithError("the evaluation set is empty: no task in any environment")
    from edgesmith.plugins.loops.numerals import numeral_token_ids

    numerals = numeral_token_ids(tokenizer)
    records: list[dict[str, Any]] = []
    results: dict[str, Any] = {"model": str(model_path) if model_path else type(model).__name__,
                               "options": _plain(options), "environments": {}}
    started = time.time()
    with Progress(TextColumn("[bold]eval[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        bar = progress.add_task("", total=total)
        for env_name, (env, tasks) in task_sets.items():
            progress.update(bar, description=env_name)
            # greedy and sampled rows of a prompt decode together, sharing the prompt's prefill
            rollouts = generate_rollouts(
                model, tokenizer, tasks, greedy=options.greedy, samples=options.samples,
                sampled_tasks=options.sampled_prompts, temperature=options.temperature, top_p=options.top_p,
                max_new_tokens=options.max_new_tokens, batch_size=options.batch_size, seed=options.seed,
                loop_guard=options.loop_guard, progress=lambda done: progress.advance(bar, done))
            detector = {**dataclasses.asdict(options.loop_detector), "numeral_ids": numerals}
            by_mode = {"greedy": [[c] for c in rollouts.greedy], "sampled": rollouts.sampled}
            results["environments"][env_name] = {}
            for mode, per_task in by_mode.items():
                mode_records = [{"env": env_name, **_judge(env, task, c, mode, j, detector)}
                                for task, completions in zip(tasks, per_task) for j, c in enumerate(completions)]
                if mode_records:
                    records.extend(mode_records)
                    results["environments"][env_name][mode] = summarize(mode_records)
    results["seconds"] = time.time() - started
    if out_dir is not None:
        from .report import write_report

        write_report(results, records, out_dir)
    return results


def _plain(options: EvalOptions) -> dict[str, Any]:
    return json.loads(json.dumps(dataclasses.asdict(options), default=str))

