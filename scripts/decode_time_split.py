"""Where one batch-1 decode step of the LFM2-350M layout spends its time, per dtype.

    .venv/bin/python scripts/decode_time_split.py [--dtypes float32 bfloat16 int8_dynamic]
        [--context 512] [--steps 30] [--compile] [--workdir /tmp/decode_split]
    .venv/bin/python scripts/decode_time_split.py --rollout [--new-tokens 32] [--rollout-dtype bfloat16]

For each dtype it loads the same random-weight checkpoint (the layout of conf/model/
lfm2_350m.yaml, written once under --workdir), prefills --context tokens and times --steps
decode steps (median wall ms). Then, under torch.profiler, it splits the step into the
weight products (``addmv``/``mv``/``linear``/``mm``/fbgemm ``linear_dynamic``/int8 kernels),
every other operator, and what is left: the Python between operators. This is the split
issue 13's remaining goals turn on: a dtype's decode can only beat the mat-vec roofline
ratio by as much as the non-product time allows.

``--compile`` also times the same steps with ``torch.compile`` on the model body, to show
whether the compiler removes that Python (at the time of writing it did not: the decode
state is a per-layer Python cache, so it recompiles per layer; see the printed warning).

``--rollout`` instead profiles batched sampled rollouts through the pipeline's own rollout
loop (8 prompts x 6 samples at temperature 0.8, --new-tokens each, in --rollout-dtype; the shape of
``bench=model_speed``'s rollout cell) and prints the operators that take the most time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

MATMUL_OPS = ("aten::addmv_", "aten::mv", "aten::addmm", "aten::mm", "aten::linear", "mkldnn::_linear_pointwise",
              "quantized::linear_dynamic", "aten::_weight_int8pack_mm")


def checkpoint(workdir: Path) -> Path:
    """The edgesmith checkpoint of the LFM2-350M layout (random weights, seed 0)."""
    target = workdir / "edgesmith"
    if (target / "config.json").exists():
        return target
    from omegaconf import OmegaConf

    import edgesmith.conf
    from edgesmith.core.plugin_manager import get_plugin_manager
    from edgesmith.core.validation import validate_model
    from edgesmith.plugins.benchmarks.model_speed import write_lfm2_and_edgesmith
    from edgesmith.plugins.interop.lfm2 import edge_config_to_lfm2

    layout = OmegaConf.load(Path(edgesmith.conf.__file__).parent / "model" / "lfm2_350m.yaml")
    config = validate_model(OmegaConf.create({"model": layout}), get_plugin_manager())
    write_lfm2_and_edgesmith(edge_config_to_lfm2(config), 0, workdir)
    return target


def step_ms(drive, token, cache, steps: int) -> tuple[float, torch.Tensor, object]:
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logits, cache = drive(token, cache)
        times.append(time.perf_counter() - start)
        token = logits.argmax(-1, keepdim=True)
    return 1000 * statistics.median(times), token, cache


def split(drive, token, cache, steps: int) -> dict[str, float]:
    """Per-step ms of the weight products, of every other operator, and of the rest (Python)."""
    with torch.profiler.profile() as prof:
        start = time.perf_counter()
        for _ in range(steps):
            logits, cache = drive(token, cache)
            token = logits.argmax(-1, keepdim=True)
        wall = time.perf_counter() - start
    events = prof.key_averages()
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / 1000
    ops = sum(e.self_cpu_time_total for e in events) / 1000
    total = 1000 * wall
    return {"step_ms": total / steps, "products_ms": matmul / steps, "other_ops_ms": (ops - matmul) / steps,
            "python_ms": (total - ops) / steps}


def profile_rollout(path: Path, new_tokens: int, dtype: torch.dtype = torch.float32) -> None:
    """Tokens/s of 8 x 6 sampled rows and the operators that take the most of their time."""
    from edgesmith.plugins.benchmarks.model_speed_worker import load_model
    from edgesmith.plugins.evaluation.rollout import _decode_batch

    model = load_model("edgesmith", str(path), dtype)
    generator = torch.Generator().manual_seed(0)
    lengths = torch.randint(16, 65, (8,), generator=generator)
    prompts = [torch.randint(3, model.config.vocab_size, (int(n),), generator=generator).tolist() for n in lengths]
    rows = [p for p in prompts for _ in range(6)]

    def decode(batch: list[list[int]], tokens: int) -> None:
        _decode_batch(model, batch, [False] * len(batch), stops=[-1], pad_id=0, max_new_tokens=tokens,
                      temperature=0.8, top_p=1.0, generator=generator, loop_guard=False)

    with torch.inference_mode():
        decode(rows[:2], 4)  # warm-up
        with torch.profiler.profile() as prof:
            start = time.perf_counter()
            decode(rows, new_tokens)
            wall = time.perf_counter() - start
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    print(f"rollout: {len(rows)} rows x {new_tokens} new tokens, {len(rows) * new_tokens / wall:.1f} tok/s "
          f"(under the profiler)")
    for event in events[:6]:
        print(f"  {event.key:<52} {100 * event.self_cpu_time_total / total:5.1f}% of operator time, "
              f"{event.self_cpu_time_total / 1000 / new_tokens:7.1f} ms per step")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "int8_dynamic"])
    parser.add_argument("--context", type=int, default=512)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/decode_split"))
    parser.add_argument("--rollout", action="store_true")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--rollout-dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()

    from edgesmith.core.linear import QUANT_MODES
    from edgesmith.plugins.benchmarks.model_speed_worker import DTYPES, Driver, load_model

    torch.set_num_threads(args.threads)
    path = checkpoint(args.workdir)
    if args.rollout:
        profile_rollout(path, args.new_tokens, DTYPES[args.rollout_dtype])
        return
    # step ms: median wall time of a step; profiled: a step under the profiler, split into the
    # weight products, every other operator and the Python between operators (ms per step)
    print(f"{'dtype':<14} {'mode':<8} {'step ms':>8} {'profiled':>9} {'products':>9} {'other ops':>10} {'python':>7}")
    for dtype in args.dtypes:
        if dtype not in DTYPES:
            raise SystemExit(f"--dtypes: unknown {dtype!r}; accepted: {', '.join(DTYPES)}")
        model = load_model("edgesmith", str(path), DTYPES[dtype], quant=dtype if dtype in QUANT_MODES else None)
        modes = ["eager"] + (["compiled"] if args.compile else [])
        for mode in modes:
            if mode == "compiled":
                import torch._dynamo as dynamo

                dynamo.reset()
                model.model.forward = torch.compile(model.model.forward)
            drive = Driver(model)
            with torch.inference_mode():
                prompt = torch.randint(0, model.config.vocab_size, (1, args.context),
                                       generator=torch.Generator().manual_seed(0))
                logits, cache = drive(prompt, None)
                token = logits.argmax(-1, keepdim=True)
                _, token, cache = step_ms(drive, token, cache, 5)  # warm-up (and compilation)
                median, token, cache = step_ms(drive, token, cache, args.steps)
                parts = split(drive, token, cache, min(args.steps, 10)) if mode == "eager" else None
            row = f"{dtype:<14} {mode:<8} {median:>8.2f}"
            if parts:
                row += (f" {parts['step_ms']:>9.2f} {parts['products_ms']:>9.2f} {parts['other_ops_ms']:>10.2f}"
                        f" {parts['python_ms']:>7.2f}")
            print(row, flush=True)
        del model


if __name__ == "__main__":
    main()
