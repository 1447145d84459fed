"""Training precision of the training stages (``<stage>.precision``: ``fp32``, ``bf16`` or ``auto``).

The library default is ``fp32`` (the same numbers on every machine). The main job pretrains
in fp32 and runs SFT under ``auto``: on this project's AMX Xeon, pretraining in bf16 cost the
model its tool calls (runs base10 and base14) while SFT in bf16 cost far less (run q1), and
its steps are faster (README "The pipeline" has the figures and commands).

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
