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
from edgesmith.core.stage_options import build_options, require_at_least_one

from .measure import DTYPES


class ProfileError(RuntimeError):
    """The measuring subprocess failed; the message carries the tail of its output."""


@dataclass
class LocalCPUOptions:
    """Options of ``local_cpu`` (``search.profiler.options``).

    threads: torch intra-op threads of the measuring process (OMP/MKL pinned to the same).
    dtype: weights' dtype (float32, bfloat16, float16).
    prefill_tokens (P): prompt length of the timed prefill.
    decode_context (C) / decode_tokens: decode steps are timed after a C-token prompt.
    warmup / repeats: untimed and timed runs per round; a round whose coefficient of
    variation exceeds max_cv is repeated, up to max_rounds rounds (the steadiest is kept).
    cpu_affinity: CPU indices to pin the process to (null: no pinning).
    clock: ``wall`` (elapsed time) or ``cpu`` (the measuring thread's CPU time; threads=1
    only). On cores shared with other jobs, wall-clock latencies of one candidate varied
    3x between profiles; CPU time is what the same run costs on an idle core.
    timeout_s: a measurement taking longer is an error.
    """

    threads: int = 2
    dtype: str = "float32"
    prefill_tokens: int = 128
    decode_context: int = 128
    decode_tokens: int = 16
    warmup: int = 1
    repeats: int = 5
    max_cv: float = 0.05
    max_rounds: int = 3
    cpu_affinity: Optional[list[int]] = None
    clock: str = "wall"
    seed: int = 0
    timeout_s: float = 900.0

    def __post_init__(self) -> None:
        key = "search.profiler.options"
        if self.dtype not in DTYPES:
            raise ConfigError(f"{key}.dtype", self.dtype, f"one of {', '.join(DTYPES)}")
        require_at_least_one(self, key, ("threads", "prefill_tokens", "decode_context", "decode_tokens", "repeats", "max_rounds"))
        if self.warmup < 0:
            raise ConfigError(f"{key}.warmup", self.warmup, "an integer >= 0")
        if self.clock not in ("wall", "cpu"):
            raise ConfigError(f"{key}.clock", self.clock, "wall or cpu")
        if self.clock == "cpu" and self.threads != 1:
            raise ConfigError(f"{key}.clock", self.clock, f"wall, or cpu with {key}.threads=1",
                              detail="one thread's CPU time is a latency only when one thread does the work")


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

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.config = build_options(LocalCPUOptions, options, key="search.profiler.options")

    def fingerprint(self) -> dict[str, Any]:
        return device_fingerprint(self.config.threads)

    def profile(self, model_config: dict[str, Any]) -> dict[str, Any]:
        opts = self.config
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(opts.threads)
        request = json.dumps({"model_config": model_config, "options": asdict(opts)})
        preexec = None
        if opts.cpu_affinity:
            cpus = set(opts.cpu_affinity)
            preexec = lambda: os.sched_setaffinity(0, cpus)  # noqa: E731
        start = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-m", "edgesmith.search.profilers.measure"],
                                  input=request, capture_output=True, text=True, env=env,
                                  timeout=opts.timeout_s, preexec_fn=preexec)
        except subprocess.TimeoutExpired as exc:
            raise ProfileError(f"local_cpu: measuring took longer than timeout_s={opts.timeout_s}") from exc
        seconds = time.perf_counter() - start
        lines = [l for l in proc.stdout.splitlines() if l.startswith("EDGESMITH_PROFILE ")]
        if proc.returncode != 0 or not lines:
            tail = (proc.stderr or proc.stdout)[-2000:]
            raise ProfileError(f"local_cpu: the measuring process exited with {proc.returncode}:\n{tail}")
        result = json.loads(lines[-1].split(" ", 1)[1])
        result["profile_s"] = seconds
        result["fingerprint"] = self.fingerprint()
        return result
