"""Built-in hardware profilers."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_profilers():
    from .llama_cpp import LlamaCppProfiler
    from .local_cpu import LocalCPUProfiler

    return {"local_cpu": LocalCPUProfiler, "llama_cpp": LlamaCppProfiler}
