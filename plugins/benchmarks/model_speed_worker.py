"""One measurement of the ``model`` benchmark, run in a fresh process so peak RSS is per model.

``python -m edgesmith.plugins.benchmarks.model_speed_worker SPEC.json RESULT.json`` loads
one model directory in one dtype with a fixed thread count, then for every context C:
prefills C tokens (timed), and decodes ``decode_tokens`` greedy tokens with the model's own
cache (timed). Every model is driven through the same two calls (a full forward with
``use_cache=True``, then one-token forwards carrying the returned cache), so the numbers
differ only by what the model does inside them.
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import sys
import time
from typing import Any

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def load_model(kind: str, path: str, dtype: torch.dtype) -> torch.nn.Module:
    if kind == "edgesmith":
        from edgesmith.core.modeling import EdgeForCausalLM

        cls = EdgeForCausalLM
    elif kind == "lfm2":
        from transformers import Lfm2ForCausalLM

        cls = Lfm2ForCausalLM
    elif kind == "llama":
        from transformers import LlamaForCausalLM

        cls = LlamaForCausalLM
    else:
        raise ValueError(f"unknown model kind {kind!r}; accepted: edgesmith, lfm2, llama")
    return cls.from_pretrained(path, dtype=dtype).eval()


class Driver:
    """Calls a causal LM with its cache, whatever the cache keyword of its forward is called."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        params = inspect.signature(model.forward).parameters
        self.cache_kw = "cache" if "cache" in params else "past_key_values"
        # Generation only needs the last position's logits; every model is asked for just those.
        self.keep_kw = "logits_to_keep" if "logits_to_keep" in params else None

    def __call__(self, input_ids: torch.Tensor, cache: Any) -> tuple[torch.Tensor, Any]:
        kwargs = {"input_ids": input_ids, "use_cache": True}
        if cache is not None:
            kwargs[self.cache_kw] = cache
        if self.keep_kw:
            kwargs[self.keep_kw] = 1
        out = self.model(**kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = getattr(out, "past_key_values", None)
        return out.logits[:, -1, :], new_cache


def peak_rss_mb() -> float:
    """This process's peak resident set size, in MiB.

    Linux keeps ``ru_maxrss`` across fork and exec, so a child started by a big parent would
    report the parent's peak; ``VmHWM`` belongs to the process's own address space.
    """
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    threads = int(spec["threads"])
    torch.set_num_threads(threads)
    dtype = DTYPES[spec["dtype"]]
    t0 = time.perf_counter()
    model = load_model(spec["kind"], spec["path"], dtype)
    load_s = time.perf_counter() - t0
    import psutil

    rss_after_load = psutil.Process().memory_info().rss
    drive = Driver(model)
    vocab = int(spec["vocab_size"])
    generator = torch.Generator().manual_seed(int(spec["seed"]))
    result: dict[str, Any] = {"kind": spec["kind"], "dtype": spec["dtype"], "threads": threads,
                              "load_s": load_s, "prefill_tok_s": {}, "decode_tok_s": {}}
    with torch.inference_mode():
        # Warm-up: first calls allocate and pick kernels; that cost is not what is measured.
        logits, cache = drive(torch.randint(0, vocab, (1, 16), generator=generator), None)
        for _ in range(2):
            logits, cache = drive(logits.argmax(-1, keepdim=True), cache)
        decode_contexts = set(spec["decode_contexts"])
        for context in sorted(set(spec["prefill_lengths"]) | decode_contexts):
            prompt = torch.randint(0, vocab, (1, context), generator=generator)
            # One untimed pass at this length first: the first long forward of a process pays
            # for fresh allocations (page faults), which would penalise whichever model
            # allocates differently rather than measure its compute.
            drive(prompt, None)
            start = time.perf_counter()
            logits, cache = drive(prompt, None)
            result["prefill_tok_s"][str(context)] = context / (time.perf_counter() - start)
            if context not in decode_contexts:
                del cache, logits
                continue
            steps = int(spec["decode_tokens"])
            token = logits.argmax(-1, keepdim=True)
            start = time.perf_counter()
            for _ in range(steps):
                logits, cache = drive(token, cache)
                token = logits.argmax(-1, keepdim=True)  # greedy
            result["decode_tok_s"][str(context)] = steps / (time.perf_counter() - start)
            del cache, logits
    result["rss_after_load_mb"] = rss_after_load / 2**20
    result["peak_rss_mb"] = peak_rss_mb()
    result["num_parameters"] = sum(p.numel() for p in model.parameters())
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(open(argv[0]).read())
    result = measure(spec)
    tmp = argv[1] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(result, fh, indent=2)
    os.replace(tmp, argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
