"""Benchmark ``kernels``: each Triton token-mixer kernel vs its torch reference (and fla's).

On a CUDA GPU, for every kernel family (short_conv, swa, linear_attn, gated_delta), batch
size and sequence length, it times the forward pass and forward+backward in bfloat16 with
``triton.testing.do_bench`` (median of repeated runs after warm-up) for three
implementations run side by side in one process: the Triton kernel, the torch reference,
and, for the gated delta rule and linear attention, the kernels of the
``flash-linear-attention`` package (``fla``) when it is importable. It also checks once per
shape that the Triton output matches the torch reference.

It prints a table (times, ratios, achieved TB/s for the memory-bound convolution and
TFLOP/s for the others), writes ``kernels_speed.json`` and ``kernels_speed.png`` into the
run directory, and states the goals: every Triton kernel >= 5x faster than its torch
reference; gated delta and linear attention within 1.25x of fla.

Each kernel family describes its own benchmark case (:class:`KernelCase`: inputs,
implementations, nominal work, fla's counterpart), listed in :func:`kernel_cases`. FLOP and
byte counts are nominal (what the algorithm must do, not what a kernel does):

- short_conv bytes: forward reads x and writes y; backward reads dy and x and writes dx;
- swa FLOPs: 4 * B * H * D * (visible keys summed over queries) forward, backward 2.5x that;
- linear_attn / gated_delta FLOPs: the chunkwise matmuls per token and head (see
  their cases), backward counted as twice the forward.

Run as ``edgesmith bench bench=kernels [kernels.<option>=value ...]``; where Hydra is not
installed (a bare GPU machine), ``scripts/gpu_check.sh`` calls :func:`run_benchmark` directly.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from edgesmith.core.errors import ConfigError, EdgesmithError

KERNELS = ("short_conv", "swa", "linear_attn", "gated_delta")
MODES = ("fwd", "fwd_bwd")
SECTION = "kernels"  # the benchmark's options share the section with kernels.backend
SPEEDUP_GOAL = 5.0
BF16 = torch.bfloat16
FLA_GOAL = 1.25


class NeedsGPUError(EdgesmithError, RuntimeError):
    """The kernel benchmark was started where no CUDA GPU is visible."""


@dataclass
class KernelSpeedOptions:
    """Options of ``edgesmith bench bench=kernels`` (``kernels.<option>=value``).

    ``backend`` is the process-wide kernel backend (``kernels.backend``, applied by the
    CLI); the benchmark itself names each implementation it times explicitly.
    """

    backend: str = "auto"
    kernels: list[str] = field(default_factory=lambda: list(KERNELS))
    modes: list[str] = field(default_factory=lambda: list(MODES))
    batch_sizes: list[int] = field(default_factory=lambda: [4, 8])
    seq_lens: list[int] = field(default_factory=lambda: [2048, 4096, 8192])
    heads: int = 16
    head_dim: int = 128
    conv_hidden: int = 2048
    conv_length: int = 3
    window: int = 1024
    chunk_size: int = 64
    compare_fla: bool = True
    warmup_ms: int = 25
    rep_ms: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        for name, accepted in (("kernels", KERNELS), ("modes", MODES)):
            values = list(getattr(self, name))
            bad = [v for v in values if v not in accepted]
            if not values or bad or len(set(values)) != len(values):
                raise ConfigError(f"{SECTION}.{name}", values,
                                  f"a non-empty list without repeats from: {', '.join(accepted)}")
        for name in ("batch_sizes", "seq_lens"):
            values = list(getattr(self, name))
            if not values or any(int(v) < 1 for v in values):
                raise ConfigError(f"{SECTION}.{name}", values, "a non-empty list of positive integers")
        for name in ("heads", "head_dim", "conv_hidden", "conv_length", "window", "chunk_size",
                     "warmup_ms", "rep_ms"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{SECTION}.{name}", getattr(self, name), "a positive integer")
        if self.head_dim > 256:
            raise ConfigError(f"{SECTION}.head_dim", self.head_dim, "at most 256 (the kernels' tile limit)")


# ------------------------------------------------------------------ workloads


@dataclass
class Workload:
    """One kernel at one shape: how to run each implementation, and what it must do."""

    case: KernelCase
    batch: int
    seq_len: int
    opts: KernelSpeedOptions
    inputs: list[torch.Tensor]
    run: dict[str, Callable[[list[torch.Tensor]], torch.Tensor]]  # implementation -> fn(inputs) -> output
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def kernel(self) -> str:
        return self.case.name


@dataclass(frozen=True)
class KernelCase:
    """How one kernel family is benchmarked: its inputs and implementations, and its nominal work.

    ``inputs(B, T, opts, randn)`` gives the inputs (``randn``: fp32 on the device); ``run(opts)`` maps ``triton`` and
    ``torch`` to ``fn(inputs) -> output``; ``fla`` (optional) returns fla's ``fn`` (imported
    lazily: fla may be absent). A memory-bound kernel states ``bytes_per_element`` (forward,
    forward+backward, per element of ``elements``) and is reported in TB/s; the others state
    ``flops`` and the backward's cost as a multiple of the forward, reported in TFLOP/s.
    """

    name: str
    inputs: Callable[..., list[torch.Tensor]]
    run: Callable[[KernelSpeedOptions], dict[str, Callable]]
    flops: Callable[[int, int, KernelSpeedOptions], float] | None = None
    backward_flops_factor: float = 3.0  # forward+backward as a multiple of the forward
    elements: Callable[[int, int, KernelSpeedOptions], int] | None = None
    bytes_per_element: tuple[float, float] = (0.0, 0.0)  # (fwd, fwd_bwd), bf16 elements read + written
    fla: Callable[[], Callable] | None = None

    @property
    def unit(self) -> str:
        return "TB/s" if self.elements else "TFLOP/s"

    def work(self, B: int, T: int, opts: KernelSpeedOptions, mode: str) -> float:
        """Nominal bytes (TB/s kernels) or FLOPs (the others) of one call in ``mode``."""
        if self.elements:
            return self.elements(B, T, opts) * self.bytes_per_element[0 if mode == "fwd" else 1] * 2
        return self.flops(B, T, opts) * (1.0 if mode == "fwd" else self.backward_flops_factor)


def _implementations(fn: Callable[[list[torch.Tensor], str], torch.Tensor]) -> dict[str, Callable]:
    return {name: (lambda x, name=name: fn(x, name)) for name in ("triton", "torch")}


def _short_conv_case() -> KernelCase:
    from edgesmith.kernels.short_conv import ops

    return KernelCase(
        "short_conv",
        inputs=lambda B, T, o, randn: [randn(B, o.conv_hidden, T).to(BF16),
                                       (randn(o.conv_hidden, o.conv_length) / o.conv_length).to(BF16)],
        run=lambda o: _implementations(lambda x, b: ops.causal_conv1d(x[0], x[1], backend=b)[0]),
        # forward reads x and writes y; backward reads dy and x and writes dx
        elements=lambda B, T, o: B * o.conv_hidden * T, bytes_per_element=(2.0, 5.0))


def _swa_case() -> KernelCase:
    from edgesmith.kernels.swa import ops

    def flops(B: int, T: int, o: KernelSpeedOptions) -> float:
        visible = sum(min(t + 1, o.window) for t in range(T))
        return 4.0 * B * o.heads * o.head_dim * visible

    return KernelCase(
        "swa",
        inputs=lambda B, T, o, randn: [randn(B, o.heads, T, o.head_dim).to(BF16) for _ in range(3)],
        run=lambda o: _implementations(lambda x, b: ops.sliding_window_attention(*x, o.window, backend=b)),
        flops=flops, backward_flops_factor=3.5)


def _linear_attn_case() -> KernelCase:
    from edgesmith.kernels.linear_attn import ops

    def inputs(B: int, T: int, o: KernelSpeedOptions, randn) -> list[torch.Tensor]:
        scale = o.head_dim ** -0.5
        return [(randn(B, T, o.heads, o.head_dim) * scale).to(BF16),
                (randn(B, T, o.heads, o.head_dim) * scale).to(BF16), randn(B, T, o.heads, o.head_dim).to(BF16)]

    def fla():
        from fla.ops.linear_attn import chunk_linear_attn

        def run(x):
            q, k, v = x
            try:
                return chunk_linear_attn(q, k, v, normalize=False, output_final_state=False)[0]
            except TypeError:  # older fla without the normalize switch
                return chunk_linear_attn(q, k, v, output_final_state=False)[0]
        return run

    return KernelCase(
        "linear_attn", inputs=inputs,
        run=lambda o: _implementations(lambda x, b: ops.chunk_linear_attn(
            *x, output_final_state=False, chunk_size=o.chunk_size, backend=b)[0]),
        # per token: Q K^T and P V inside the chunk, Q S and the K^T V state update
        flops=lambda B, T, o: 2.0 * B * o.heads * T * (2 * o.chunk_size * o.head_dim + 2 * o.head_dim ** 2),
        fla=fla)


def _gated_delta_case() -> KernelCase:
    import torch.nn.functional as F

    from edgesmith.kernels.gated_delta import ops

    def inputs(B: int, T: int, o: KernelSpeedOptions, randn) -> list[torch.Tensor]:
        H, D = o.heads, o.head_dim
        # q, k, v in bf16; the decay g and write strength beta in fp32, as the operator passes them
        return [randn(B, T, H, D).to(BF16), F.normalize(randn(B, T, H, D), dim=-1).to(BF16),
                randn(B, T, H, D).to(BF16), -F.softplus(randn(B, T, H)) * 0.1, torch.sigmoid(randn(B, T, H))]

    def fla():
        from fla.ops.gated_delta_rule import chunk_gated_delta_rule

        def run(x):
            q, k, v, g, beta = x
            return chunk_gated_delta_rule(q, k, v, g, beta, output_final_state=False)[0]
        return run

    return KernelCase(
        "gated_delta", inputs=inputs,
        run=lambda o: _implementations(lambda x, b: ops.chunk_gated_delta_rule(
            *x, output_final_state=False, chunk_size=o.chunk_size, backend=b)[0]),
        # per token: K K^T, Tinv X, Tinv Y, W S, Q K^T, Q S, P U, state update
        flops=lambda B, T, o: 2.0 * B * o.heads * T * (5 * o.chunk_size * o.head_dim + 3 * o.head_dim ** 2),
        fla=fla)


def kernel_cases() -> dict[str, KernelCase]:
    """Every kernel family's benchmark case, by the name ``kernels.kernels`` lists."""
    cases = [_short_conv_case(), _swa_case(), _linear_attn_case(), _gated_delta_case()]
    return {case.name: case for case in cases}


def build_workload(kernel: str, B: int, T: int, opts: KernelSpeedOptions, device: torch.device) -> Workload:
    """Random bf16 inputs for ``kernel`` at batch ``B`` and length ``T`` plus its implementations."""
    gen = torch.Generator(device=device).manual_seed(opts.seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, device=device, dtype=torch.float32)

    case = kernel_cases()[kernel]
    work = Workload(case, B, T, opts, case.inputs(B, T, opts, randn), case.run(opts))
    if case.fla is not None and opts.compare_fla:
        _add_fla(work, case.fla)
    return work


def _add_fla(work: Workload, factory: Callable[[], Callable]) -> None:
    try:
        work.run["fla"] = factory()
    except Exception as exc:  # not installed, or a version whose API moved: report, don't fail
        work.notes["fla"] = f"not importable ({type(exc).__name__}: {exc})"


# ------------------------------------------------------------------ timing


def time_ms(fn: Callable[[], Any], opts: KernelSpeedOptions) -> float:
    """Median milliseconds of ``fn`` on the GPU (triton.testing.do_bench)."""
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=opts.warmup_ms, rep=opts.rep_ms, return_mode="median"))


def _timer(work: Workload, impl: str, mode: str) -> Callable[[], Any]:
    fn = work.run[impl]
    if mode == "fwd":
        def forward():
            with torch.no_grad():
                fn(work.inputs)
        return forward
    leaves = [x.detach().requires_grad_(x.is_floating_point()) for x in work.inputs]
    out = fn(leaves)
    grad_out = torch.randn_like(out)

    def forward_backward():
        for x in leaves:
            x.grad = None
        fn(leaves).backward(grad_out)
    return forward_backward


def _rel_error(work: Workload) -> float:
    with torch.no_grad():
        got = work.run["triton"](work.inputs).float()
        want = work.run["torch"](work.inputs).float()
    return float((got - want).abs().max() / want.abs().max().clamp_min(1e-6))


def _measure_one(work: Workload, impl: str, mode: str, opts: KernelSpeedOptions,
                 timer: Callable[[Callable[[], Any], KernelSpeedOptions], float]) -> tuple[float | None, str]:
    try:
        return timer(_timer(work, impl, mode), opts), ""
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return None, "out of memory"
    except Exception as exc:  # e.g. fla's API differs: record it, keep benchmarking the rest
        if impl == "triton":
            raise
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def run_benchmark(opts: KernelSpeedOptions, out_dir: Path) -> dict:
    """Runs the whole grid on the current CUDA device; returns the JSON-able results."""
    if not torch.cuda.is_available():
        raise NeedsGPUError(
            "bench=kernels needs a CUDA GPU: torch.cuda.is_available() is False here (Triton compiles its "
            "kernels for CUDA GPUs only). Run it on a machine with a GPU (scripts/gpu_check.sh); on CPU, the "
            "kernels' correctness is checked by `pytest tests/test_kernels_triton.py` under TRITON_INTERPRET=1")
    return run_grid(opts, out_dir, torch.device("cuda"), time_ms)


def run_grid(opts: KernelSpeedOptions, out_dir: Path, device: torch.device,
             timer: Callable[[Callable[[], Any], KernelSpeedOptions], float]) -> dict:
    """Measures every (kernel, batch, length, mode, implementation) on ``device`` with ``timer``.

    :func:`run_benchmark` calls it on CUDA with ``do_bench``; tests call it on CPU (Triton
    interpreter) with a wall-clock timer to exercise everything but the GPU timing.
    """
    import triton
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    rows: list[dict] = []
    shapes = [(k, b, t) for k in opts.kernels for b in opts.batch_sizes for t in opts.seq_lens]
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console) as progress:
        task = progress.add_task("kernels", total=len(shapes))
        for kernel, B, T in shapes:
            progress.update(task, description=f"{kernel} B={B} T={T}")
            work = build_workload(kernel, B, T, opts, device)
            err = _rel_error(work)
            for mode in opts.modes:
                row: dict[str, Any] = {"kernel": kernel, "batch": B, "seq_len": T, "mode": mode,
                                       "max_rel_err_vs_torch": err, "ms": {}, "notes": dict(work.notes)}
                for impl in work.run:
                    ms, note = _measure_one(work, impl, mode, opts, timer)
                    row["ms"][impl] = ms
                    if note:
                        row["notes"][impl] = note
                _derive(row, work)
                rows.append(row)
            del work
            if device.type == "cuda":
                torch.cuda.empty_cache()
            progress.advance(task)

    result = {
        "benchmark": "kernels",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"{device.type} (not timed on a GPU)",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "options": dataclasses.asdict(opts),
        "rows": rows,
        "goals": _goals(rows),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "kernels_speed.json").write_text(json.dumps(result, indent=2))
    console.print(results_table(rows))
    for line in result["goals"]["summary"]:
        console.print(line, highlight=False)
    _plot(rows, out_dir / "kernels_speed.png")
    console.print(f"wrote {out_dir / 'kernels_speed.json'} and {out_dir / 'kernels_speed.png'}", highlight=False)
    return result


def _derive(row: dict, work: Workload) -> None:
    ms = row["ms"]
    tri, ref, fla = ms.get("triton"), ms.get("torch"), ms.get("fla")
    row["speedup_vs_torch"] = ref / tri if tri and ref else None
    row["triton_over_fla"] = tri / fla if tri and fla else None
    amount = work.case.work(work.batch, work.seq_len, work.opts, row["mode"])
    scale = 1e12
    if work.case.unit == "TB/s":
        row["achieved"] = {"unit": "TB/s", "triton": amount / (tri * 1e-3) / scale if tri else None}
    else:
        row["achieved"] = {"unit": "TFLOP/s", **{impl: amount / (t * 1e-3) / scale for impl, t in ms.items() if t}}


def _goals(rows: list[dict]) -> dict:
    summary, per_kernel = [], {}
    for kernel in dict.fromkeys(r["kernel"] for r in rows):
        mine = [r for r in rows if r["kernel"] == kernel]
        speedups = [r["speedup_vs_torch"] for r in mine if r["speedup_vs_torch"]]
        fla = [r["triton_over_fla"] for r in mine if r["triton_over_fla"]]
        entry = {"min_speedup_vs_torch": min(speedups) if speedups else None,
                 "speedup_goal_met": bool(speedups) and min(speedups) >= SPEEDUP_GOAL}
        line = f"{kernel}: min speedup vs torch {entry['min_speedup_vs_torch'] or float('nan'):.2f}x " \
               f"(goal >= {SPEEDUP_GOAL:g}x: {'met' if entry['speedup_goal_met'] else 'NOT met'})"
        if kernel_cases()[kernel].fla is not None:
            entry["max_triton_over_fla"] = max(fla) if fla else None
            entry["fla_goal_met"] = bool(fla) and max(fla) <= FLA_GOAL
            line += (f"; worst triton/fla {max(fla):.2f}x (goal <= {FLA_GOAL:g}x: "
                     f"{'met' if entry['fla_goal_met'] else 'NOT met'})" if fla else "; fla not measured")
        per_kernel[kernel] = entry
        summary.append(line)
    return {"per_kernel": per_kernel, "summary": summary}


def results_table(rows: list[dict]):
    """A rich table of the measured rows."""
    from rich.table import Table

    def fmt(x, spec=".3f"):
        return "-" if x is None else format(x, spec)

    table = Table(title="Triton kernels vs torch reference vs fla (bf16, median ms)")
    for col in ("kernel", "B", "T", "mode", "triton ms", "torch ms", "fla ms", "torch/triton", "triton/fla",
                "triton achieved", "rel err"):
        table.add_column(col, justify="right" if col not in ("kernel", "mode") else "left")
    for r in rows:
        ach = r["achieved"]
        table.add_row(r["kernel"], str(r["batch"]), str(r["seq_len"]), r["mode"], fmt(r["ms"].get("triton")),
                      fmt(r["ms"].get("torch")), fmt(r["ms"].get("fla")), fmt(r["speedup_vs_torch"], ".2f"),
                      fmt(r["triton_over_fla"], ".2f"), f"{fmt(ach.get('triton'), '.1f')} {ach['unit']}",
                      f"{r['max_rel_err_vs_torch']:.1e}")
    return table


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kernels = list(dict.fromkeys(r["kernel"] for r in rows))
    fig, axes = plt.subplots(1, len(kernels), figsize=(4.5 * len(kernels), 4), squeeze=False)
    for ax, kernel in zip(axes[0], kernels):
        mine = [r for r in rows if r["kernel"] == kernel]
        labels = [f"B{r['batch']} T{r['seq_len']}\n{r['mode']}" for r in mine]
        ax.bar(range(len(mine)), [r["speedup_vs_torch"] or 0 for r in mine], label="torch / triton")
        fla = [r["triton_over_fla"] for r in mine]
        if any(fla):
            ax.plot(range(len(mine)), [1 / f if f else float("nan") for f in fla], "o", color="C1",
                    label="fla / triton")
        ax.axhline(SPEEDUP_GOAL, color="C3", linestyle="--", linewidth=1, label=f"goal {SPEEDUP_GOAL:g}x")
        ax.set_xticks(range(len(mine)), labels, fontsize=6, rotation=90)
        ax.set_yscale("log")
        ax.set_title(kernel)
        ax.set_ylabel("speed ratio (higher: triton faster)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_kernel_speed(opts: KernelSpeedOptions, cfg: Any, out_dir: Path) -> dict:
    """``edgesmith bench bench=kernels``: options from the ``kernels`` section of the config."""
    return run_benchmark(opts, Path(out_dir))
