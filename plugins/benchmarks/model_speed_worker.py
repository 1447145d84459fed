"""One measurement of the ``model`` benchmark, run in a fresh process so peak RSS is per model.

``python -m edgesmith.plugins.benchmarks.model_speed_worker SPEC.json RESULT.json`` runs one
of three tasks (``spec["task"]``) with a fixed thread count:

* ``model``: loads one model directory in one dtype (``int8`` / ``int8_dynamic``: quantized
  by :func:`edgesmith.core.linear.quantize` after loading in bf16 / fp32), then for every context C prefills C tokens
  (timed) and decodes ``decode_tokens`` greedy tokens with the model's own cache, each
  step timed on its own (the median step is the decode speed: one stalled step on a shared
  machine does not move it). Every model is driven through the same two calls (a full
  forward with ``use_cache=True``, then one-token forwards carrying the returned cache),
  so the numbers differ only by what the model does inside them.
* ``roofline``: how fast one row times a weight matrix streams the weights, in GB/s, for
  each dtype and CPU path (fp32 ``linear``; bf16 ``linear`` and ``mv``; int8
  ``_weight_int8pack_mm``; int8_dynamic fbgemm's ``linear_dynamic``), on the benchmarked layout's own matrix shapes.
* ``rollout``: batched sampled rollouts (left-padded prompts, several samples each) and
  greedy outputs, by edgesmith's rollout loop on edgesmith or by ``generate`` on LFM2.

Wall time and this process's CPU time are both recorded (CPU time is less disturbed when
other jobs share the cores; the benchmark's ``clock`` option picks which one is reported).
"""

from __future__ import annotations

import inspect
import json
import os
import resource
import statistics
import sys
import time
from typing import Any

import torch

from edgesmith.core.linear import (DYNAMIC_REDUCE_RANGE, QUANT_LOAD_DTYPES, QUANT_MODES, Int8DynamicLinear,
                                   quantize_per_channel)

# a quantized "dtype" loads the checkpoint in the dtype its quantization runs the other layers in
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, **QUANT_LOAD_DTYPES}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def load_model(kind: str, path: str, dtype: torch.dtype, quant: str | None = None) -> torch.nn.Module:
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
    model = cls.from_pretrained(path, dtype=dtype).eval()
    if quant is not None:
        from edgesmith.core.linear import quantize

        quantize(model, quant)
    return model


def decode_bytes(model: torch.nn.Module) -> int:
    """Bytes of weights one decode step reads: every parameter and buffer once, except the
    input embedding (one row per token) unless the LM head is that same matrix."""
    embedding = model.get_input_embeddings().weight
    head = getattr(model.get_output_embeddings(), "weight", None)
    tensors = {t.data_ptr(): t for t in [*model.parameters(), *model.buffers()]}
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    # fbgemm's packed int8 weights (Int8DynamicLinear) are neither parameters nor buffers
    total += sum(getattr(module, "packed_bytes", 0) for module in model.modules())
    if head is None or head.data_ptr() != embedding.data_ptr():
        total -= embedding.numel() * embedding.element_size()
    return total


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


def _timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def measure_model(spec: dict[str, Any]) -> dict[str, Any]:
    dtype_name = spec["dtype"]
    dtype = DTYPES[dtype_name]
    t0 = time.perf_counter()
    model = load_model(spec["kind"], spec["path"], dtype, quant=dtype_name if dtype_name in QUANT_MODES else None)
    load_s = time.perf_counter() - t0
    import psutil

    rss_after_load = psutil.Process().memory_info().rss
    drive = Driver(model)
    vocab = int(spec["vocab_size"])
    generator = torch.Generator().manual_seed(int(spec["seed"]))
    result: dict[str, Any] = {"kind": spec["kind"], "dtype": dtype_name, "threads": spec["threads"],
                              "load_s": load_s, "decode_bytes": decode_bytes(model)}
    for clock in CLOCKS:
        result[f"prefill_tok_s_{clock}"], result[f"decode_tok_s_{clock}"] = {}, {}
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
            walls, cpus = [], []
            for _ in range(int(spec.get("prefill_passes", 1))):  # the median of a few passes
                logits = cache = None  # the previous pass's cache is freed before the next one
                (logits, cache), wall, cpu = _timed(lambda: drive(prompt, None))
                walls.append(wall)
                cpus.append(cpu)
            result["prefill_tok_s_wall"][str(context)] = context / statistics.median(walls)
            result["prefill_tok_s_cpu"][str(context)] = context / max(statistics.median(cpus), 1e-9)
            if context not in decode_contexts:
                del cache, logits
                continue
            token = logits.argmax(-1, keepdim=True)
            steps = {"wall": [], "cpu": []}
            for _ in range(int(spec["decode_tokens"])):
                (logits, cache), wall, cpu = _timed(lambda: drive(token, cache))
                token = logits.argmax(-1, keepdim=True)  # greedy
                steps["wall"].append(wall)
                steps["cpu"].append(cpu)
            for clock, times in steps.items():
                result[f"decode_tok_s_{clock}"][str(context)] = 1.0 / max(statistics.median(times), 1e-9)
            del cache, logits
    result["rss_after_load_mb"] = rss_after_load / 2**20
    result["peak_rss_mb"] = peak_rss_mb()
    result["num_parameters"] = sum(p.numel() for p in model.parameters())
    return result


def roofline_shapes(spec: dict[str, Any]) -> list[tuple[int, int]]:
    """(out, in) of the layout's distinct weight matrices: FFN, conv projections, attention, LM head."""
    d, ff, vocab = int(spec["hidden_size"]), int(spec["intermediate_size"]), int(spec["vocab_size"])
    return [(ff, d), (d, ff), (3 * d, d), (d, d), (vocab, d)]


def roofline_copies(spec: dict[str, Any]) -> int:
    """How many times the distinct matrices are repeated, so that one pass streams as many
    weights as one decode step of the model does (``working_set_bytes``, fp32).

    A pass over just the distinct matrices (161 MB in bf16 for LFM2-350M) can sit in a large
    last-level cache (480 MiB on one of these machines), which inflates the GB/s of the
    smaller dtypes; the model's own weights do not fit, so neither may the probe's.
    """
    distinct = sum(n * k for n, k in roofline_shapes(spec)) * 4
    return max(1, round(int(spec.get("working_set_bytes", 0)) / distinct))


def measure_roofline(spec: dict[str, Any]) -> dict[str, Any]:
    """GB/s of weights streamed by one-row products, per dtype and path (median over rounds)."""
    torch.manual_seed(int(spec["seed"]))
    shapes = roofline_shapes(spec) * roofline_copies(spec)
    weights = [torch.randn(n, k) * 0.02 for n, k in shapes]
    rows = [torch.randn(1, k) for _, k in shapes]
    bf16 = [w.to(torch.bfloat16) for w in weights]
    rows16 = [x.to(torch.bfloat16) for x in rows]
    # the layers' own quantization; the kernels are timed bare below
    int8, scales16 = zip(*(quantize_per_channel(w, torch.bfloat16) for w in weights))
    dynamic = [Int8DynamicLinear(w) for w in weights]
    n32 = sum(w.numel() for w in weights) * 4
    F = torch.nn.functional
    paths = {  # name: (dtype, one pass over every matrix, bytes it streams)
        "float32 linear": ("float32", lambda: [F.linear(x, w) for x, w in zip(rows, weights)], n32),
        "bfloat16 linear": ("bfloat16", lambda: [F.linear(x, w) for x, w in zip(rows16, bf16)], n32 // 2),
        "bfloat16 mv": ("bfloat16", lambda: [torch.mv(w, x[0]) for x, w in zip(rows16, bf16)], n32 // 2),
        "int8 _weight_int8pack_mm": ("int8", lambda: [torch.ops.aten._weight_int8pack_mm(x, q, s)
                                                     for x, q, s in zip(rows16, int8, scales16)], n32 // 4),
        "int8_dynamic fbgemm linear_dynamic": ("int8_dynamic", lambda: [
            layer._kernel(x, layer.packed, DYNAMIC_REDUCE_RANGE) for x, layer in zip(rows, dynamic)], n32 // 4),
    }
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in paths}
    with torch.inference_mode():
        for _, run, _ in paths.values():
            run()
        for _ in range(int(spec.get("roofline_rounds", 15))):  # interleaved, like the repeats
            for name, (_, run, _) in paths.items():
                _, wall, cpu = _timed(run)
                times[name]["wall"].append(wall)
                times[name]["cpu"].append(cpu)
    result: dict[str, Any] = {"task": "roofline", "shapes": roofline_shapes(spec),
                              "copies": roofline_copies(spec), "paths": {}}
    for name, (dtype, _, nbytes) in paths.items():
        result["paths"][name] = {"dtype": dtype, "bytes": nbytes, **{
            f"gb_s_{clock}": nbytes / max(statistics.median(t), 1e-12) / 1e9 for clock, t in times[name].items()}}
    return result


def rollout_prompts(spec: dict[str, Any]) -> list[list[int]]:
    """Seeded random prompts of different lengths (so the batch is left-padded)."""
    generator = torch.Generator().manual_seed(int(spec["seed"]) + 1)
    low, high = int(spec["rollout_prompt_min"]), int(spec["rollout_prompt_max"])
    lengths = torch.randint(low, high + 1, (int(spec["rollout_prompts"]),), generator=generator)
    return [torch.randint(3, int(spec["vocab_size"]), (int(n),), generator=generator).tolist() for n in lengths]


def measure_rollout(spec: dict[str, Any]) -> dict[str, Any]:
    """Sampled rollouts (tokens/s) and greedy outputs of one model through its engine.

    edgesmith: :func:`edgesmith.plugins.evaluation.rollout._decode_batch` (one prefill per
    prompt shared by its samples, finished rows leave the batch); lfm2: transformers'
    ``generate`` with ``num_return_sequences``. No end-of-sequence token is set, so every
    row decodes exactly ``rollout_new_tokens`` tokens in both engines: the same work.
    """
    dtype = DTYPES[spec["dtype"]]
    model = load_model(spec["kind"], spec["path"], dtype)
    prompts = rollout_prompts(spec)
    samples, new_tokens = int(spec["rollout_samples"]), int(spec["rollout_new_tokens"])
    temperature, pad_id = 0.8, 0
    generator = torch.Generator().manual_seed(int(spec["seed"]))

    if spec["kind"] == "edgesmith":
        from edgesmith.plugins.evaluation.rollout import _decode_batch

        def run(rows: list[list[int]], greedy: bool) -> list[list[int]]:
            out = _decode_batch(model, rows, [greedy] * len(rows), stops=[-1], pad_id=pad_id,
                                max_new_tokens=new_tokens, temperature=temperature, top_p=1.0,
                                generator=generator, loop_guard=False)
            return [ids for ids, _, _ in out]
    else:
        def run(rows: list[list[int]], greedy: bool) -> list[list[int]]:
            distinct = rows[::samples] if not greedy else rows
            width = max(len(p) for p in distinct)
            ids = torch.tensor([[pad_id] * (width - len(p)) + p for p in distinct])
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in distinct])
            torch.manual_seed(int(spec["seed"]))
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=not greedy,
                                 temperature=temperature if not greedy else None, top_p=1.0, top_k=0,
                                 num_return_sequences=1 if greedy else samples, eos_token_id=None,
                                 pad_token_id=pad_id)
            return out[:, width:].tolist()

    sampled_rows = [p for p in prompts for _ in range(samples)]
    result: dict[str, Any] = {"task": "rollout", "kind": spec["kind"], "dtype": spec["dtype"],
                              "rows": len(sampled_rows), "new_tokens": new_tokens}
    with torch.inference_mode():
        run(prompts[:2], True)  # warm-up
        tokens, wall, cpu = _timed(lambda: run(sampled_rows, False))
        result["sampled_tokens"] = sum(len(t) for t in tokens)
        result["tok_s_wall"] = result["sampled_tokens"] / wall
        result["tok_s_cpu"] = result["sampled_tokens"] / max(cpu, 1e-9)
        result["greedy"] = run(prompts, True)
    return result


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    torch.set_num_threads(int(spec["threads"]))
    task = spec.get("task", "model")
    if task == "roofline":
        return measure_roofline(spec)
    if task == "rollout":
        return measure_rollout(spec)
    return measure_model(spec)


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
