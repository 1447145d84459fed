"""A sandbox for model-written Python: limits, no network, a throwaway working directory."""

from .python_sandbox import SandboxResult, run_python

__all__ = ["SandboxResult", "run_python"]
