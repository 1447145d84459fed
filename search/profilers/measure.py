"""The measuring process of the ``local_cpu`` profiler (``python -m`` this module).

It runs in a fresh interpreter so one candidate's allocations, thread pools and caches
cannot leak into the next one's numbers; its peak memory is the kernel's high-water mark
reset after the imports (:mod:`.memory`), so it counts this candidate alone. Input: one
JSON object on stdin (``model_config`` and the measurement ``options``); output: one JSON
line on stdout.
"""

from __future__ import annotations

import copy
import json
import statistics
import sys
import time
from typing import Any

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def _warm_code(model_config: dict[str, Any], dtype: Any) -> None:
    """Runs a minute copy of the candidate once, so lazily imported code and one-time
    allocations of the operators' kernels land in the baseline, not in the candidate's peak."""
    import torch

    from edgesmith.core.modeling import EdgeForCausalLM
    from edgesmith.search.cost import build_config

    heads = int(model_config.get("num_attention_heads", 1))
    kv = int(model_config.get("num_key_value_heads", heads))
    small = {**model_config, "vocab_size": 64, "hidden_size": 8 * heads, "intermediate_size": 16,
             "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": 8}
    try:
        model = EdgeForCausalLM(build_config(small)).to(dtype).eval()
        with torch.inference_mode():
            out = model(input_ids=torch.ones(1, 4, dtype=torch.long), use_cache=True)
            cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
            model(input_ids=torch.ones(1, 1, dtype=torch.long), cache=cache, use_cache=True)
    except Exception:  # noqa: BLE001 - an operator refusing tiny dims only skips the warm-up
        pass


def measure(model_config: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Builds the candidate with random weights and times prefill and decode."""
    import torch

    from edgesmith.core.modeling import EdgeForCausalLM
    from edgesmith.search.cost import build_config
    from edgesmith.search.profilers.memory import PeakTracker
    from edgesmith.search.profilers.timing import result_fields, run_schedule
    from edgesmith.search.profilers.weights import random_candidate

    torch.set_num_threads(int(options["threads"]))
    torch.manual_seed(int(options.get("seed", 0)))
    dtype = getattr(torch, DTYPES[options["dtype"]])
    config = build_config(model_config)
    config.resolve_operators()  # imports the operators' modules before the baseline
    _warm_code(model_config, dtype)  # without it a 0.1 MB candidate "peaked" at ~57 MB of code
    # Everything imported: from here on, memory growth is the candidate's.
    tracker = PeakTracker().start()

    build_start = time.perf_counter()
    if options.get("weights_init", "fill") == "model":  # the earlier way: transformers' init pass
        torch.set_default_dtype(dtype)
        model = EdgeForCausalLM(config).eval()
        torch.set_default_dtype(torch.float32)
        model.to(dtype)
    else:
        model = random_candidate(model_config, dtype, int(options.get("seed", 0)))
    build_s = time.perf_counter() - build_start
    n_params = sum(p.numel() for p in model.parameters())

    vocab = config.vocab_size
    P, C, T = int(options["prefill_tokens"]), int(options["decode_context"]), int(options["decode_tokens"])
    gen = torch.Generator().manual_seed(int(options.get("seed", 0)))
    prefill_ids = torch.randint(3, vocab, (1, P), generator=gen)
    context_ids = torch.randint(3, vocab, (1, C), generator=gen)

    def _cache(out: Any) -> Any:
        return out.cache if getattr(out, "cache", None) is not None else out.past_key_values

    # "cpu": this thread's CPU time, which a neighbour's load does not stretch (threads=1 only).
    clock = time.thread_time if options.get("clock") == "cpu" else time.perf_counter

    def prefill_once() -> float:
        start = clock()
        model(input_ids=prefill_ids, use_cache=True, logits_to_keep=1)
        return (clock() - start) * 1000

    # The C-token context is prefilled once; every decode round continues from a copy of
    # its cache, so rounds cost T steps instead of a new prefill each.
    with torch.inference_mode():
        primed = model(input_ids=context_ids, use_cache=True, logits_to_keep=1)
    primed_cache, first_token = _cache(primed), primed.logits[:, -1:].argmax(-1)

    def decode_once() -> float:
        cache, token = copy.deepcopy(primed_cache), first_token
        steps = []
        for _ in range(T):
            start = clock()
            out = model(input_ids=token, cache=cache, use_cache=True)
            token = out.logits[:, -1:].argmax(-1)  # greedy: the next step depends on this one
            steps.append((clock() - start) * 1000)
            cache = _cache(out)
        return statistics.median(steps)

    with torch.inference_mode():
        timed = run_schedule(options, prefill_once, decode_once)
    peak_mb = tracker.peak_mb()
    return {
        **result_fields(timed),
        # peak_rss_mb: the candidate's own peak (above the interpreter + torch baseline);
        # peak_rss_total_mb: the whole measuring process's peak, baseline included.
        "peak_rss_mb": max(0.0, peak_mb - tracker.baseline_mb),
        "peak_rss_total_mb": peak_mb,
        "baseline_rss_mb": tracker.baseline_mb,
        "peak_rss_method": tracker.method,
        "build_s": build_s,
        "measured_params": n_params,
        "threads": torch.get_num_threads(),
        "dtype": options["dtype"],
        "clock": options.get("clock", "wall"),
        "schedule": options.get("schedule", "interleaved"),
        "weights_init": options.get("weights_init", "fill"),
        "prefill_tokens": P,
        "decode_context": C,
        "decode_tokens": T,
    }


def main() -> None:
    request = json.loads(sys.stdin.read())
    out = measure(request["model_config"], request["options"])
    sys.stdout.write("\nEDGESMITH_PROFILE " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
