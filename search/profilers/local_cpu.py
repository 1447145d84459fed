"""``local_cpu``: measures a candidate on this machine's CPU in a fresh subprocess."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Optional

import psutil

from edgesmith.core.errors import ConfigError
from edgesmith.core.profiler import Profiler
from edgesmith.core.options import require_at_least_one

from .measure import DTYPES
from .timing import SCHEDULES

#: bytes per weight / state value of each measured dtype (the search's analytic estimate uses it)
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class ProfileError(RuntimeError):
    """The measuring subprocess failed; the message carries the tail of its output."""


@dataclass
class TimingOptions:
    """How a profiler times a candidate (``search.profiler.options``; every profiler has these).

    threads: compute threads of the measuring process (OMP/MKL pinned to the same).
    prefill_tokens (P): prompt length of the timed prefill.
    decode_context (C) / decode_tokens (T): decode steps are timed after a C-token prompt.
    schedule: ``interleaved`` (prefill and decode repeats alternate; stop after min_repeats
    pairs once both CVs are <= max_cv, at ``repeats`` pairs, or after budget_s seconds of
    timing) or ``rounds`` (the earlier method: blocks of ``repeats`` per measure, a block
    whose CV exceeds max_cv measured again up to max_rounds times). See :mod:`.timing`.
    warmup: untimed runs of each measure first.
    cpu_affinity: CPU indices to pin the process to (null: no pinning).
    clock: ``wall`` (elapsed time) or ``cpu`` (CPU time; threads=1 only). On cores shared with
    other jobs, wall-clock latencies of one candidate varied 3x between profiles; CPU time is
    what the same run costs on an idle core.
    timeout_s: a measurement taking longer is an error.
    """

    threads: int = 2
    prefill_tokens: int = 128
    decode_context: int = 128
    decode_tokens: int = 16
    schedule: str = "interleaved"
    warmup: int = 1
    repeats: int = 5
    min_repeats: int = 3
    max_cv: float = 0.05
    max_rounds: int = 3
    budget_s: Optional[float] = None
    cpu_affinity: Optional[list[int]] = None
    clock: str = "wall"
    seed: int = 0
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        key = "search.profiler.options"
        require_at_least_one(self, key, ("threads", "prefill_tokens", "decode_context", "decode_tokens",
                                         "repeats", "min_repeats", "max_rounds"))
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"{key}.schedule", self.schedule, " or ".join(SCHEDULES))
        if self.warmup < 0:
            raise ConfigError(f"{key}.warmup", self.warmup, "an integer >= 0")
        if self.budget_s is not None and self.budget_s <= 0:
            raise ConfigError(f"{key}.budget_s", self.budget_s, "a number of seconds > 0, or null")
        if self.clock not in ("wall", "cpu"):
            raise ConfigError(f"{key}.clock", self.clock, "wall or cpu")
        if self.clock == "cpu" and self.threads != 1:
            raise ConfigError(f"{key}.clock", self.clock, f"wall, or cpu with {key}.threads=1",
                              detail="one thread's CPU time is a latency only when one thread does the work")


@dataclass
class LocalCPUOptions(TimingOptions):
    """Options of ``local_cpu``: :class:`TimingOptions` plus the weights' ``dtype`` (float32,
    bfloat16, float16) and ``weights_init``: ``fill`` (allocate, then one seeded fill:
    :mod:`.weights`) or ``model`` (transformers' initialization pass, the earlier way, slower
    at full size; kept to compare against)."""

    dtype: str = "float32"
    weights_init: str = "fill"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dtype not in DTYPES:
            raise ConfigError("search.profiler.options.dtype", self.dtype, f"one of {', '.join(DTYPES)}")
        if self.weights_init not in ("fill", "model"):
            raise ConfigError("search.profiler.options.weights_init", self.weights_init, "fill or model")


def run_measuring_process(module: str, request: dict[str, Any], opts: TimingOptions, marker: str,
                          who: str) -> dict[str, Any]:
    """Runs ``python -m module`` with ``request`` on stdin, threads and affinity pinned; returns
    the JSON after ``marker`` on its stdout, or raises :class:`ProfileError` with its output's tail."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(opts.threads)
    preexec = None
    if opts.cpu_affinity:
        cpus = set(opts.cpu_affinity)
        preexec = lambda: os.sched_setaffinity(0, cpus)  # noqa: E731
    try:
        proc = subprocess.run([sys.executable, "-m", module], input=json.dumps(request), capture_output=True,
                              text=True, env=env, timeout=opts.timeout_s, preexec_fn=preexec)
    except subprocess.TimeoutExpired as exc:
        raise ProfileError(f"{who}: {module} took longer than timeout_s={opts.timeout_s}") from exc
    lines = [line for line in proc.stdout.splitlines() if line.startswith(marker + " ")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise ProfileError(f"{who}: {module} exited with {proc.returncode}:\n{tail}")
    return json.loads(lines[-1].split(" ", 1)[1])


def cpu_model() -> str:
    """The CPU's marketing name (``/proc/cpuinfo``), or the platform's best guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_fingerprint(threads: int | None = None) -> dict[str, Any]:
    """What identifies a target: CPU model, cores, memory, OS, torch version."""
    import torch

    return {
        "cpu_model": cpu_model(),
        "machine": platform.machine(),
        "physical_cores": psutil.cpu_count(logical=False),
        "logical_cores": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "system": platform.system(),
        "torch": torch.__version__,
        "threads": threads,
    }


class LocalCPUProfiler(Profiler):
    """Builds each candidate at full size with random weights in a fresh process and times it.

    Returns the medians of prefill latency (P tokens) and per-token decode latency (after
    C tokens), their coefficients of variation, how long the measurement took, and memory
    in MiB: ``peak_rss_mb`` is the candidate's own peak (the measuring process's kernel
    high-water mark, reset once torch and the operators' code are loaded, minus that
    baseline; see :mod:`.memory`), ``peak_rss_total_mb`` the whole process's peak and
    ``baseline_rss_mb`` the interpreter + torch + edgesmith part. Objectives and the
    ``peak_memory_mb`` constraint use ``peak_rss_mb``, so candidates are compared on what
    they add, not on the runtime they share.
    """

    name = "local_cpu"
    options_class = LocalCPUOptions

    def estimate_basis(self) -> tuple[int, int]:
        return self.options.decode_context, DTYPE_BYTES[self.options.dtype]

    def fingerprint(self) -> dict[str, Any]:
        return device_fingerprint(self.options.threads)

    def profile(self, model_config: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        request = {"model_config": model_config, "options": asdict(self.options)}
        result = run_measuring_process("edgesmith.search.profilers.measure", request, self.options,
                                       "EDGESMITH_PROFILE", self.name)
        result["profile_s"] = time.perf_counter() - start
        result["fingerprint"] = self.fingerprint()
        return result
