"""Helpers shared by the Triton kernels (importing this module needs a working ``triton``).

Triton's interpreter (``TRITON_INTERPRET=1``) keeps bfloat16 as raw uint16 bit patterns and
runs ``tl.dot`` and other arithmetic on them directly (triton-lang/triton#11584; its
debugging guide says bfloat16 must be cast to float32 first). The kernels therefore do
all elementwise math in float32 and call :func:`mm`, which in interpreter mode upcasts the
operands before the product. That is numerically the same as the GPU's bfloat16 tensor-core
product: bf16 x bf16 products are exact in float32 and accumulate in float32 either way.
"""

from __future__ import annotations

import triton
import triton.language as tl
from triton.runtime.interpreter import InterpretedFunction


@triton.jit
def mm(a, b, F32: tl.constexpr):
    """``tl.dot(a, b)`` with float32 accumulation; ``F32`` upcasts the operands first (interpreter)."""
    if F32:
        out = tl.dot(a.to(tl.float32), b.to(tl.float32))
    else:
        out = tl.dot(a, b)
    return out


#: True when this process decorates kernels for the interpreter (TRITON_INTERPRET=1 at import).
INTERPRETED: bool = isinstance(mm, InterpretedFunction)
