"""Benchmark ``search``: what one hardware-in-the-loop measurement costs and how steady it is.

For LFM2-350M-sized candidates on the configured threads (2 by default) it runs the
``local_cpu`` profiler several times on the same candidate (each a fresh process) and
reports seconds per latency+memory profile and the coefficient of variation of the
decode latency, both within one profile (its repeats) and across profiles. Goals: a
profile under 60 s, decode-latency CV under 5%. Writes ``search_profile.json`` and
``search_profile.png`` into the run directory.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from edgesmith.core.stage_options import build_options

SECTION = "search"
GOAL_PROFILE_S = 60.0
GOAL_CV = 0.05


@dataclass
class SearchProfileBenchOptions:
    """Options of ``bench=search`` (section ``search``).

    runs: profiles of the same candidate (each a fresh subprocess).
    profiler: ``local_cpu`` options (threads, dtype, P, C, repeats...).
    candidate: the EdgeConfig dict measured (default: the LFM2-350M layout).
    """

    runs: int = 3
    profiler: dict[str, Any] = field(default_factory=lambda: {
        "threads": 2, "dtype": "bfloat16", "prefill_tokens": 128, "decode_context": 512,
        "decode_tokens": 8, "warmup": 1, "repeats": 5, "max_cv": 0.05, "max_rounds": 2})
    candidate: dict[str, Any] = field(default_factory=lambda: {
        "vocab_size": 65536, "hidden_size": 1024, "intermediate_size": 4608,
        "num_attention_heads": 16, "num_key_value_heads": 8, "tie_word_embeddings": True,
        "max_position_embeddings": 32768,
        "layers": [{"op": "gqa"} if i in (2, 5, 8, 10, 12, 14) else {"op": "short_conv", "conv_length": 3}
                   for i in range(16)]})


def _cv(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if len(values) > 1 and mean > 0 else 0.0


def run_search_profile(cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Profiles the candidate ``runs`` times and reports time per profile and decode CV."""
    from edgesmith.search.cost import estimate_cost
    from edgesmith.search.profilers.local_cpu import LocalCPUProfiler

    section = OmegaConf.select(cfg, SECTION, default=None) if cfg is not None else None
    opts = build_options(SearchProfileBenchOptions, section, key=SECTION)
    console = Console(stderr=True)
    profiler = LocalCPUProfiler(**opts.profiler)
    est = estimate_cost(opts.candidate, profiler.config.decode_context, 1,
                        {"float32": 4}.get(profiler.config.dtype, 2))
    console.print(f"bench search: {est.params:,}-parameter candidate, {opts.runs} profiles "
                  f"({profiler.config.dtype}, {profiler.config.threads} threads)", highlight=False)
    runs = []
    for i in range(opts.runs):
        start = time.perf_counter()
        result = profiler.profile(opts.candidate)
        result["wall_s"] = time.perf_counter() - start
        runs.append(result)
        console.print(f"  profile {i + 1}/{opts.runs}: {result['wall_s']:.1f}s, decode "
                      f"{result['decode_ms_per_token']:.2f} ms/token (CV {result['decode_cv']:.1%}), prefill "
                      f"{result['prefill_ms']:.0f} ms, peak RSS {result['peak_rss_mb']:.0f} MB", highlight=False)
    decode = [r["decode_ms_per_token"] for r in runs]
    summary = {
        "params": est.params, "estimate_memory_mb": est.memory_mb,
        "seconds_per_profile": statistics.fmean(r["wall_s"] for r in runs),
        "max_seconds_per_profile": max(r["wall_s"] for r in runs),
        "decode_cv_within_profile": statistics.fmean(r["decode_cv"] for r in runs),
        "decode_cv_across_profiles": _cv(decode),
        "decode_ms_per_token": statistics.median(decode),
        "prefill_ms": statistics.median(r["prefill_ms"] for r in runs),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "goal_profile_s": GOAL_PROFILE_S, "goal_cv": GOAL_CV,
    }
    summary["profile_time_ratio_to_goal"] = summary["seconds_per_profile"] / GOAL_PROFILE_S
    summary["cv_ratio_to_goal"] = max(summary["decode_cv_within_profile"],
                                      summary["decode_cv_across_profiles"]) / GOAL_CV
    table = Table(title="bench search: cost and steadiness of one profile")
    table.add_column("measure")
    table.add_column("value")
    table.add_column("goal")
    table.add_column("ratio to goal")
    table.add_row("seconds per profile", f"{summary['seconds_per_profile']:.1f}", f"< {GOAL_PROFILE_S:.0f}",
                  f"{summary['profile_time_ratio_to_goal']:.2f}")
    table.add_row("decode CV within a profile", f"{summary['decode_cv_within_profile']:.2%}", f"< {GOAL_CV:.0%}",
                  f"{summary['decode_cv_within_profile'] / GOAL_CV:.2f}")
    table.add_row("decode CV across profiles", f"{summary['decode_cv_across_profiles']:.2%}", f"< {GOAL_CV:.0%}",
                  f"{summary['decode_cv_across_profiles'] / GOAL_CV:.2f}")
    Console().print(table)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"options": asdict(opts), "summary": summary, "runs": runs}
    (out_dir / "search_profile.json").write_text(json.dumps(report, indent=2, default=str))
    _plot(runs, out_dir / "search_profile.png")
    return summary


def _plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    labels = [f"run {i + 1}" for i in range(len(runs))]
    a.bar(labels, [r["wall_s"] for r in runs], color="tab:blue")
    a.axhline(GOAL_PROFILE_S, color="tab:red", linestyle="--", label="goal")
    a.set_ylabel("seconds per profile")
    a.legend()
    med = [r["decode_stats"]["median"] for r in runs]
    lo = [m - r["decode_stats"]["min"] for m, r in zip(med, runs)]
    hi = [r["decode_stats"]["max"] - m for m, r in zip(med, runs)]
    b.errorbar(labels, med, yerr=[lo, hi], fmt="o", capsize=4)
    b.set_ylabel("decode ms/token (median, min-max)")
    fig.suptitle("local_cpu profile of one LFM2-350M-sized candidate")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
