"""A sandbox for model-written Python, confined by the kernel (bubblewrap namespaces) with limits."""

from .bwrap import SandboxUnavailable
from .python_sandbox import SandboxResult, check_sandbox, run_python

__all__ = ["SandboxResult", "SandboxUnavailable", "check_sandbox", "run_python"]
