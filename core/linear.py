"""The model's linear layers and their CPU decode paths: bf16 mat-vec and int8 weight-only.

Decoding one sequence multiplies each weight matrix by a single row, so its speed is how
fast the weights stream from memory. On x86 CPUs PyTorch's default bf16 ``linear`` with
one row reaches about half the bandwidth of the fp32 one (measured by
``edgesmith bench bench=model_speed``, which prints each path's GB/s side by side), while
``torch.mv`` on the same bf16 weight reaches about 1.4x that, so :class:`Linear` takes
``torch.mv`` for a single bf16 row times a matrix of at least 256 x 256 and ``F.linear``
for everything else (training, prefill, batched decode, fp32), which keeps every other
result bit-identical to ``nn.Linear``.

For several bf16 rows, ``F.linear`` on a CPU hands the weight to oneDNN, which re-lays it
out into its blocked format on every call. Inside :func:`packed_weights` (batched rollouts
use it) each bf16 :class:`Linear` also holds its weight in that layout, made once, and
multi-row products run on it (``torch.ops.mkldnn._linear_pointwise``): bit-identical to
``F.linear`` in bf16, and faster: 1.36x for 16 rows, 1.54x for 48, 1.15x for 488 on this
project's 2-core Xeon with AMX (``.venv/bin/python scripts/packed_linear_check.py --rows 16
48 488``), at the cost of a second copy of the weights while it lasts. fp32 stays on
``F.linear``: oneDNN sums in another order there, and the results would no longer be
``nn.Linear``'s.

:class:`Int8Linear` holds the weight as int8 with one scale per output channel
(symmetric, ``scale = max|w_row| / 127``) and multiplies with PyTorch's CPU kernel
``aten._weight_int8pack_mm`` (activations in bf16). :func:`quantize_int8` turns a loaded
model's linear layers, the LM head included, into :class:`Int8Linear`; it is a load-time
transform (``edgesmith eval quant=int8``), not a checkpoint format.

:class:`Int8DynamicLinear` (``quant=int8_dynamic``) keeps the same per-channel int8 weights
but also quantizes each call's activations to 8 bits (one scale per call) and multiplies
integers with PyTorch's fbgemm kernel (``quantized::linear_dynamic``, the kernel of
``torch.ao``'s dynamic quantization). On a CPU with 8-bit dot-product instructions (VNNI)
that streams int8 weights about 1.5x faster than ``_weight_int8pack_mm``, which converts
every weight to bf16 before multiplying; the price is the activations' rounding
(``edgesmith bench bench=model_speed`` measures both paths, ``scripts/int8_accuracy.py``
their greedy accuracy).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

QUANT_MODES = ("int8", "int8_dynamic")
# The dtype each mode loads the checkpoint in (what the layers it does not quantize run in):
# the weight-only kernel takes bf16 rows; fbgemm takes float32 ones, so casts are avoided.
QUANT_LOAD_DTYPES = {"int8": torch.bfloat16, "int8_dynamic": torch.float32}
MATVEC_MIN_WEIGHT = 256 * 256  # below this, bf16 mv is no faster than linear (per-call cost dominates)
KERNEL_BLOCK = 16  # aten._weight_int8pack_mm needs in_features to be a multiple of this
# The int8 kernel's cost grows with every row (it is a mat-vec per row); from about 64 rows on,
# dequantizing the weight once and running one bf16 GEMM is faster (measured on this CPU, 1 thread).
INT8_KERNEL_MAX_ROWS = 64
QUANT_CHUNK_ROWS = 4096  # rows quantized at a time (bounds the float32 scratch while quantizing)


def quantize_per_channel(weight: torch.Tensor, scale_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 per output channel: ``(q, scale)`` with ``w ~ q * scale[:, None]``.

    ``scale = max|w_row| / 127``, rounded to ``scale_dtype`` before the weights are divided by
    it (so they fit the scale the kernel multiplies by). Done in chunks of rows, so quantizing
    a large LM head needs no float32 copy of the whole matrix.
    """
    w = weight.detach()
    q = torch.empty(w.shape, dtype=torch.int8, device=w.device)
    scales = torch.empty(w.shape[0], dtype=scale_dtype, device=w.device)
    for start in range(0, w.shape[0], QUANT_CHUNK_ROWS):
        rows = w[start:start + QUANT_CHUNK_ROWS].float()
        s = (rows.abs().amax(dim=1) / 127.0).clamp_min(1e-30).to(scale_dtype)
        q[start:start + QUANT_CHUNK_ROWS] = torch.round(rows / s.float()[:, None]).clamp(-127, 127)
        scales[start:start + QUANT_CHUNK_ROWS] = s
    return q, scales


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same results) whose single-row bf16 product on CPU runs as a
    mat-vec, and whose multi-row bf16 products run on a pre-laid-out weight inside :func:`packed_weights`."""

    packed: torch.Tensor | None = None  # the weight in oneDNN's layout, only inside packed_weights()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype == torch.bfloat16 and x.numel() == self.in_features and x.device.type == "cpu"
                and self.weight.numel() >= MATVEC_MIN_WEIGHT):
            y = torch.mv(self.weight, x.reshape(-1))
            if self.bias is not None:
                y = y + self.bias
            return y.view(*x.shape[:-1], self.out_features)
        if self.packed is not None and x.dtype == torch.bfloat16 and not torch.is_grad_enabled():
            y = torch.ops.mkldnn._linear_pointwise(x.reshape(-1, self.in_features), self.packed, self.bias,
                                                   "none", [], "")
            return y.view(*x.shape[:-1], self.out_features)
        return F.linear(x, self.weight, self.bias)


def can_pack_weights() -> bool:
    """Whether this PyTorch has oneDNN's bf16 linear with pre-laid-out weights on this CPU."""
    mkldnn = torch.ops.mkldnn
    return (torch.backends.mkldnn.is_available() and hasattr(mkldnn, "_reorder_linear_weight")
            and hasattr(mkldnn, "_linear_pointwise") and bool(mkldnn._is_mkldnn_bf16_supported()))


@contextmanager
def packed_weights(model: nn.Module, rows: int = 1) -> Iterator[int]:
    """Inside, every bf16 CPU :class:`Linear` of ``model`` also holds its weight in oneDNN's
    blocked layout, and its multi-row products without gradients run on it (see the module
    docstring); yields how many layers were packed. ``rows``: the batch the layout is chosen
    for (any row count works). Nested uses pack once; the weights must not change inside."""
    layers = [m for m in model.modules() if isinstance(m, Linear) and m.packed is None
              and m.weight.dtype == torch.bfloat16 and m.weight.device.type == "cpu"]
    if layers and not can_pack_weights():
        layers = []
    try:
        for layer in layers:
            layer.packed = torch.ops.mkldnn._reorder_linear_weight(layer.weight.detach(), max(1, rows))
        yield len(layers)
    finally:
        for layer in layers:
            layer.packed = None


class Int8Linear(nn.Module):
    """Weight-only int8 linear layer: ``x @ (w_int8 * scale[:, None]).T + bias``.

    ``weight_int8`` (out, in) int8 and ``scales`` (out,) bf16 are buffers; the input is
    cast to bf16 for the kernel and the output back to the input's dtype. Up to
    ``INT8_KERNEL_MAX_ROWS`` rows (decode) run the int8 kernel; more rows (prefill, large
    batches) a bf16 GEMM on the weight dequantized for that call.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        # the kernel takes bf16 scales: the int8 values are fitted to the rounded scale it uses
        q, scales = quantize_per_channel(weight, torch.bfloat16)
        self.register_buffer("weight_int8", q)
        self.register_buffer("scales", scales)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)
        if rows.shape[0] >= INT8_KERNEL_MAX_ROWS:  # prefill, big batches: a bf16 GEMM on the dequantized weight
            y = F.linear(rows, self.weight_int8.to(torch.bfloat16) * self.scales[:, None])
        else:
            y = torch.ops.aten._weight_int8pack_mm(rows, self.weight_int8, self.scales)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.view(*x.shape[:-1], self.out_features).to(x.dtype)

    def dequantized(self) -> torch.Tensor:
        """The weight the kernel multiplies by, as float32 (for checks and tolerances)."""
        return self.weight_int8.float() * self.scales.float()[:, None]

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


class Int8DynamicLinear(nn.Module):
    """Int8 weights per channel and int8 activations per call: fbgemm's dynamic-quantized linear.

    The weight is held only in fbgemm's packed form (``packed``, made by
    ``quantized::linear_prepack``; not a buffer, so not in ``state_dict``: this is a load-time
    transform). Every call quantizes its float32 rows with one affine 8-bit scale computed
    from them, multiplies in integers and returns float32 (cast to the input's dtype).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        self.out_features, self.in_features = weight.shape
        q, scales = quantize_per_channel(weight, torch.float32)
        zero_points = torch.zeros(self.out_features, dtype=torch.long)
        with warnings.catch_warnings():
            # PyTorch has deprecated quantized tensors (the kernel's only way in) without a CPU
            # replacement yet (torch._int_mm, the int8 GEMM left, is far slower on CPU).
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            qweight = torch._make_per_channel_quantized_tensor(q.cpu(), scales.double().cpu(), zero_points, 0)
        bias32 = None if bias is None else bias.detach().float().cpu()
        self.packed = torch.ops.quantized.linear_prepack(qweight, bias32)
        # the overload itself: the op packet's Python-side dispatch checks run on every call otherwise
        self._kernel = torch.ops.quantized.linear_dynamic.default
        self.packed_bytes = q.numel() + scales.numel() * 4  # what a call streams

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.dtype != torch.float32:
            rows = rows.float()
        y = self._kernel(rows, self.packed, DYNAMIC_REDUCE_RANGE).view(*x.shape[:-1], self.out_features)
        return y if x.dtype == torch.float32 else y.to(x.dtype)

    def dequantized(self) -> torch.Tensor:
        """The weight the kernel multiplies by, as float32 (for checks and tolerances)."""
        qweight, _ = torch.ops.quantized.linear_unpack(self.packed)
        return qweight.dequantize()

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel, dynamic int8 rows"


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replaces every ``nn.Linear`` of ``model`` (in place) by an :class:`Int8Linear`; returns it.

    A layer whose ``in_features`` is not a multiple of 16 (the kernel's block) stays as it is.

    A tied LM head gets its own int8 copy (the embedding lookup stays in the model dtype:
    it reads one row per token, the head reads the whole matrix every step). The model is
    for inference only afterwards: the int8 buffers have no gradients.
    """
    if not hasattr(torch.ops.aten, "_weight_int8pack_mm"):
        raise RuntimeError(f"torch {torch.__version__} has no aten._weight_int8pack_mm; accepted: torch >= 2.4")
    # the kernel reads the reduction dim in blocks of 16 (other widths give wrong results or crash)
    return _replace_linears(model, Int8Linear, lambda module: module.in_features % KERNEL_BLOCK == 0)


def quantize_int8_dynamic(model: nn.Module) -> nn.Module:
    """Replaces every ``nn.Linear`` of ``model`` (in place) by an :class:`Int8DynamicLinear`; returns it.

    Needs PyTorch's fbgemm (x86) quantized engine; the model is CPU-only and for inference
    afterwards. A tied LM head gets its own int8 copy, as in :func:`quantize_int8`.
    """
    engines = torch.backends.quantized.supported_engines
    if "fbgemm" not in engines or not hasattr(torch.ops.quantized, "linear_dynamic"):
        raise RuntimeError(f"quant=int8_dynamic needs PyTorch's fbgemm engine and its quantized::linear_dynamic "
                           f"(x86 CPUs); this build has engines {engines}. Accepted here: quant=int8 (weight-only)")
    return _replace_linears(model, Int8DynamicLinear, lambda module: True)


def _replace_linears(model: nn.Module, layer: type, accepts) -> nn.Module:
    # names only: holding the modules would keep every float weight alive until the last is replaced
    targets = [name for name, module in model.named_modules() if isinstance(module, nn.Linear) and accepts(module)]
    for name in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        module = getattr(parent, child)
        setattr(parent, child, layer(module.weight, module.bias))
        del module
    # A checkpoint loaded memory-mapped stays mapped, and every page of it that quantizing read
    # stays resident, while any tensor still views the file: own copies of the float tensors
    # left (embedding, norms, convolutions) let it go (`bench=model_speed` reports the resident
    # memory after loading, `rss_after_load_mb`; README "Benchmarks" has it before and after).
    made = {id(t) for m in model.modules() if isinstance(m, layer) for t in [*m.parameters(), *m.buffers()]}
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if id(tensor) not in made:  # the quantized layers' tensors are new already
                tensor.data = tensor.data.clone()
    config = getattr(model, "config", None)
    if config is not None:
        config.tie_word_embeddings = False  # the head is its own int8 tensor now
    return model


def quantize(model: nn.Module, mode: str | None) -> nn.Module:
    """Applies the named load-time quantization (``None``: none); an unknown name lists the accepted ones."""
    if mode is None:
        return model
    if mode == "int8":
        return quantize_int8(model)
    if mode == "int8_dynamic":
        return quantize_int8_dynamic(model)
    raise _unknown_mode(mode)


def quant_load_dtype(mode: str) -> torch.dtype:
    """The dtype to load a checkpoint in before quantizing it with ``mode``."""
    if mode not in QUANT_LOAD_DTYPES:
        raise _unknown_mode(mode)
    return QUANT_LOAD_DTYPES[mode]


def _unknown_mode(mode: str) -> ConfigError:
    return ConfigError("quant", mode, f"null (no quantization) or one of: {', '.join(QUANT_MODES)}")


def _has_vnni() -> bool:
    """Whether the CPU has AVX-512 8-bit dot products, fbgemm's VNNI kernels (Linux flags; False where unknown)."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_vnni" in flags


# Without VNNI, fbgemm multiplies u8 x s8 pairs into int16 and full-range activations can
# saturate it; 7-bit activations cannot (torch.ao's dynamic quantization does the same on x86).
DYNAMIC_REDUCE_RANGE = not _has_vnni()
