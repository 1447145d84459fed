"""Benchmark ``model``: EdgeForCausalLM vs transformers' LFM2 vs a Llama of equal size, on CPU.

The LFM2-350M layout (by default) is built once with random weights and saved; the same
weights are converted into an edgesmith checkpoint, and a transformers Llama with the
same hidden size, depth, heads and vocabulary gets an FFN width that gives it the same
parameter count. Each (repeat, dtype, model) is then measured in a fresh subprocess
(:mod:`.model_speed_worker`), so peak RSS belongs to one model, and the repeats are
interleaved across models so slow drift of a shared machine hits all of them alike. The
best of the repeats is reported, with the ratios edgesmith / lfm2 and edgesmith / llama.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from edgesmith.core.errors import ConfigError
from edgesmith.core.stage_options import build_options

MODELS = ("edgesmith", "lfm2", "llama")
DTYPES = ("float32", "bfloat16")
SECTION = "model"  # options live in the config section named like the benchmark


@dataclass
class ModelSpeedOptions:
    """Options of ``edgesmith bench bench=model`` (``model.<option>=value``)."""

    dtypes: list[str] = field(default_factory=lambda: ["float32", "bfloat16"])
    prefill_lengths: list[int] = field(default_factory=lambda: [512, 2048])
    decode_contexts: list[int] = field(default_factory=lambda: [512, 2048, 4096])
    decode_tokens: int = 32
    repeats: int = 2
    threads: int = 2
    models: list[str] = field(default_factory=lambda: list(MODELS))
    seed: int = 0
    keep_checkpoints: bool = False
    # Layout: LFM2-350M. Its config says block_ff_dim 6656, which LFM2 auto-adjusts
    # (2/3, rounded up to a multiple of 256) to the FFN width 4608 given here.
    vocab_size: int = 65536
    hidden_size: int = 1024
    intermediate_size: int = 4608
    num_layers: int = 16
    attention_layers: list[int] = field(default_factory=lambda: [2, 5, 8, 10, 12, 14])
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    conv_length: int = 3

    def __post_init__(self) -> None:
        key = SECTION
        for name in ("dtypes", "models"):
            accepted = DTYPES if name == "dtypes" else MODELS
            values = getattr(self, name)
            bad = [v for v in values if v not in accepted]
            if not values or bad or len(set(values)) != len(values):
                raise ConfigError(f"{key}.{name}", values,
                                  f"a non-empty list without repeats from: {', '.join(accepted)}")
        for name in ("prefill_lengths", "decode_contexts"):
            values = getattr(self, name)
            if any(int(v) < 1 for v in values):
                raise ConfigError(f"{key}.{name}", values, "a list of positive token counts")
        if not self.prefill_lengths and not self.decode_contexts:
            raise ConfigError(f"{key}.prefill_lengths", self.prefill_lengths,
                              "at least one prefill length or decode context")
        for name in ("decode_tokens", "repeats", "threads", "vocab_size", "hidden_size",
                     "intermediate_size", "num_layers", "num_attention_heads",
                     "num_key_value_heads", "conv_length"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", getattr(self, name), "a positive integer")
        bad = [i for i in self.attention_layers if not 0 <= i < self.num_layers]
        if bad:
            raise ConfigError(f"{key}.attention_layers", self.attention_layers,
                              f"layer indices in [0, {self.num_layers - 1}]")
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"{key}.num_attention_heads", self.num_attention_heads,
                              f"a divisor of {key}.hidden_size={self.hidden_size}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f"{key}.num_key_value_heads", self.num_key_value_heads,
                              f"a divisor of {key}.num_attention_heads={self.num_attention_heads}")

    @property
    def contexts(self) -> list[int]:
        return sorted(set(self.prefill_lengths) | set(self.decode_contexts))


def lfm2_layout(opts: ModelSpeedOptions):
    """The transformers ``Lfm2Config`` of the benchmarked layout."""
    from transformers import Lfm2Config

    attention = set(opts.attention_layers)
    return Lfm2Config(
        vocab_size=opts.vocab_size, hidden_size=opts.hidden_size,
        intermediate_size=opts.intermediate_size, block_auto_adjust_ff_dim=False,
        num_hidden_layers=opts.num_layers, num_attention_heads=opts.num_attention_heads,
        num_key_value_heads=opts.num_key_value_heads, conv_L_cache=opts.conv_length,
        layer_types=["full_attention" if i in attention else "conv" for i in range(opts.num_layers)],
        max_position_embeddings=max(128_000, max(opts.contexts) + opts.decode_tokens + 64),
        tie_word_embeddings=True,
    )


def _count_on_meta(cls, config) -> int:
    import torch

    with torch.device("meta"):
        model = cls(config)
    return sum(p.numel() for p in model.parameters())


def matched_llama(lfm2_config) -> tuple[Any, int, int]:
    """A ``LlamaConfig`` with LFM2's dims whose FFN width makes its parameter count closest.

    Returns the config, its parameter count and LFM2's.
    """
    from transformers import Lfm2ForCausalLM, LlamaConfig, LlamaForCausalLM

    def llama(intermediate: int) -> Any:
        return LlamaConfig(
            vocab_size=lfm2_config.vocab_size, hidden_size=lfm2_config.hidden_size,
            intermediate_size=intermediate, num_hidden_layers=lfm2_config.num_hidden_layers,
            num_attention_heads=lfm2_config.num_attention_heads,
            num_key_value_heads=lfm2_config.num_key_value_heads,
            max_position_embeddings=lfm2_config.max_position_embeddings,
            rms_norm_eps=lfm2_config.norm_eps, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
            pad_token_id=0, bos_token_id=1, eos_token_id=2,
        )

    target = _count_on_meta(Lfm2ForCausalLM, lfm2_config)
    base_width = lfm2_config.intermediate_size
    base = _count_on_meta(LlamaForCausalLM, llama(base_width))
    per_unit = 3 * lfm2_config.hidden_size * lfm2_config.num_hidden_layers  # w_gate, w_up, w_down
    width = max(1, base_width + round((target - base) / per_unit))
    config = llama(width)
    return config, _count_on_meta(LlamaForCausalLM, config), target


def build_checkpoints(opts: ModelSpeedOptions, root: Path) -> dict[str, Any]:
    """Writes the three checkpoints (fp32) under ``root``; edgesmith's is LFM2's, converted."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our own progress bar is the one to watch
    try:
        return _build_checkpoints(opts, root)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _build_checkpoints(opts: ModelSpeedOptions, root: Path) -> dict[str, Any]:
    import torch
    from transformers import Lfm2ForCausalLM, LlamaForCausalLM

    from edgesmith.plugins.interop.lfm2 import import_lfm2

    info: dict[str, Any] = {}
    lfm2_config = lfm2_layout(opts)
    torch.manual_seed(opts.seed)
    lfm2 = Lfm2ForCausalLM(lfm2_config)
    lfm2.save_pretrained(root / "lfm2")
    del lfm2
    edge = import_lfm2(root / "lfm2", root / "edgesmith")
    del edge
    llama_config, llama_params, lfm2_params = matched_llama(lfm2_config)
    torch.manual_seed(opts.seed)
    llama = LlamaForCausalLM(llama_config)
    llama.save_pretrained(root / "llama")
    del llama
    info["llama_intermediate_size"] = llama_config.intermediate_size
    info["declared_parameters"] = {"lfm2": lfm2_params, "llama": llama_params}
    return info


def _run_worker(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    tag = f"{spec['kind']}-{spec['dtype']}-{spec['repeat']}"
    spec_path, out_path = work / f"{tag}.spec.json", work / f"{tag}.result.json"
    spec_path.write_text(json.dumps(spec))
    env = dict(os.environ)
    threads = str(spec["threads"])
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TRANSFORMERS_VERBOSITY="error",
               TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(
        [sys.executable, "-m", "edgesmith.plugins.benchmarks.model_speed_worker",
         str(spec_path), str(out_path)],
        env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"measuring {spec['kind']} ({spec['dtype']}) failed "
                           f"with exit code {proc.returncode}:\n{tail}")
    return json.loads(out_path.read_text())


def _best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best throughput over repeats (noise on a shared machine only ever slows things down)."""
    best: dict[str, Any] = {"prefill_tok_s": {}, "decode_tok_s": {}}
    for metric in ("prefill_tok_s", "decode_tok_s"):
        for context in runs[0][metric]:
            best[metric][context] = max(run[metric][context] for run in runs)
    best["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    best["rss_after_load_mb"] = max(run["rss_after_load_mb"] for run in runs)
    best["num_parameters"] = runs[0]["num_parameters"]
    best["runs"] = runs
    return best


def _metric_rows(opts: ModelSpeedOptions) -> list[tuple[str, str, str | None]]:
    """(label, metric, context) in table order."""
    rows = [(f"prefill tok/s @{c}", "prefill_tok_s", str(c)) for c in sorted(opts.prefill_lengths)]
    rows += [(f"decode tok/s @{c}", "decode_tok_s", str(c)) for c in sorted(opts.decode_contexts)]
    rows.append(("peak RSS MB", "peak_rss_mb", None))
    return rows


def _value(entry: dict[str, Any], metric: str, context: str | None) -> float:
    return entry[metric] if context is None else entry[metric][context]


def compute_ratios(opts: ModelSpeedOptions, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """edgesmith / other for every metric and dtype (throughput: >1 is faster; RSS: <1 is smaller)."""
    ratios: dict[str, Any] = {}
    for dtype, by_model in results.items():
        ratios[dtype] = {}
        if "edgesmith" not in by_model:
            continue
        for other in ("lfm2", "llama"):
            if other not in by_model:
                continue
            ratios[dtype][f"edgesmith/{other}"] = {
                label: _value(by_model["edgesmith"], metric, ctx) / _value(by_model[other], metric, ctx)
                for label, metric, ctx in _metric_rows(opts)
            }
    return ratios


def _table(opts: ModelSpeedOptions, dtype: str, by_model: dict[str, Any], ratios: dict[str, Any]) -> Table:
    table = Table(title=f"model benchmark, {dtype}, {opts.threads} threads, batch 1, greedy")
    table.add_column("metric", no_wrap=True)
    for model in opts.models:
        table.add_column(model, justify="right", no_wrap=True)
    ratio_names = list(ratios)
    for name in ratio_names:
        table.add_column(name, justify="right", no_wrap=True)
    for label, metric, ctx in _metric_rows(opts):
        cells = [f"{_value(by_model[m], metric, ctx):,.1f}" for m in opts.models]
        for name in ratio_names:
            r = ratios[name][label]
            good = r <= 1.0 if metric == "peak_rss_mb" else r >= 1.0
            cells.append(f"[{'green' if good else 'red'}]{r:.2f}[/]")
        table.add_row(label, *cells)
    return table


def _plot(opts: ModelSpeedOptions, results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    panels = [("prefill tok/s", "prefill_tok_s", sorted(opts.prefill_lengths)),
              ("decode tok/s", "decode_tok_s", sorted(opts.decode_contexts)),
              ("peak RSS (MB)", "peak_rss_mb", [None])]
    panels = [p for p in panels if p[2]]
    fig, axes = plt.subplots(len(results), len(panels), figsize=(4.5 * len(panels), 3.6 * len(results)),
                             squeeze=False)
    width = 0.8 / len(opts.models)
    for row, (dtype, by_model) in enumerate(results.items()):
        for col, (title, metric, contexts) in enumerate(panels):
            ax = axes[row][col]
            x = np.arange(len(contexts))
            for i, model in enumerate(opts.models):
                values = [_value(by_model[model], metric, None if c is None else str(c)) for c in contexts]
                ax.bar(x + (i - (len(opts.models) - 1) / 2) * width, values, width, label=model)
            ax.set_xticks(x, [f"ctx {c}" if c is not None else "" for c in contexts])
            ax.set_title(f"{title}, {dtype}")
    fig.suptitle(f"edgesmith vs LFM2 (same weights) vs Llama (same size), {opts.threads} CPU threads")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=len(opts.models))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _machine() -> dict[str, Any]:
    import psutil
    import torch
    import transformers

    return {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def run_model_speed(cfg: Any, out_dir: Path) -> dict[str, Any]:
    """The ``model`` benchmark: ``(cfg, out_dir) -> results``; writes model_speed.json and .png."""
    section = OmegaConf.select(cfg, SECTION, default=None) if cfg is not None else None
    opts = build_options(ModelSpeedOptions, section, key=SECTION)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="model_speed_", dir=out_dir))
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("building checkpoints (same weights for edgesmith and lfm2)",
                                     total=1 + opts.repeats * len(opts.dtypes) * len(opts.models))
            info = build_checkpoints(opts, work)
            progress.advance(task)
            for repeat in range(opts.repeats):
                for dtype in opts.dtypes:
                    for model in opts.models:
                        progress.update(task, description=f"repeat {repeat + 1}/{opts.repeats}: "
                                                          f"{model} {dtype}")
                        spec = {"kind": model, "path": str(work / model), "dtype": dtype,
                                "threads": opts.threads, "prefill_lengths": opts.prefill_lengths,
                                "decode_contexts": opts.decode_contexts,
                                "decode_tokens": opts.decode_tokens, "vocab_size": opts.vocab_size,
                                "seed": opts.seed, "repeat": repeat}
                        runs.setdefault((dtype, model), []).append(_run_worker(spec, work))
                        progress.advance(task)
    finally:
        if opts.keep_checkpoints:
            console.print(f"checkpoints kept in {work}", highlight=False)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results = {dtype: {model: _best(runs[(dtype, model)]) for model in opts.models} for dtype in opts.dtypes}
    ratios = compute_ratios(opts, results)
    report = {
        "benchmark": "model",
        "options": dataclasses.asdict(opts),
        "machine": _machine(),
        "parameters": {model: results[opts.dtypes[0]][model]["num_parameters"] for model in opts.models},
        "llama_intermediate_size": info["llama_intermediate_size"],
        "results": results,
        "ratios": ratios,
        "elapsed_s": time.perf_counter() - started,
    }
    (out_dir / "model_speed.json").write_text(json.dumps(report, indent=2))
    _plot(opts, results, out_dir / "model_speed.png")
    out = Console(width=None if sys.stdout.isatty() else 120)  # logs and pipes: no wrapped rows
    for dtype in opts.dtypes:
        out.print(_table(opts, dtype, results[dtype], ratios[dtype]))
    out.print(f"parameters: " + ", ".join(f"{m} {n / 1e6:.1f}M" for m, n in report["parameters"].items())
              + f"; elapsed {report['elapsed_s']:.0f} s; JSON and PNG in {out_dir}", highlight=False)
    return report
