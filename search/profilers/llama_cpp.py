"""``llama_cpp``: measures a candidate in the runtime LFM2-style models ship in: llama.cpp, GGUF, quantized.

Per candidate, two fresh processes: the first builds it once with random weights and writes it
as GGUF in the configured type (:mod:`.gguf_candidate`: f32 written by the ``gguf`` package,
quantized types by llama.cpp's own quantizer); the second loads that file with llama.cpp and
times prefill and decode on pinned threads with the same schedule as ``local_cpu``
(:mod:`.llama_cpp_measure`, :mod:`.timing`), and measures its peak RSS. The result has the
fields of ``local_cpu`` (so objectives, constraints and reports work unchanged) plus what was
measured: the quant type, the GGUF size, the llama.cpp build.

A candidate llama.cpp cannot run (a layer that is not ``short_conv``/``gqa``, a conv bias, ...)
is infeasible with the reason recorded, or, with ``fallback=local_cpu``, measured by
``local_cpu`` instead (its result says so: ``profiler: local_cpu`` and ``fallback_reason``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from edgesmith.core.errors import ConfigError
from edgesmith.core.profiler import CandidateNotMeasurable, Profiler

from .local_cpu import LocalCPUProfiler, TimingOptions, device_fingerprint, run_measuring_process

FALLBACKS = ("none", "local_cpu")


@dataclass
class LlamaCppOptions(TimingOptions):
    """Options of ``llama_cpp``: :class:`~.local_cpu.TimingOptions` plus

    quant: the GGUF type measured (f32, f16, bf16, q8_0, q6_k, q5_k_m, q4_k_m, q4_k_s, q4_0).
    fallback: ``none`` (a candidate llama.cpp cannot run is infeasible, with the reason) or
    ``local_cpu`` (it is measured in eager torch instead; mixing the two in one study compares
    different runtimes, so use it only when every candidate must get numbers).
    fallback_options: ``local_cpu`` options for the fallback (default: the timing options here).
    extra_buffers: llama.cpp's ``use_extra_bufts`` (weights repacked at load for this CPU: AMX
    tiles, interleaved Q4_0); off by default because llama.cpp's AMX path crashed on the Xeon
    these defaults were set on (:mod:`edgesmith.plugins.interop.gguf_run`).
    work_dir: where the GGUF files are written while a candidate is measured (null: the system's
    temporary directory); each is deleted after its profile.
    """

    quant: str = "q8_0"
    fallback: str = "none"
    fallback_options: dict[str, Any] = field(default_factory=dict)
    extra_buffers: bool = False
    work_dir: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        from edgesmith.plugins.interop.gguf import check_gguf_type

        self.quant = check_gguf_type(self.quant, key="search.profiler.options.quant")
        if self.fallback not in FALLBACKS:
            raise ConfigError("search.profiler.options.fallback", self.fallback, " or ".join(FALLBACKS))


def llama_cpp_runtime() -> str:
    """The llama.cpp this machine runs: llama-cpp-python's version (it pins the llama.cpp source)
    and the CPU features llama.cpp was compiled with."""
    from edgesmith.plugins.interop.gguf import llama_cpp_build_info

    info = llama_cpp_build_info()
    return f"llama-cpp-python {info['llama_cpp_python']}; {info['system_info']}"


class LlamaCppProfiler(Profiler):
    """Exports each candidate to GGUF, quantizes it, and times it in llama.cpp (see the module docstring)."""

    name = "llama_cpp"
    # Measurements from another llama.cpp build or quant type are not comparable: a farm
    # worker whose values differ is refused (search.workers.check_fingerprint).
    fingerprint_keys = ("runtime", "quant")

    options_class = LlamaCppOptions

    def __init__(self, options: Any = None):
        super().__init__(options)
        self._runtime: str | None = None

    def estimate_basis(self) -> tuple[int, int]:
        return self.options.decode_context, 2  # llama.cpp keeps its KV cache in f16

    def fingerprint(self) -> dict[str, Any]:
        if self._runtime is None:
            self._runtime = llama_cpp_runtime()
        return {**device_fingerprint(self.options.threads), "runtime": self._runtime, "quant": self.options.quant}

    def _fallback(self, model_config: dict[str, Any], reason: str) -> dict[str, Any]:
        timing = {k: v for k, v in asdict(self.options).items() if k in TimingOptions.__dataclass_fields__}
        result = LocalCPUProfiler({**timing, **self.options.fallback_options}).profile(model_config)
        return {**result, "profiler": "local_cpu", "fallback_reason": reason}

    @staticmethod
    def _export_problems(model_config: dict[str, Any]) -> str | None:
        from edgesmith.plugins.interop.gguf import gguf_export_problems
        from edgesmith.search.cost import build_config

        problems = gguf_export_problems(build_config(model_config))
        return "not runnable by llama.cpp: " + "; ".join(problems) if problems else None

    def why_not_measurable(self, model_config: dict[str, Any]) -> str | None:
        return None if self.options.fallback == "local_cpu" else self._export_problems(model_config)

    def profile(self, model_config: dict[str, Any]) -> dict[str, Any]:
        reason = self._export_problems(model_config)
        if reason:
            if self.options.fallback == "local_cpu":
                return self._fallback(model_config, reason)
            raise CandidateNotMeasurable(reason)
        opts = self.options
        start = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="edgesmith-gguf-", dir=opts.work_dir) as tmp:
            exported = run_measuring_process(
                "edgesmith.search.profilers.gguf_candidate",
                {"model_config": model_config, "path": str(Path(tmp) / f"candidate.{opts.quant}.gguf"),
                 "quant": opts.quant, "threads": opts.threads, "seed": opts.seed},
                opts, "EDGESMITH_GGUF", self.name)
            result = run_measuring_process("edgesmith.search.profilers.llama_cpp_measure",
                                           {"gguf": exported["gguf"], "options": asdict(opts)},
                                           opts, "EDGESMITH_PROFILE", self.name)
        result.update({
            "profiler": self.name, "quant": opts.quant, "dtype": opts.quant,
            "gguf_bytes": exported["gguf_bytes"], "build_s": exported["build_s"],
            "export_s": exported["write_s"] + exported["quantize_s"], "quantize_s": exported["quantize_s"],
            "profile_s": time.perf_counter() - start, "fingerprint": self.fingerprint(),
        })
        return result
