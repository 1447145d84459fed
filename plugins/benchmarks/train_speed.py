"""Benchmark ``train_speed``: one training step in fp32 vs under bf16 autocast, side by side.

What the training stages' ``precision`` option (:mod:`edgesmith.plugins.stages.precision`)
buys on this machine. The model is the ``model`` group's layout, or the ``config.json`` of
``train_speed.model_dir`` (e.g. ``outputs/<run>/search/chosen``, the main job's choice). Both
precisions start from the same weights, see the same batches and step AdamW the way the
Trainer does (fp32 master weights; under ``bf16`` only the autocast region is bf16). The
repeats are interleaved (fp32, bf16, fp32, bf16, ...) so a shared machine's drift hits both
alike; each repeat reports its median step, and the result is the median over repeats, the
bf16 / fp32 speed-up, and how far bf16's loss after the same steps is from fp32's (a check
that the faster steps still learn the same thing). Writes train_speed.json and .png.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from edgesmith.core.errors import ConfigError

SECTION = "train_speed"
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainSpeedOptions:
    """Options of ``edgesmith bench bench=train_speed`` (``+train_speed.<option>=value``).

    ``model_dir``: a directory with a ``config.json`` whose layout is timed (else the ``model``
    group's). ``steps`` timed steps per repeat after one untimed warm-up step.
    """

    model_dir: str | None = None
    precisions: list[str] = field(default_factory=lambda: list(PRECISIONS))
    batch_size: int = 8
    seq_len: int = 512
    steps: int = 4
    repeats: int = 5
    threads: int = 2
    learning_rate: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [p for p in self.precisions if p not in PRECISIONS]
        if not self.precisions or bad or len(set(self.precisions)) != len(self.precisions):
            raise ConfigError(f"{SECTION}.precisions", self.precisions,
                              f"a non-empty list without repeats from: {', '.join(PRECISIONS)}")
        for name in ("batch_size", "seq_len", "steps", "repeats", "threads"):
            if isinstance(getattr(self, name), bool) or getattr(self, name) < 1:
                raise ConfigError(f"{SECTION}.{name}", getattr(self, name), "a positive integer")
        if self.model_dir is not None and not (Path(self.model_dir) / "config.json").is_file():
            raise ConfigError(f"{SECTION}.model_dir", self.model_dir, "a directory holding a config.json")


def timed_config(opts: TrainSpeedOptions, cfg: Any):
    """The EdgeConfig to time: ``model_dir``'s, else the ``model`` group's."""
    from edgesmith.core.plugin_manager import get_plugin_manager
    from edgesmith.core.validation import validate_model

    if opts.model_dir is not None:
        from transformers import AutoConfig

        import edgesmith.core.modeling  # noqa: F401  (registers "edgesmith" with the Auto classes)

        return AutoConfig.from_pretrained(opts.model_dir)
    config = None if cfg is None else validate_model(cfg, get_plugin_manager())
    if config is None:
        raise ConfigError("model", None, f"a model preset (model=NAME) or {SECTION}.model_dir")
    return config


def _train_steps(model: Any, batches: list[Any], bf16: bool, learning_rate: float) -> tuple[list[float], float]:
    """Step times (s) of ``batches[1:]`` (``batches[0]`` warms up) and the last loss."""
    import torch

    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    times, loss = [], float("nan")
    for i, batch in enumerate(batches):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=batch, labels=batch)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:
            times.append(time.perf_counter() - started)
        loss = out.loss.item()
    return times, loss


def measure(opts: TrainSpeedOptions, config: Any, progress: Any = None) -> dict[str, Any]:
    """Interleaved repeats of ``opts.steps`` steps per precision from the same initial weights."""
    import torch
    from transformers import AutoModelForCausalLM, set_seed

    torch.set_num_threads(opts.threads)
    set_seed(opts.seed)
    initial = AutoModelForCausalLM.from_config(config).float()
    generator = torch.Generator().manual_seed(opts.seed)
    batches = [torch.randint(0, config.vocab_size, (opts.batch_size, opts.seq_len), generator=generator)
               for _ in range(opts.steps + 1)]
    step_s = {p: [] for p in opts.precisions}
    losses = {p: [] for p in opts.precisions}
    for repeat in range(opts.repeats):
        for precision in opts.precisions:
            model = copy.deepcopy(initial).train()
            times, loss = _train_steps(model, batches, precision == "bf16", opts.learning_rate)
            step_s[precision].append(statistics.median(times))
            losses[precision].append(loss)
            if progress is not None:
                progress(repeat, precision)
    result = {p: {"step_s": statistics.median(step_s[p]), "step_s_min": min(step_s[p]), "step_s_max": max(step_s[p]),
                  "tokens_per_s": opts.batch_size * opts.seq_len / statistics.median(step_s[p]),
                  "final_loss": losses[p][0], "repeats_s": step_s[p]} for p in opts.precisions}
    if set(PRECISIONS) <= set(opts.precisions):
        result["bf16_speedup"] = result["fp32"]["step_s"] / result["bf16"]["step_s"]
        result["bf16_loss_delta"] = result["bf16"]["final_loss"] - result["fp32"]["final_loss"]
    result["parameters"] = sum(p.numel() for p in initial.parameters())
    return result


def _plot(opts: TrainSpeedOptions, result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    names = list(opts.precisions)
    medians = [result[p]["step_s"] * 1e3 for p in names]
    low = [m - result[p]["step_s_min"] * 1e3 for m, p in zip(medians, names)]
    high = [result[p]["step_s_max"] * 1e3 - m for m, p in zip(medians, names)]
    ax.bar(names, medians, yerr=[low, high], capsize=6, color=["tab:blue", "tab:orange"][:len(names)])
    ax.set_ylabel("ms per training step (median, min-max)")
    speedup = f", bf16 {result['bf16_speedup']:.2f}x faster" if "bf16_speedup" in result else ""
    ax.set_title(f"{result['parameters'] / 1e6:.2f}M params, batch {opts.batch_size}x{opts.seq_len}, "
                 f"{opts.threads} threads{speedup}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_train_speed(opts: TrainSpeedOptions, cfg: Any, out_dir: Path) -> dict[str, Any]:
    """The ``train_speed`` benchmark; writes train_speed.json and train_speed.png into ``out_dir``."""
    from edgesmith.plugins.stages.precision import native_bf16

    config = timed_config(opts, cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)

    def progress(repeat: int, precision: str) -> None:
        console.print(f"repeat {repeat + 1}/{opts.repeats}: {precision} done", highlight=False)

    started = time.perf_counter()
    result = measure(opts, config, progress)
    report = {"benchmark": SECTION, "options": dataclasses.asdict(opts), "native_bf16": native_bf16(),
              "layers": getattr(config, "layers", None), "hidden_size": config.hidden_size,
              "vocab_size": config.vocab_size, "results": result, "elapsed_s": time.perf_counter() - started}
    (out_dir / "train_speed.json").write_text(json.dumps(report, indent=2))
    _plot(opts, result, out_dir / "train_speed.png")
    table = Table(title=f"training step, {result['parameters'] / 1e6:.2f}M parameters, "
                        f"batch {opts.batch_size} x {opts.seq_len} tokens, {opts.threads} threads "
                        f"(native bf16: {report['native_bf16']})")
    for column in ("precision", "ms/step (median)", "min-max", "tokens/s", f"loss after {opts.steps + 1} steps"):
        table.add_column(column)
    for p in opts.precisions:
        r = result[p]
        table.add_row(p, f"{r['step_s'] * 1e3:.0f}", f"{r['step_s_min'] * 1e3:.0f}-{r['step_s_max'] * 1e3:.0f}",
                      f"{r['tokens_per_s']:.0f}", f"{r['final_loss']:.4f}")
    out = Console()
    out.print(table)
    if "bf16_speedup" in result:
        out.print(f"bf16 / fp32 speed-up {result['bf16_speedup']:.2f}x; loss delta {result['bf16_loss_delta']:+.4f}",
                  highlight=False)
    return report
