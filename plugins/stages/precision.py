"""Training precision of the training stages (``<stage>.precision``: ``fp32``, ``bf16`` or ``auto``).

The library default is ``fp32`` (the same numbers on every machine), and the main job keeps
it: under ``auto`` on an AMX CPU its pretrain steps were no faster inside the trainers and
its model learned far less (run base10 in README "The pipeline").

``bf16`` trains under bf16 autocast with fp32 master weights and optimizer state (the
Trainer's ``bf16=True``): matrix products run in bf16, everything else and every update in
fp32. On a CPU with native bf16 matrix units (Intel AMX, AVX-512 BF16 on Sapphire Rapids
and Zen 4) that makes a bare training step of the main job's 3.45M model faster (measure it with
``edgesmith bench bench=train_speed +train_speed.model_dir=outputs/<run>/search/chosen``);
on a CPU without them bf16 is emulated and slower, which is why ``auto`` asks the hardware:
bf16 where the CPU has AVX-512 BF16 or AMX tiles (or a CUDA device supports it), fp32
elsewhere (including ARM, where PyTorch's CPU bf16 matrix kernels are not the fast path).
Checkpoints are fp32 either way.
"""

from __future__ import annotations

import torch

from edgesmith.core.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "auto")


def check_precision(value: object, key: str) -> None:
    """Raises a ConfigError naming ``key`` unless ``value`` is one of :data:`PRECISIONS`."""
    if value not in PRECISIONS:
        raise ConfigError(key, value, " | ".join(PRECISIONS) + " (auto: bf16 where the hardware computes it natively)")


def native_bf16() -> bool:
    """Whether this machine multiplies bf16 matrices in hardware (where training runs)."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    # not oneDNN's own check: it also answers yes on AVX-512 CPUs that only emulate bf16
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def trains_in_bf16(precision: str) -> bool:
    """``precision`` resolved for this machine: True for bf16 autocast, False for fp32."""
    if precision == "auto":
        return native_bf16()
    return precision == "bf16"
