"""Benchmark ``model``: EdgeForCausalLM vs transformers' LFM2 vs a Llama of equal size, on CPU.

The layout is the ``model`` config group, as in every other command (``model=lfm2_350m`` by
default; any preset of ``short_conv`` and ``gqa`` layers LFM2 can hold). It is converted to an
``Lfm2Config`` by the LFM2 interop (:func:`edge_config_to_lfm2`), built once with random
weights and saved; the same weights are converted into an edgesmith checkpoint, and a transformers Llama with the
same hidden size, depth, heads and vocabulary gets an FFN width that gives it the same
parameter count. Each (repeat, dtype, model) is then measured in a fresh subprocess
(:mod:`.model_speed_worker`), so peak RSS belongs to one model, and the repeats are
interleaved across models so slow drift of a shared machine hits all of them alike. Each
repeat also measures the mat-vec roofline (GB/s of weights a one-row product streams, per
dtype and CPU path, over as many weights as one decode step reads, so that no dtype's probe
fits in the last-level cache when the model does not) and, with ``rollout``, batched sampled rollouts (edgesmith's rollout
loop vs transformers' ``generate`` on LFM2, same weights, plus whether their greedy
outputs are identical). The median of the repeats is reported, with the ratios edgesmith /
lfm2 and edgesmith / llama, each decode cell as a fraction of the roofline (the weights
it reads per token at the fp32 mat-vec bandwidth), and the int8 and bf16 speed-ups over
fp32. dtypes ``int8`` and ``int8_dynamic`` are edgesmith only: weights quantized to int8 per
channel, multiplied by ``_weight_int8pack_mm`` (bf16 rows) or by fbgemm with the rows
quantized too (:mod:`edgesmith.core.linear`).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
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

MODELS = ("edgesmith", "lfm2", "llama")
DTYPES = ("float32", "bfloat16", "int8", "int8_dynamic")
CLOCKS = ("wall", "cpu")
SECTION = "model_speed"  # options live in the config section named like the benchmark


@dataclass
class ModelSpeedOptions:
    """Options of ``edgesmith bench bench=model_speed`` (``model_speed.<option>=value``).

    The layout is not an option: it is the ``model`` config group (``model=PRESET``).
    """

    dtypes: list[str] = field(default_factory=lambda: list(DTYPES))
    prefill_lengths: list[int] = field(default_factory=lambda: [512, 2048])
    decode_contexts: list[int] = field(default_factory=lambda: [512, 2048, 4096])
    decode_tokens: int = 32
    # timed prefill passes per repeat, their median kept: with one pass, the bf16 prefill at 512
    # came out at 0.85-0.97x LFM2 across four runs of unchanged prefill code (ro2-ro5 in README)
    prefill_passes: int = 3
    repeats: int = 5
    threads: int = 2
    clock: str = "wall"  # or "cpu": the process's CPU time, less disturbed by other jobs on the cores
    rollout: bool = True  # also time batched sampled rollouts vs transformers' generate
    rollout_dtype: str = "float32"
    rollout_prompts: int = 8
    rollout_samples: int = 6
    rollout_new_tokens: int = 128
    rollout_prompt_min: int = 32  # prompt lengths drawn in [min, max]: a left-padded batch
    rollout_prompt_max: int = 96
    models: list[str] = field(default_factory=lambda: list(MODELS))
    seed: int = 0
    keep_checkpoints: bool = False

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
        if self.clock not in CLOCKS:
            raise ConfigError(f"{key}.clock", self.clock, f"one of: {', '.join(CLOCKS)}")
        if self.rollout_dtype not in ("float32", "bfloat16"):
            raise ConfigError(f"{key}.rollout_dtype", self.rollout_dtype, "float32 or bfloat16")
        if not 1 <= self.rollout_prompt_min <= self.rollout_prompt_max:
            raise ConfigError(f"{key}.rollout_prompt_max", self.rollout_prompt_max,
                              f"an integer >= {key}.rollout_prompt_min >= 1")
        for name in ("rollout_prompts", "rollout_samples", "rollout_new_tokens"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", getattr(self, name), "a positive integer")
        for name in ("decode_tokens", "prefill_passes", "repeats", "threads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", getattr(self, name), "a positive integer")

    @property
    def contexts(self) -> list[int]:
        return sorted(set(self.prefill_lengths) | set(self.decode_contexts))


def benchmarked_layout(cfg: Any, opts: ModelSpeedOptions):
    """The ``model`` group's layout (validated as every command validates it) as an ``Lfm2Config``.

    A layout LFM2 cannot hold (e.g. ``swa`` layers) is an error naming the layers, and so is one
    whose ``max_position_embeddings`` is shorter than the longest measured context.
    """
    from edgesmith.core.plugin_manager import get_plugin_manager
    from edgesmith.core.validation import validate_model
    from edgesmith.plugins.interop.lfm2 import edge_config_to_lfm2

    config = None if cfg is None else validate_model(cfg, get_plugin_manager())
    if config is None:
        raise ConfigError("model", None, "a model preset (model=NAME, conf/model/) whose layout is benchmarked")
    lfm2_config = edge_config_to_lfm2(config)
    longest = max(opts.contexts) + opts.decode_tokens
    if config.max_position_embeddings < longest:
        raise ConfigError("model.max_position_embeddings", config.max_position_embeddings,
                          f"at least the longest context plus {SECTION}.decode_tokens ({longest})")
    return lfm2_config


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


def build_checkpoints(lfm2_config: Any, opts: ModelSpeedOptions, root: Path) -> dict[str, Any]:
    """Writes the three checkpoints (fp32) under ``root``; edgesmith's is LFM2's, converted."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # our own progress bar is the one to watch
    try:
        return _build_checkpoints(lfm2_config, opts, root)
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def write_lfm2_and_edgesmith(lfm2_config: Any, seed: int, root: Path) -> None:
    """An LFM2 of this layout with seeded random weights in ``root/lfm2``, the same weights as
    an edgesmith checkpoint in ``root/edgesmith`` (fp32)."""
    import torch
    from transformers import Lfm2ForCausalLM

    from edgesmith.plugins.interop.lfm2 import import_lfm2

    torch.manual_seed(seed)
    lfm2 = Lfm2ForCausalLM(lfm2_config)
    lfm2.save_pretrained(root / "lfm2")
    del lfm2
    import_lfm2(root / "lfm2", root / "edgesmith")


def _build_checkpoints(lfm2_config: Any, opts: ModelSpeedOptions, root: Path) -> dict[str, Any]:
    import torch
    from transformers import LlamaForCausalLM

    info: dict[str, Any] = {}
    write_lfm2_and_edgesmith(lfm2_config, opts.seed, root)
    llama_config, llama_params, lfm2_params = matched_llama(lfm2_config)
    torch.manual_seed(opts.seed)
    llama = LlamaForCausalLM(llama_config)
    llama.save_pretrained(root / "llama")
    del llama
    info["llama_intermediate_size"] = llama_config.intermediate_size
    info["declared_parameters"] = {"lfm2": lfm2_params, "llama": llama_params}
    return info


def _run_worker(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    tag = f"{spec.get('task', 'model')}-{spec['kind']}-{spec['dtype']}-{spec['repeat']}"
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
        raise RuntimeError(f"measuring {tag} failed with exit code {proc.returncode}:\n{tail}")
    return json.loads(out_path.read_text())


def _median(runs: list[dict[str, Any]], clock: str) -> dict[str, Any]:
    """Median over repeats of every throughput (each decode value is itself a median step)."""
    med: dict[str, Any] = {"prefill_tok_s": {}, "decode_tok_s": {}}
    for metric in ("prefill_tok_s", "decode_tok_s"):
        for context in runs[0][f"{metric}_{clock}"]:
            med[metric][context] = statistics.median(run[f"{metric}_{clock}"][context] for run in runs)
    med["peak_rss_mb"] = max(run["peak_rss_mb"] for run in runs)
    med["rss_after_load_mb"] = max(run["rss_after_load_mb"] for run in runs)
    med["num_parameters"] = runs[0]["num_parameters"]
    med["decode_bytes"] = runs[0]["decode_bytes"]
    med["runs"] = runs
    return med


def _models_for(opts: ModelSpeedOptions, dtype: str) -> list[str]:
    """int8 and int8_dynamic are edgesmith's own quantizations: the transformers models run them in no form."""
    return ["edgesmith"] if dtype.startswith("int8") else list(opts.models)


def _metric_rows(opts: ModelSpeedOptions) -> list[tuple[str, str, str | None]]:
    """(label, metric, context) in table order."""
    rows = [(f"prefill tok/s @{c}", "prefill_tok_s", str(c)) for c in sorted(opts.prefill_lengths)]
    rows += [(f"decode tok/s @{c}", "decode_tok_s", str(c)) for c in sorted(opts.decode_contexts)]
    rows.append(("peak RSS MB", "peak_rss_mb", None))
    return rows


def _value(entry: dict[str, Any], metric: str, context: str | None) -> float:
    return entry[metric] if context is None else entry[metric][context]


def compute_ratios(opts: ModelSpeedOptions, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """edgesmith / other for every metric and dtype (throughput: >1 is faster; RSS: <1 is smaller),
    and edgesmith in bf16 / int8 over edgesmith in fp32 (``speedup over float32``)."""
    ratios: dict[str, Any] = {}
    fp32 = results.get("float32", {}).get("edgesmith")
    for dtype, by_model in results.items():
        ratios[dtype] = {}
        if "edgesmith" not in by_model:
            continue
        others = [(f"edgesmith/{m}", by_model[m]) for m in ("lfm2", "llama") if m in by_model]
        if fp32 is not None and dtype != "float32":
            others.append(("edgesmith/edgesmith float32", fp32))
        for name, other in others:
            ratios[dtype][name] = {
                label: _value(by_model["edgesmith"], metric, ctx) / _value(other, metric, ctx)
                for label, metric, ctx in _metric_rows(opts)
            }
    return ratios


def summarize_roofline(runs: list[dict[str, Any]], clock: str) -> dict[str, Any]:
    """Median GB/s per path over repeats, and each dtype's best path."""
    paths: dict[str, Any] = {}
    for name, first in runs[0]["paths"].items():
        paths[name] = {"dtype": first["dtype"],
                       "gb_s": statistics.median(run["paths"][name][f"gb_s_{clock}"] for run in runs)}
    best = {}
    for name, entry in paths.items():
        if entry["gb_s"] > best.get(entry["dtype"], (0.0, ""))[0]:
            best[entry["dtype"]] = (entry["gb_s"], name)
    return {"paths": paths, "best_gb_s": {d: v[0] for d, v in best.items()},
            "best_path": {d: v[1] for d, v in best.items()}, "fp32_gb_s": best["float32"][0],
            "shapes": runs[0]["shapes"], "copies": runs[0].get("copies", 1), "runs": runs}


def roofline_fractions(opts: ModelSpeedOptions, results: dict[str, Any], roofline: dict[str, Any]) -> dict[str, Any]:
    """Each decode cell against its roofline: ``decode tok/s * bytes read per token / GB/s``.

    ``of_fp32_bandwidth``: at the fp32 mat-vec bandwidth (the issue's yardstick: a bf16 or
    int8 decode as fast per byte as an fp32 one); ``of_own_bandwidth``: at the fastest
    measured one-row path of the cell's own dtype.
    """
    out: dict[str, Any] = {}
    for dtype, by_model in results.items():
        own = roofline["best_gb_s"].get(dtype, roofline["fp32_gb_s"])
        out[dtype] = {}
        for model, entry in by_model.items():
            nbytes = entry["decode_bytes"]
            cells = {}
            for ctx, tok_s in entry["decode_tok_s"].items():
                cells[ctx] = {"roofline_tok_s": roofline["fp32_gb_s"] * 1e9 / nbytes,
                              "of_fp32_bandwidth": tok_s * nbytes / (roofline["fp32_gb_s"] * 1e9),
                              "of_own_bandwidth": tok_s * nbytes / (own * 1e9)}
            out[dtype][model] = {"decode_bytes": nbytes, "cells": cells}
    return out


def speedup_bounds(roofline: dict[str, Any], fractions: dict[str, Any]) -> dict[str, float]:
    """Each dtype's largest possible edgesmith decode speed-up over fp32 on this machine: both
    at their rooflines (the dtype's fastest one-row path, fp32's), as if nothing but the weight
    products took time. A goal above it needs a faster kernel, not a faster model."""
    if "edgesmith" not in fractions.get("float32", {}):
        return {}
    fp32_tok_s = roofline["fp32_gb_s"] * 1e9 / fractions["float32"]["edgesmith"]["decode_bytes"]
    return {dtype: roofline["best_gb_s"][dtype] * 1e9 / by_model["edgesmith"]["decode_bytes"] / fp32_tok_s
            for dtype, by_model in fractions.items() if "edgesmith" in by_model and dtype in roofline["best_gb_s"]}


def summarize_rollouts(runs: dict[str, list[dict[str, Any]]], clock: str) -> dict[str, Any]:
    """Median sampled tokens/s per engine, their ratio, and how many greedy rows agree token for token."""
    out: dict[str, Any] = {m: {"tok_s": statistics.median(r[f"tok_s_{clock}"] for r in rs), "runs": rs}
                           for m, rs in runs.items()}
    if "edgesmith" in runs and "lfm2" in runs:
        out["ratio"] = out["edgesmith"]["tok_s"] / out["lfm2"]["tok_s"]
        ours, theirs = runs["edgesmith"][0]["greedy"], runs["lfm2"][0]["greedy"]
        out["greedy_identical_rows"] = sum(a == b for a, b in zip(ours, theirs))
        out["greedy_rows"] = len(ours)
        first_diff = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None) for a, b in zip(ours, theirs)]
        out["greedy_first_difference"] = first_diff
    return out


def _table(opts: ModelSpeedOptions, dtype: str, by_model: dict[str, Any], ratios: dict[str, Any],
           fractions: dict[str, Any]) -> Table:
    models = _models_for(opts, dtype)
    table = Table(title=f"model benchmark, {dtype}, {opts.threads} threads, batch 1, greedy, "
                        f"median of {opts.repeats} ({opts.clock} clock)")
    table.add_column("metric", no_wrap=True)
    for model in models:
        table.add_column(model, justify="right", no_wrap=True)
    ratio_names = list(ratios)
    for name in ratio_names:
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("edgesmith of roofline", justify="right", no_wrap=True)
    for label, metric, ctx in _metric_rows(opts):
        cells = [f"{_value(by_model[m], metric, ctx):,.1f}" for m in models]
        for name in ratio_names:
            r = ratios[name][label]
            good = r <= 1.0 if metric == "peak_rss_mb" else r >= 1.0
            cells.append(f"[{'green' if good else 'red'}]{r:.2f}[/]")
        if metric == "decode_tok_s":
            cell = fractions["edgesmith"]["cells"][ctx]
            cells.append(f"{cell['of_fp32_bandwidth']:.0%} (own {cell['of_own_bandwidth']:.0%})")
        else:
            cells.append("")
        table.add_row(label, *cells)
    return table


def _roofline_table(opts: ModelSpeedOptions, roofline: dict[str, Any], fractions: dict[str, Any]) -> Table:
    table = Table(title=f"mat-vec roofline: one row x the layout's weight matrices ({roofline['copies']} copies of "
                        f"each: a decode step's bytes), {opts.threads} threads, median of {opts.repeats} "
                        f"({opts.clock} clock)")
    for column in ("path", "dtype", "GB/s", "edgesmith decode roofline tok/s", "speed-up bound over fp32"):
        table.add_column(column, justify="left" if column == "path" else "right", no_wrap=True)
    bounds = speedup_bounds(roofline, fractions)
    for name, entry in roofline["paths"].items():
        dtype = entry["dtype"]
        best = roofline["best_path"].get(dtype) == name
        tok = bound = ""
        if best and dtype in fractions and "edgesmith" in fractions[dtype]:
            nbytes = fractions[dtype]["edgesmith"]["decode_bytes"]
            tok = f"{entry['gb_s'] * 1e9 / nbytes:.1f} (at fp32's GB/s: {roofline['fp32_gb_s'] * 1e9 / nbytes:.1f})"
        if best and dtype in bounds:
            bound = f"{bounds[dtype]:.2f}x"
        table.add_row(name + (" *" if best else ""), dtype, f"{entry['gb_s']:.1f}", tok, bound)
    return table


def _rollout_table(opts: ModelSpeedOptions, rollouts: dict[str, Any]) -> Table:
    table = Table(title=f"batched sampled rollouts: {opts.rollout_prompts} prompts x {opts.rollout_samples} "
                        f"samples, {opts.rollout_new_tokens} new tokens, left-padded, {opts.rollout_dtype}, "
                        f"median of {opts.repeats} ({opts.clock} clock)")
    for column in ("engine", "tok/s", "ratio", "greedy rows identical"):
        table.add_column(column, justify="left" if column == "engine" else "right", no_wrap=True)
    ratio = rollouts.get("ratio")
    same = (f"{rollouts['greedy_identical_rows']}/{rollouts['greedy_rows']}" if "greedy_rows" in rollouts else "")
    if "edgesmith" in rollouts:
        table.add_row("edgesmith rollout loop", f"{rollouts['edgesmith']['tok_s']:,.1f}",
                      "" if ratio is None else f"[{'green' if ratio >= 1 else 'red'}]{ratio:.2f}[/]", same)
    if "lfm2" in rollouts:
        table.add_row("transformers generate (LFM2)", f"{rollouts['lfm2']['tok_s']:,.1f}", "1.00", "")
    return table


def _plot(opts: ModelSpeedOptions, results: dict[str, Any], roofline: dict[str, Any],
          fractions: dict[str, Any], path: Path) -> None:
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
    for row, (dtype, by_model) in enumerate(results.items()):
        models = _models_for(opts, dtype)
        width = 0.8 / len(models)
        for col, (title, metric, contexts) in enumerate(panels):
            ax = axes[row][col]
            x = np.arange(len(contexts))
            for i, model in enumerate(models):
                values = [_value(by_model[model], metric, None if c is None else str(c)) for c in contexts]
                ax.bar(x + (i - (len(models) - 1) / 2) * width, values, width, label=model)
            if metric == "decode_tok_s" and "edgesmith" in fractions.get(dtype, {}):
                roof = fractions[dtype]["edgesmith"]["cells"][str(contexts[0])]["roofline_tok_s"]
                ax.axhline(roof, color="black", linestyle="--", linewidth=1, label="roofline (fp32 GB/s)")
            ax.set_xticks(x, [f"ctx {c}" if c is not None else "" for c in contexts])
            ax.set_title(f"{title}, {dtype}")
    others = {"lfm2": "LFM2 (same weights)", "llama": "Llama (same size)"}
    versus = "".join(f" vs {others[m]}" for m in opts.models if m in others)
    fig.suptitle(f"edgesmith{versus}, {opts.threads} CPU threads, median of {opts.repeats} ({opts.clock} clock)")
    handles, labels = axes[0][1 if len(panels) > 1 else 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.955), ncol=len(labels))
    fig.tight_layout(rect=(0, 0, 1, 0.91))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _machine() -> dict[str, Any]:
    import psutil
    import torch
    import transformers

    return {"cpu": platform.processor() or platform.machine(), "logical_cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def run_model_speed(opts: ModelSpeedOptions, cfg: Any, out_dir: Path) -> dict[str, Any]:
    """The ``model_speed`` benchmark of the ``model`` group's layout; writes model_speed.json and .png."""
    lfm2_config = benchmarked_layout(cfg, opts)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    started = time.perf_counter()
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    work = Path(tempfile.mkdtemp(prefix="model_speed_", dir=out_dir))
    runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
    roofline_runs: list[dict[str, Any]] = []
    rollout_engines = [m for m in ("edgesmith", "lfm2") if m in opts.models] if opts.rollout else []
    rollout_runs: dict[str, list[dict[str, Any]]] = {m: [] for m in rollout_engines}
    per_repeat = 1 + sum(len(_models_for(opts, d)) for d in opts.dtypes) + len(rollout_engines)
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    base = {"threads": opts.threads, "prefill_lengths": opts.prefill_lengths,
            "decode_contexts": opts.decode_contexts, "decode_tokens": opts.decode_tokens,
            "prefill_passes": opts.prefill_passes,
            "vocab_size": lfm2_config.vocab_size, "hidden_size": lfm2_config.hidden_size,
            "intermediate_size": lfm2_config.intermediate_size, "seed": opts.seed,
            **{k: getattr(opts, k) for k in ("rollout_prompts", "rollout_samples", "rollout_new_tokens",
                                             "rollout_prompt_min", "rollout_prompt_max")}}
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("building checkpoints (same weights for edgesmith and lfm2)",
                                     total=1 + opts.repeats * per_repeat)
            info = build_checkpoints(lfm2_config, opts, work)
            progress.advance(task)
            for repeat in range(opts.repeats):
                progress.update(task, description=f"repeat {repeat + 1}/{opts.repeats}: mat-vec roofline")
                roofline_runs.append(_run_worker({**base, "task": "roofline", "kind": "matvec",
                                                  "dtype": "all", "repeat": repeat,
                                                  "working_set_bytes": 4 * info["declared_parameters"]["lfm2"]},
                                                 work))
                progress.advance(task)
                for dtype in opts.dtypes:
                    for model in _models_for(opts, dtype):
                        progress.update(task, description=f"repeat {repeat + 1}/{opts.repeats}: "
                                                          f"{model} {dtype}")
                        spec = {**base, "task": "model", "kind": model, "path": str(work / model),
                                "dtype": dtype, "repeat": repeat}
                        runs.setdefault((dtype, model), []).append(_run_worker(spec, work))
                        progress.advance(task)
                for model in rollout_engines:
                    progress.update(task, description=f"repeat {repeat + 1}/{opts.repeats}: {model} rollouts")
                    spec = {**base, "task": "rollout", "kind": model, "path": str(work / model),
                            "dtype": opts.rollout_dtype, "repeat": repeat}
                    rollout_runs[model].append(_run_worker(spec, work))
                    progress.advance(task)
    finally:
        if opts.keep_checkpoints:
            console.print(f"checkpoints kept in {work}", highlight=False)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results = {dtype: {model: _median(runs[(dtype, model)], opts.clock) for model in _models_for(opts, dtype)}
               for dtype in opts.dtypes}
    ratios = compute_ratios(opts, results)
    roofline = summarize_roofline(roofline_runs, opts.clock)
    fractions = roofline_fractions(opts, results, roofline)
    rollouts = summarize_rollouts(rollout_runs, opts.clock) if rollout_engines else {}
    report = {
        "benchmark": "model_speed",
        "options": dataclasses.asdict(opts),
        "model": OmegaConf.to_container(cfg.model, resolve=True),
        "machine": _machine(),
        "load_average_before": load_before,
        "parameters": {model: results[opts.dtypes[0]][model]["num_parameters"]
                       for model in _models_for(opts, opts.dtypes[0])},
        "llama_intermediate_size": info["llama_intermediate_size"],
        "results": results,
        "ratios": ratios,
        "roofline": roofline,
        "roofline_fractions": fractions,
        "speedup_bounds": speedup_bounds(roofline, fractions),
        "rollouts": rollouts,
        "elapsed_s": time.perf_counter() - started,
    }
    (out_dir / "model_speed.json").write_text(json.dumps(report, indent=2))
    _plot(opts, results, roofline, fractions, out_dir / "model_speed.png")
    out = Console(width=None if sys.stdout.isatty() else 160)  # logs and pipes: no wrapped rows
    out.print(_roofline_table(opts, roofline, fractions))
    for dtype in opts.dtypes:
        out.print(_table(opts, dtype, results[dtype], ratios[dtype], fractions[dtype]))
    if rollouts:
        out.print(_rollout_table(opts, rollouts))
    out.print("parameters: " + ", ".join(f"{m} {n / 1e6:.1f}M" for m, n in report["parameters"].items())
              + f"; load average before {load_before}, after {report['machine']['load_average']}"
              + f"; elapsed {report['elapsed_s']:.0f} s; JSON and PNG in {out_dir}", highlight=False)
    return report
