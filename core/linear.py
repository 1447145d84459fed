"""The model's linear layers and their CPU decode paths: bf16 mat-vec and int8 weight-only.

Decoding one sequence multiplies each weight matrix by a single row, so its speed is how
fast the weights stream from memory. On x86 CPUs PyTorch's default bf16 ``linear`` with
one row reaches about half the bandwidth of the fp32 one (measured by
``edgesmith bench bench=model_speed``, which prints each path's GB/s side by side), while
``torch.mv`` on the same bf16 weight reaches about 1.4x that, so :class:`Linear` takes
``torch.mv`` for a single bf16 row times a matrix of at least 256 x 256 and ``F.linear``
for everything else (training, prefill, batched decode, fp32), which keeps every other
result bit-identical to ``nn.Linear``.

:class:`Int8Linear` holds the weight as int8 with one scale per output channel
(symmetric, ``scale = max|w_row| / 127``) and multiplies with PyTorch's CPU kernel
``aten._weight_int8pack_mm`` (activations in bf16). :func:`quantize_int8` turns a loaded
model's linear layers, the LM head included, into :class:`Int8Linear`; it is a load-time
transform (``edgesmith eval quant=int8``), not a checkpoint format.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import ConfigError

QUANT_MODES = ("int8",)
MATVEC_MIN_WEIGHT = 256 * 256  # below this, bf16 mv is no faster than linear (per-call cost dominates)
KERNEL_BLOCK = 16  # aten._weight_int8pack_mm needs in_features to be a multiple of this
# The int8 kernel's cost grows with every row (it is a mat-vec per row); from about 64 rows on,
# dequantizing the weight once and running one bf16 GEMM is faster (measured on this CPU, 1 thread).
INT8_KERNEL_MAX_ROWS = 64
QUANT_CHUNK_ROWS = 4096  # rows quantized at a time (bounds the float32 scratch while quantizing)


class Linear(nn.Linear):
    """``nn.Linear`` (same parameters, same results) whose single-row bf16 product on CPU runs as a mat-vec."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dtype == torch.bfloat16 and x.numel() == self.in_features and x.device.type == "cpu"
                and self.weight.numel() >= MATVEC_MIN_WEIGHT):
            y = torch.mv(self.weight, x.reshape(-1))
            if self.bias is not None:
                y = y + self.bias
            return y.view(*x.shape[:-1], self.out_features)
        return F.linear(x, self.weight, self.bias)


class Int8Linear(nn.Module):
    """Weight-only int8 linear layer: ``x @ (w_int8 * scale[:, None]).T + bias``.

    ``weight_int8`` (out, in) int8 and ``scales`` (out,) bf16 are buffers; the input is
    cast to bf16 for the kernel and the output back to the input's dtype. Up to
    ``INT8_KERNEL_MAX_ROWS`` rows (decode) run the int8 kernel; more rows (prefill, large
    batches) a bf16 GEMM on the weight dequantized for that call.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None):
        super().__init__()
        w = weight.detach()
        self.out_features, self.in_features = w.shape
        q = torch.empty(w.shape, dtype=torch.int8, device=w.device)
        scales = torch.empty(self.out_features, dtype=torch.bfloat16, device=w.device)
        for start in range(0, self.out_features, QUANT_CHUNK_ROWS):  # in chunks: no fp32 copy of a whole LM head
            rows = w[start:start + QUANT_CHUNK_ROWS].float()
            # the kernel takes bf16 scales: round them first, so the int8 values are fitted to the scale used
            s = (rows.abs().amax(dim=1) / 127.0).clamp_min(1e-30).to(torch.bfloat16)
            q[start:start + QUANT_CHUNK_ROWS] = torch.round(rows / s.float()[:, None]).clamp(-127, 127)
            scales[start:start + QUANT_CHUNK_ROWS] = s
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
    targets = [(name, module) for name, module in model.named_modules()
               if isinstance(module, nn.Linear) and module.in_features % KERNEL_BLOCK == 0]
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int8Linear(module.weight, module.bias))
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
    raise ConfigError("quant", mode, f"null (no quantization) or one of: {', '.join(QUANT_MODES)}")
