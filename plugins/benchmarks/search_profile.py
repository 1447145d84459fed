"""Benchmark ``search``: what one hardware-in-the-loop measurement costs, how steady it is, and
whether the two profilers rank candidates alike.

Part 1, side by side in one run: each *method* (a profiler with its options) profiles the same
candidate, the ``model`` preset (``model=lfm2_350m`` by default), ``runs`` times (each profile fresh processes), interleaved method by
method so a change in the machine's load hits all of them. Per method it reports seconds per
profile and the coefficient of variation of the decode latency within a profile (its repeats)
and across profiles, against the goals (<= 30 s, <= 5%) and as a ratio to the earlier method
(``today``: local_cpu with blocks of repeats and transformers' initialization pass).

Part 2: ``rank.candidates`` distinct candidates of a search preset's space (``lfm2_350m``) that
llama.cpp can run are profiled by ``local_cpu`` and by ``llama_cpp``; the Spearman rank
correlation of their decode latencies (and prefill, peak memory) says whether searching in eager
torch picks what llama.cpp would.

Writes ``search_profile.json`` and ``search_profile.png`` into the run directory. The machine's
load average before and after is recorded: the numbers are only as steady as the machine.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import build_options

SECTION = "search"
GOAL_PROFILE_S = 30.0
GOAL_CV = 0.05
BASELINE = "today"
_TOKENS = {"threads": 2, "prefill_tokens": 128, "decode_context": 512, "decode_tokens": 8}


def _default_methods() -> dict[str, dict[str, Any]]:
    return {
        # The earlier method, as conf/search/lfm2_350m.yaml ran it before.
        BASELINE: {"profiler": "local_cpu", "options": {
            **_TOKENS, "dtype": "bfloat16", "schedule": "rounds", "weights_init": "model", "warmup": 1,
            "repeats": 5, "max_cv": 0.05, "max_rounds": 2}},
        "local_cpu": {"profiler": "local_cpu", "options": {
            **_TOKENS, "dtype": "bfloat16", "schedule": "interleaved", "weights_init": "fill", "warmup": 1,
            "repeats": 12, "min_repeats": 4, "max_cv": 0.02, "budget_s": 15}},
        # No warm-up run: priming the decode context is a forward pass over every weight
        # already. An 8 s budget and a 3% CV stop: 15 s and 2% made a profile 32-37 s (run bs2).
        "llama_cpp": {"profiler": "llama_cpp", "options": {
            **_TOKENS, "quant": "q8_0", "schedule": "interleaved", "warmup": 0, "repeats": 12,
            "min_repeats": 4, "max_cv": 0.03, "budget_s": 8}},
    }


@dataclass
class RankOptions:
    """Part 2. candidates: how many (0 skips it); preset: the search preset whose space is
    sampled; space / constraints: overrides of that preset's (e.g. ``space: {hidden_size: [256]}``
    with ``constraints: {min_params: 0}`` for a smaller size); methods: the two methods compared
    (names in ``methods``); seed: the sampler's."""

    candidates: int = 8
    preset: str = "lfm2_350m"
    space: dict[str, Any] = field(default_factory=dict)
    constraints: dict[str, Any] = field(default_factory=dict)
    methods: list[str] = field(default_factory=lambda: ["local_cpu", "llama_cpp"])
    seed: int = 0


@dataclass
class SearchProfileBenchOptions:
    """Options of ``bench=search`` (section ``search``).

    runs: profiles of the candidate per method. methods: name -> ``{profiler, options}``.
    rank: part 2. The candidate of part 1 is not an option: it is the ``model`` config group.
    """

    runs: int = 3
    methods: dict[str, Any] = field(default_factory=_default_methods)
    rank: RankOptions = field(default_factory=RankOptions)


def _cv(values: list[float]) -> float:
    mean = statistics.fmean(values)
    return statistics.pstdev(values) / mean if len(values) > 1 and mean > 0 else 0.0


def _profilers(methods: dict[str, Any]) -> dict[str, Any]:
    from edgesmith.core.plugin_manager import get_plugin_manager

    plugins = get_plugin_manager()
    return {name: plugins.build("profiler", m["profiler"], m["options"], key=f"{SECTION}.methods.{name}.options",
                                name_key=f"{SECTION}.methods.{name}.profiler")
            for name, m in methods.items()}


def _summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    decode = [r["decode_ms_per_token"] for r in runs]
    return {
        "seconds_per_profile": statistics.fmean(r["wall_s"] for r in runs),
        "max_seconds_per_profile": max(r["wall_s"] for r in runs),
        "decode_cv_within_profile": statistics.fmean(r["decode_cv"] for r in runs),
        "decode_cv_across_profiles": _cv(decode),
        # The fastest repeat of each profile: neighbours on shared cores only ever slow a run
        # down, so the minimum is the least disturbed estimate (reported beside the median).
        "decode_cv_across_profiles_fastest": _cv([r["decode_stats"]["min"] for r in runs]),
        "decode_ms_per_token": statistics.median(decode),
        "prefill_ms": statistics.median(r["prefill_ms"] for r in runs),
        "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs),
        "repeats": statistics.median(r["decode_stats"]["n"] for r in runs),
    }


def rank_candidates(opts: RankOptions, seed: int = 0) -> list[dict[str, Any]]:
    """``opts.candidates`` distinct candidates of the preset's space that llama.cpp can run and
    that meet the preset's parameter and embedding-share constraints."""
    import optuna

    import edgesmith.conf
    from edgesmith.plugins.interop.gguf import gguf_export_problems
    from edgesmith.search.config import SearchConfig, load_preset
    from edgesmith.search.cost import build_config, estimate_cost
    from edgesmith.search.space import SearchSpace

    path = Path(edgesmith.conf.__file__).parent / "search" / f"{opts.preset}.yaml"
    preset = OmegaConf.to_container(load_preset(path, seed))
    preset["space"] = {**preset["space"], **opts.space}
    preset["constraints"] = {**preset["constraints"], **opts.constraints}
    cfg = build_options(SearchConfig, preset, key=f"{SECTION}.rank")
    space = SearchSpace(cfg.space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    found: dict[str, dict[str, Any]] = {}
    for _ in range(2000):
        if len(found) >= opts.candidates:
            break
        model_config = space.sample(study.ask())
        if gguf_export_problems(build_config(model_config)):
            continue
        est = estimate_cost(model_config, 512, 1, 2)
        c = cfg.constraints
        if (c.max_params and est.params > c.max_params) or est.params < c.min_params \
                or est.embedding_share > c.max_embedding_share:
            continue
        found.setdefault(json.dumps(model_config, sort_keys=True), model_config)
    return list(found.values())


def _candidate(cfg: Any) -> dict[str, Any]:
    """Part 1's candidate: the ``model`` preset's EdgeConfig fields, validated like every command's."""
    from edgesmith.core.plugin_manager import get_plugin_manager
    from edgesmith.core.validation import validate_model

    if cfg is None or validate_model(cfg, get_plugin_manager()) is None:
        raise ConfigError("model", None, "a model preset (model=NAME, conf/model/) whose layout is profiled")
    candidate = OmegaConf.to_container(cfg.model, resolve=True)
    candidate.pop("name", None)  # the preset's display name, not a model field
    return candidate


def _spearman(a: list[float], b: list[float]) -> float | None:
    import pandas as pd

    if len(a) < 3:
        return None
    # Spearman = Pearson on average ranks (as search/report.py; pandas' method="spearman" needs scipy).
    return float(pd.Series(a).rank().corr(pd.Series(b).rank()))


def run_search_profile(opts: SearchProfileBenchOptions, cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Runs both parts (see the module docstring) and returns the summary."""
    from edgesmith.search.cost import estimate_cost
    from edgesmith.search.space import layer_pattern

    candidate = _candidate(cfg)
    console = Console(stderr=True)
    profilers = _profilers(opts.methods)
    est = estimate_cost(candidate, 512, 1, 2)
    load_before = os.getloadavg()
    console.print(f"bench search: {est.params:,}-parameter candidate, {opts.runs} profiles per method "
                  f"({', '.join(profilers)}), load average {load_before[0]:.2f} on {os.cpu_count()} CPUs",
                  highlight=False)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in profilers}
    for i in range(opts.runs):
        for name, profiler in profilers.items():  # interleaved: each round runs every method once
            start = time.perf_counter()
            result = profiler.profile(candidate)
            result["wall_s"] = time.perf_counter() - start
            runs[name].append(result)
            console.print(f"  {name} profile {i + 1}/{opts.runs}: {result['wall_s']:.1f}s, decode "
                          f"{result['decode_ms_per_token']:.2f} ms/token (CV {result['decode_cv']:.1%}, "
                          f"{result['decode_stats']['n']} repeats), prefill {result['prefill_ms']:.0f} ms, "
                          f"peak RSS {result['peak_rss_mb']:.0f} MB", highlight=False)
    summary: dict[str, Any] = {"params": est.params, "goal_profile_s": GOAL_PROFILE_S, "goal_cv": GOAL_CV,
                               "cpus": os.cpu_count(), "methods": {}}
    for name in profilers:
        summary["methods"][name] = _summarize(runs[name])
    base = summary["methods"].get(BASELINE)
    table = Table(title=f"bench search: one profile of a {est.params / 1e6:.0f}M-parameter candidate, "
                        f"{opts.runs} profiles per method")
    for col in ("method", "s/profile", "vs today", "decode CV within", "decode CV across",
                "CV across, fastest repeat", "decode ms/token",
                "prefill ms", "peak RSS MB", "repeats"):
        table.add_column(col)
    for name, s in summary["methods"].items():
        ratio = s["seconds_per_profile"] / base["seconds_per_profile"] if base else float("nan")
        s["time_ratio_to_today"] = ratio
        table.add_row(name, f"{s['seconds_per_profile']:.1f} (goal <= {GOAL_PROFILE_S:.0f})", f"{ratio:.2f}x",
                      f"{s['decode_cv_within_profile']:.1%}", f"{s['decode_cv_across_profiles']:.1%} (goal <= 5%)",
                      f"{s['decode_cv_across_profiles_fastest']:.1%}",
                      f"{s['decode_ms_per_token']:.2f}", f"{s['prefill_ms']:.0f}", f"{s['peak_rss_mb']:.0f}",
                      f"{s['repeats']:.0f}")
    Console(width=max(Console().width, 150)).print(table)  # a report: wide enough for every column

    rank = opts.rank
    ranked: list[dict[str, Any]] = []
    if rank.candidates > 0:
        candidates = rank_candidates(rank, rank.seed)
        console.print(f"rank agreement: {len(candidates)} llama.cpp-runnable candidates of {rank.preset}"
                      + (f" with space overrides {rank.space}" if rank.space else ""), highlight=False)
        for j, model_config in enumerate(candidates):
            row = {"pattern": layer_pattern(model_config), "params": estimate_cost(model_config, 512, 1, 2).params,
                   "model_config": model_config}
            for name in rank.methods:
                result = profilers[name].profile(model_config)
                row[name] = {k: result[k] for k in ("decode_ms_per_token", "prefill_ms", "peak_rss_mb", "decode_cv",
                                                    "profile_s")}
            ranked.append(row)
            a, b = rank.methods
            console.print(f"  {j + 1}/{len(candidates)} {row['params'] / 1e6:.0f}M {row['pattern']}: decode "
                          f"{a} {row[a]['decode_ms_per_token']:.2f} / {b} {row[b]['decode_ms_per_token']:.2f} ms",
                          highlight=False)
        a, b = rank.methods
        summary["rank"] = {
            "candidates": len(ranked), "preset": rank.preset, "space_overrides": rank.space,
            "constraint_overrides": rank.constraints, "methods": [a, b],
            **{f"spearman_{k}": _spearman([r[a][k] for r in ranked], [r[b][k] for r in ranked])
               for k in ("decode_ms_per_token", "prefill_ms", "peak_rss_mb")}}
        rt = Table(title=f"rank agreement {a} vs {b} over {len(ranked)} candidates ({rank.preset})")
        rt.add_column("measure")
        rt.add_column("Spearman rho")
        for k in ("decode_ms_per_token", "prefill_ms", "peak_rss_mb"):
            value = summary["rank"][f"spearman_{k}"]
            rt.add_row(k, "n/a" if value is None else f"{value:.2f}")
        Console(width=max(Console().width, 150)).print(rt)
    summary["load_average_before"] = load_before
    summary["load_average_after"] = os.getloadavg()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"options": asdict(opts), "candidate": candidate, "summary": summary, "runs": runs, "ranked": ranked}
    (out_dir / "search_profile.json").write_text(json.dumps(report, indent=2, default=str))
    _plot(runs, ranked, rank.methods, out_dir / "search_profile.png")
    return summary


def _plot(runs: dict[str, list[dict[str, Any]]], ranked: list[dict[str, Any]], pair: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3 if ranked else 2, figsize=(13 if ranked else 9, 3.8))
    names = list(runs)
    axes[0].bar(names, [statistics.fmean(r["wall_s"] for r in runs[n]) for n in names], color="tab:blue")
    axes[0].axhline(GOAL_PROFILE_S, color="tab:red", linestyle="--", label="goal")
    axes[0].set_ylabel("seconds per profile")
    axes[0].legend()
    for n in names:
        med = [r["decode_ms_per_token"] for r in runs[n]]
        axes[1].plot(range(1, len(med) + 1), med, "o-", label=n)
    axes[1].set_xlabel("profile")
    axes[1].set_ylabel("decode ms/token (median)")
    axes[1].legend()
    if ranked:
        a, b = pair
        axes[2].scatter([r[a]["decode_ms_per_token"] for r in ranked], [r[b]["decode_ms_per_token"] for r in ranked])
        axes[2].set_xlabel(f"{a} decode ms/token")
        axes[2].set_ylabel(f"{b} decode ms/token")
    fig.suptitle("search profiles: cost, steadiness and rank agreement")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
