"""Built-in task environments, one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_environments():
    from .bfcl import BfclEnvironment
    from .extraction import ExtractionEnvironment
    from .python_tool import PythonEnvironment
    from .reasoning import ReasoningEnvironment
    from .toolcall import ToolcallEnvironment

    return {"bfcl": BfclEnvironment, "toolcall": ToolcallEnvironment, "extraction": ExtractionEnvironment,
            "reasoning": ReasoningEnvironment, "python": PythonEnvironment}
