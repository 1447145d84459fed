"""Which implementation a kernel call runs: the torch reference or the Triton kernel.

Backends:

- ``auto`` (default): CUDA tensors run the Triton kernel (when Triton imports), everything
  else runs the torch reference. ``auto`` never picks the Triton interpreter: on CPU it is
  orders of magnitude slower than torch and only meant for tests.
- ``torch``: always the torch reference.
- ``triton``: always the Triton kernel; on CPU tensors this needs ``TRITON_INTERPRET=1`` set
  before the kernels are first imported (Triton decides at decoration time). Where Triton
  cannot run, the call raises :class:`KernelBackendError` saying why and what is accepted.

The process default is set with :func:`set_default_backend` (the CLI applies the config key
``kernels.backend``) and can be changed for a block with :func:`use_backend`; each op also
takes ``backend=`` for one call.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import os
import sys
from collections.abc import Iterator

import torch

from edgesmith.core.errors import ConfigError, EdgesmithError

BACKENDS: tuple[str, ...] = ("auto", "torch", "triton")
CONFIG_KEY = "kernels.backend"

_process_default = "auto"
# use_backend overrides per context (thread/task) so one block's choice does not leak into others
_override: contextvars.ContextVar[str | None] = contextvars.ContextVar("edgesmith_kernel_backend", default=None)


class KernelBackendError(EdgesmithError, RuntimeError):
    """The Triton backend was asked for where it cannot run; the message says why and what is accepted."""


def validate_backend(name: object, key: str = CONFIG_KEY) -> str:
    """Returns ``name`` if it is a known backend, else raises :class:`ConfigError` naming ``key``."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ConfigError(key, name, ", ".join(BACKENDS))
    return name


def set_default_backend(name: str) -> None:
    """Sets the process default backend (``auto``, ``torch`` or ``triton``)."""
    global _process_default
    _process_default = validate_backend(name)


def get_default_backend() -> str:
    """The backend used when an op is called with ``backend=None``."""
    override = _override.get()
    return _process_default if override is None else override


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Runs the enclosed block with ``name`` as the default backend, restoring the previous one after."""
    token = _override.set(validate_backend(name))
    try:
        yield
    finally:
        _override.reset(token)


def interpreter_requested() -> bool:
    """True when ``TRITON_INTERPRET=1`` is set in the environment."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def _triton_import_error() -> str | None:
    try:
        importlib.import_module("triton")
        importlib.import_module("triton.language")
    except Exception as exc:  # any failure (missing, broken install) means "cannot run"
        return f"triton cannot be imported ({type(exc).__name__}: {exc})"
    return None


def _compiled_without_interpreter(kernel_module: str | None) -> bool:
    # Triton picks interpreter vs compiler when @triton.jit runs, i.e. at import of the kernel
    # module; setting the variable afterwards does not change already-decorated kernels.
    if kernel_module is None or kernel_module not in sys.modules:
        return False
    return not getattr(sys.modules[kernel_module], "INTERPRETED", False)


def triton_unavailable_reason(device: torch.device, kernel_module: str | None = None) -> str | None:
    """Why Triton kernels cannot run on ``device`` here, or ``None`` when they can."""
    error = _triton_import_error()
    if error:
        return error
    if device.type == "cuda":
        return None
    if not interpreter_requested():
        return (f"the tensors are on '{device.type}', Triton compiles only for CUDA GPUs, and "
                "TRITON_INTERPRET=1 (the Triton interpreter) is not set")
    if _compiled_without_interpreter(kernel_module):
        return (f"TRITON_INTERPRET=1 was set after {kernel_module} was imported, so its kernels "
                "were built for a GPU; set it before importing edgesmith.kernels")
    return None


def resolve_backend(backend: str | None, device: torch.device, kernel_module: str | None = None,
                    unsupported: str | None = None) -> str:
    """Returns ``"torch"`` or ``"triton"`` for a call on ``device``.

    ``unsupported`` says why the Triton kernel cannot take this particular call (a dtype,
    a head dim too large); ``auto`` then quietly uses torch, ``triton`` raises. Asking for
    ``triton`` where Triton cannot run raises :class:`KernelBackendError`.
    """
    name = validate_backend(get_default_backend() if backend is None else backend, key="backend")
    if name == "torch":
        return "torch"
    if name == "auto":
        if device.type == "cuda" and unsupported is None and _triton_import_error() is None:
            return "triton"
        return "torch"
    reason = unsupported or triton_unavailable_reason(device, kernel_module)
    if reason:
        raise KernelBackendError(
            f"kernel backend 'triton' cannot run this call: {reason}. Accepted: backend='torch' "
            "(or 'auto': torch on CPU, triton on CUDA), CUDA tensors, or TRITON_INTERPRET=1 set "
            "before importing edgesmith.kernels to run the kernels in Triton's interpreter")
    return "triton"


KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def dtype_problem(*tensors: torch.Tensor | None) -> str | None:
    """Why the Triton kernels cannot take these tensors' dtypes, or ``None`` (float64 stays on torch)."""
    for t in tensors:
        if t is not None and t.dtype not in KERNEL_DTYPES:
            return f"dtype {t.dtype} is not one of the kernel dtypes (float32, bfloat16, float16)"
    return None
