"""Built-in tool-call formats and the chat template."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_toolcall_formats():
    from .json_format import JsonFormat
    from .pythonic import PythonicFormat

    return {"pythonic": PythonicFormat, "json": JsonFormat}
