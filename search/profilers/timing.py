"""How a profiler repeats its timings: the schedule shared by every measuring process.

Two schedules, both given two timed callables (one prefill, one decode run, each returning
milliseconds):

``interleaved`` (the default): after ``warmup`` untimed runs of each, prefill and decode runs
alternate in short repeats, so a slow spell of a shared machine (a neighbour's job, frequency
scaling) lands on both measures and on a few samples instead of on a whole block of one of
them. After ``min_repeats`` pairs it stops as soon as both coefficients of variation are at most
``max_cv``, or at ``repeats`` pairs, or when ``budget_s`` seconds of timing are spent. The
median and its spread are reported.

``rounds`` (the earlier method, kept to compare against): all prefill repeats in a block, then
all decode repeats; a block whose CV exceeds ``max_cv`` is measured again, up to
``max_rounds`` blocks, and the steadiest block is kept.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

SCHEDULES = ("interleaved", "rounds")


def spread(samples: list[float]) -> dict[str, float]:
    """Median, mean, std, CV, min, max and count of ``samples``."""
    median = statistics.median(samples)
    mean = statistics.fmean(samples)
    std = statistics.pstdev(samples) if len(samples) > 1 else 0.0
    return {"median": median, "mean": mean, "std": std, "cv": std / mean if mean > 0 else 0.0,
            "min": min(samples), "max": max(samples), "n": len(samples)}


def interleaved(prefill: Callable[[], float], decode: Callable[[], float], *, warmup: int,
                min_repeats: int, repeats: int, max_cv: float, budget_s: float | None) -> dict[str, dict]:
    """Alternating prefill/decode repeats with early stopping (see the module docstring)."""
    for _ in range(warmup):
        prefill()
        decode()
    samples: dict[str, list[float]] = {"prefill": [], "decode": []}
    start = time.perf_counter()
    stopped = "repeats"
    for i in range(max(1, repeats)):
        samples["prefill"].append(prefill())
        samples["decode"].append(decode())
        if i + 1 >= min_repeats and all(spread(s)["cv"] <= max_cv for s in samples.values()):
            stopped = "steady"
            break
        if budget_s is not None and time.perf_counter() - start > budget_s and i + 1 >= min(2, repeats):
            stopped = "budget"
            break
    return {name: {**spread(s), "rounds": 1, "stopped": stopped} for name, s in samples.items()}


def in_rounds(prefill: Callable[[], float], decode: Callable[[], float], *, warmup: int,
              repeats: int, max_cv: float, max_rounds: int) -> dict[str, dict]:
    """Blocks of repeats per measure, re-measured while noisy (see the module docstring)."""
    result = {}
    for name, fn in (("prefill", prefill), ("decode", decode)):
        for _ in range(warmup):
            fn()
        rounds = []
        for _ in range(max(1, max_rounds)):
            rounds.append(spread([fn() for _ in range(repeats)]))
            if rounds[-1]["cv"] <= max_cv:
                break
        best = min(rounds, key=lambda r: r["cv"])
        result[name] = {**best, "rounds": len(rounds), "stopped": "steady" if best["cv"] <= max_cv else "rounds"}
    return result


def run_schedule(options: dict, prefill: Callable[[], float], decode: Callable[[], float]) -> dict[str, dict]:
    """Times with the schedule the options name (``schedule``, ``warmup``, ``repeats``, ...)."""
    if options.get("schedule", "interleaved") == "rounds":
        return in_rounds(prefill, decode, warmup=int(options["warmup"]), repeats=int(options["repeats"]),
                         max_cv=float(options["max_cv"]), max_rounds=int(options["max_rounds"]))
    return interleaved(prefill, decode, warmup=int(options["warmup"]),
                       min_repeats=int(options.get("min_repeats", 3)), repeats=int(options["repeats"]),
                       max_cv=float(options["max_cv"]), budget_s=options.get("budget_s"))


def result_fields(timed: dict[str, dict]) -> dict:
    """The profile fields every profiler reports from a schedule's outcome."""
    return {
        "prefill_ms": timed["prefill"]["median"],
        "decode_ms_per_token": timed["decode"]["median"],
        "prefill_cv": timed["prefill"]["cv"],
        "decode_cv": timed["decode"]["cv"],
        "prefill_rounds": timed["prefill"]["rounds"],
        "decode_rounds": timed["decode"]["rounds"],
        "prefill_stats": timed["prefill"],
        "decode_stats": timed["decode"],
    }
