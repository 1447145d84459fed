"""Writes one search candidate as a GGUF file (``python -m`` this module; the ``llama_cpp`` profiler's
first process).

It builds the candidate once with random float32 weights (:mod:`.weights`), writes an f32 GGUF
(:func:`edgesmith.plugins.interop.gguf.write_gguf`, a placeholder vocabulary since timing feeds
token ids) and, for a quantized type, runs llama.cpp's quantizer on it. Its own process, so the
search process never holds a full-size model and the measuring process never imports torch.

Input: one JSON object on stdin (``model_config``, ``path``, ``quant``, ``threads``, ``seed``);
output: one ``EDGESMITH_GGUF`` JSON line with the file and the seconds each step took.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def build(model_config: dict[str, Any], path: str, quant: str, threads: int, seed: int = 0) -> dict[str, Any]:
    """Builds, writes and (for quantized types) quantizes the candidate; returns what it did."""
    import torch

    from edgesmith.plugins.interop.gguf import FLOAT_TYPES, quantize_gguf, write_gguf

    from .weights import random_candidate

    torch.set_num_threads(max(1, threads))
    start = time.perf_counter()
    model = random_candidate(model_config, torch.float32, seed)
    build_s = time.perf_counter() - start
    target = Path(path)
    float_path = target if quant in FLOAT_TYPES else target.with_suffix(".f32.gguf")
    start = time.perf_counter()
    write_gguf(model, float_path, quant if quant in FLOAT_TYPES else "f32")
    write_s = time.perf_counter() - start
    del model
    quantize_s = 0.0
    if quant not in FLOAT_TYPES:
        start = time.perf_counter()
        quantize_gguf(float_path, target, quant, threads=threads)
        quantize_s = time.perf_counter() - start
        float_path.unlink()
    return {"gguf": str(target), "gguf_bytes": target.stat().st_size, "build_s": build_s,
            "write_s": write_s, "quantize_s": quantize_s}


def main() -> None:
    request = json.loads(sys.stdin.read())
    out = build(request["model_config"], request["path"], request["quant"], int(request["threads"]),
                int(request.get("seed", 0)))
    sys.stdout.write("\nEDGESMITH_GGUF " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
