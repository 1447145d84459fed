"""The measuring process of the ``llama_cpp`` profiler (``python -m`` this module).

A fresh interpreter loads one GGUF file with llama.cpp (through llama-cpp-python's low-level
API) and times it the way an app on the target runs it: prefill of P prompt tokens in one
batch, then greedy decode steps after a C-token context, on ``threads`` llama.cpp threads.
Nothing of torch or of the export is loaded here, so the peak memory (the kernel's
high-water mark reset after llama.cpp's libraries are loaded, :mod:`.memory`) is the model's:
its weights (memory-mapped pages it touched), KV cache, conv state and compute buffers.

Input: one JSON object on stdin (``gguf``: the file, ``options``: the profiler's options);
output: one ``EDGESMITH_PROFILE`` JSON line on stdout.
"""

from __future__ import annotations

import ctypes
import json
import sys
import time
from typing import Any

from .memory import PeakTracker
from .timing import result_fields, run_schedule


def measure(gguf_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Loads ``gguf_path`` and times prefill and decode with the schedule of ``options``."""
    import llama_cpp as L
    import numpy as np

    L.llama_backend_init()
    tracker = PeakTracker().start()  # llama.cpp's code is loaded: from here on, memory is the model's

    P, C, T = int(options["prefill_tokens"]), int(options["decode_context"]), int(options["decode_tokens"])
    threads = int(options["threads"])
    load_start = time.perf_counter()
    mparams = L.llama_model_default_params()
    mparams.use_extra_bufts = bool(options.get("extra_buffers", False))  # see plugins/interop/gguf_run.py
    model = L.llama_model_load_from_file(gguf_path.encode(), mparams)
    if not model:
        raise RuntimeError(f"llama.cpp could not load {gguf_path}")
    cparams = L.llama_context_default_params()
    cparams.n_ctx = max(P, C + T) + 8
    cparams.n_batch = cparams.n_ubatch = max(P, C)  # a prompt is one batch, as an app sends it
    cparams.n_threads = cparams.n_threads_batch = threads
    cparams.n_seq_max = 1
    cparams.no_perf = True
    ctx = L.llama_init_from_model(model, cparams)
    if not ctx:
        raise RuntimeError(f"llama.cpp could not create a context for {gguf_path}")
    load_s = time.perf_counter() - load_start
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    memory = L.llama_get_memory(ctx)

    rng = np.random.default_rng(int(options.get("seed", 0)))
    prefill_ids = (ctypes.c_int32 * P)(*rng.integers(3, n_vocab, P).tolist())
    context_ids = (ctypes.c_int32 * C)(*rng.integers(3, n_vocab, C).tolist())
    clock = time.process_time if options.get("clock") == "cpu" else time.perf_counter

    def decode(tokens: Any, n: int) -> None:
        status = L.llama_decode(ctx, L.llama_batch_get_one(tokens, n))
        if status != 0:
            raise RuntimeError(f"llama_decode returned {status}")

    def next_token() -> int:
        logits = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(n_vocab,))
        return int(logits.argmax())  # greedy: the next step depends on this one

    def prefill_once() -> float:
        L.llama_memory_clear(memory, True)
        start = clock()
        decode(prefill_ids, P)
        L.llama_synchronize(ctx)
        return (clock() - start) * 1000

    # The C-token context is prefilled once and its state saved; every decode run restores
    # it (a copy, as local_cpu copies its cache) and times T greedy steps from there.
    L.llama_memory_clear(memory, True)
    decode(context_ids, C)
    state_size = L.llama_state_seq_get_size(ctx, 0)
    state = (ctypes.c_uint8 * state_size)()
    L.llama_state_seq_get_data(ctx, state, state_size, 0)
    primed_token = next_token()
    one = (ctypes.c_int32 * 1)()

    def decode_once() -> float:
        L.llama_memory_clear(memory, True)
        if L.llama_state_seq_set_data(ctx, state, state_size, 0) != state_size:
            raise RuntimeError("llama.cpp could not restore the primed context")
        token, steps = primed_token, []
        for _ in range(T):
            one[0] = token
            start = clock()
            decode(one, 1)
            token = next_token()
            steps.append((clock() - start) * 1000)
        return sorted(steps)[len(steps) // 2]

    timed = run_schedule(options, prefill_once, decode_once)
    peak_mb = tracker.peak_mb()
    n_params = int(L.llama_model_n_params(model))
    desc = ctypes.create_string_buffer(256)
    L.llama_model_desc(model, desc, 256)
    model_bytes = int(L.llama_model_size(model))
    L.llama_free(ctx)
    L.llama_model_free(model)
    return {
        **result_fields(timed),
        "peak_rss_mb": max(0.0, peak_mb - tracker.baseline_mb),
        "peak_rss_total_mb": peak_mb,
        "baseline_rss_mb": tracker.baseline_mb,
        "peak_rss_method": tracker.method,
        "load_s": load_s,
        "measured_params": n_params,
        "model_bytes": model_bytes,
        "model_desc": desc.value.decode(errors="replace"),
        "threads": threads,
        "clock": options.get("clock", "wall"),
        "schedule": options.get("schedule", "interleaved"),
        "prefill_tokens": P,
        "decode_context": C,
        "decode_tokens": T,
        "n_ctx": int(cparams.n_ctx),
        "extra_buffers": bool(mparams.use_extra_bufts),
        "flash_attn_type": int(cparams.flash_attn_type),
    }


def main() -> None:
    request = json.loads(sys.stdin.read())
    out = measure(request["gguf"], request["options"])
    sys.stdout.write("\nEDGESMITH_PROFILE " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
