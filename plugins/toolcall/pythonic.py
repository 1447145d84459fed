"""The ``pythonic`` tool-call format (LFM2's): a Python list of calls between markers.

An assistant turn that calls tools contains, for example::

    <|tool_call_start|>[get_weather(city="Paris"), get_time(zone="CET")]<|tool_call_end|>

The text between the markers is parsed with :mod:`ast` and never evaluated: function
names are (dotted) identifiers, arguments are keyword arguments whose values are Python
literals (strings, numbers, booleans, ``None``, lists, tuples, dicts). Tuples become lists
so that parsed arguments compare equal to JSON data.
"""

from __future__ import annotations

import ast
import json
import keyword
import math
import warnings
from typing import Any

from edgesmith.core.toolcall import ParseResult, ToolCall, ToolCallFormat

from .blocks import BlockError, parse_blocks

TOOL_CALL_START = "<|tool_call_start|>"
TOOL_CALL_END = "<|tool_call_end|>"

EXPECTED_BLOCK = "a Python list of calls, e.g. [get_weather(city=\"Paris\")]"


def render_value(value: Any) -> str:
    """A Python literal for a JSON-like value, written as the chat template writes it.

    Strings use JSON escaping (double quotes), which is also a valid Python string literal,
    so the Jinja template (``tojson``) and this function produce the same text. ``<|`` in a
    string is written ``\\u003c|`` so an argument can never close the block or be read as
    a special token.
    """
    if value is None:
        return "None"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("<|", "\\u003c|")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write the non-finite float {value!r} as a Python literal")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(render_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"dict keys in tool-call arguments must be strings, got {key!r}")
            items.append(f"{render_value(key)}: {render_value(item)}")
        return "{" + ", ".join(items) + "}"
    raise ValueError(
        f"cannot write {type(value).__name__} {value!r} as a tool-call argument; "
        "accepted: str, int, float, bool, None, list, tuple, dict"
    )


def render_call(call: ToolCall) -> str:
    """``name(key=value, ...)`` for one call."""
    for part in call.name.split("."):
        if not part.isidentifier() or keyword.iskeyword(part):
            raise ValueError(
                f"function name {call.name!r} cannot be written in the pythonic format; "
                "accepted: dotted Python identifiers such as 'math.hypot'"
            )
    args = []
    for key, value in call.arguments.items():
        if not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key):
            raise ValueError(
                f"argument name {key!r} of {call.name} cannot be written in the pythonic format; "
                "accepted: Python identifiers that are not keywords"
            )
        args.append(f"{key}={render_value(value)}")
    return f"{call.name}({', '.join(args)})"


def _offset(text: str, lineno: int | None, col: int | None) -> int:
    """Absolute character offset of a 1-based line and 0-based character column in ``text``."""
    if not lineno:
        return 0
    lines = text.splitlines(keepends=True)
    before = sum(len(line) for line in lines[: lineno - 1])
    return min(before + (col or 0), len(text))


def _node_offset(text: str, node: ast.AST) -> int:
    """Character offset of an AST node (whose ``col_offset`` counts UTF-8 bytes)."""
    lineno = getattr(node, "lineno", None)
    if not lineno:
        return 0
    lines = text.splitlines(keepends=True)
    line = lines[lineno - 1] if lineno - 1 < len(lines) else ""
    prefix = line.encode("utf-8", errors="surrogatepass")[: getattr(node, "col_offset", 0)]
    return _offset(text, lineno, len(prefix.decode("utf-8", errors="ignore")))


def _dotted_name(node: ast.expr, block: str, lead: int) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value, block, lead)}.{node.attr}"
    raise BlockError(
        "a function name (a dotted identifier)",
        lead + _node_offset(block, node),
        f"the called object is a {type(node).__name__}, not a function name",
    )


def _jsonable(value: Any, where: str) -> Any:
    """Tuples to lists; anything JSON cannot hold (sets, bytes, complex) is an error."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: dict key {key!r} is not a string")
            out[key] = _jsonable(item, where)
        return out
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(f"{where}: {type(value).__name__} value {value!r} is not a JSON-like literal")


def _parse_block(block: str) -> list[ToolCall]:
    """Parses the text between the markers; raises BlockError with a block-relative position."""
    stripped = block.strip()
    lead = len(block) - len(block.lstrip())
    if not stripped:
        raise BlockError(EXPECTED_BLOCK, 0, "the tool-call block is empty")
    try:
        with warnings.catch_warnings():  # invalid escapes in model text are not our warnings
            warnings.simplefilter("ignore")
            tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        pos = lead + _offset(stripped, exc.lineno, (exc.offset or 1) - 1)
        raise BlockError(EXPECTED_BLOCK, pos, f"not valid Python syntax: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise BlockError(EXPECTED_BLOCK, lead, f"not parseable as Python: {exc}") from None

    body = tree.body
    if isinstance(body, ast.Call):  # a bare call without brackets is accepted too
        nodes = [body]
    elif isinstance(body, (ast.List, ast.Tuple)):
        nodes = list(body.elts)
    else:
        raise BlockError(EXPECTED_BLOCK, lead, f"found a {type(body).__name__} expression, not a list of calls")

    calls = []
    for node in nodes:
        pos = lead + _node_offset(stripped, node)
        if not isinstance(node, ast.Call):
            raise BlockError("a function call name(key=value, ...)", pos, f"list item is a {type(node).__name__}, not a call")
        name = _dotted_name(node.func, stripped, lead)
        if node.args:
            raise BlockError(
                "keyword arguments only (key=value)", pos, f"call to {name} has {len(node.args)} positional argument(s)"
            )
        arguments: dict[str, Any] = {}
        for kw in node.keywords:
            kw_pos = lead + _node_offset(stripped, kw)
            if kw.arg is None:
                raise BlockError("keyword arguments only (key=value)", kw_pos, f"call to {name} uses ** unpacking")
            if kw.arg in arguments:
                raise BlockError("each argument once", kw_pos, f"argument {kw.arg!r} of {name} is given twice")
            try:
                value = ast.literal_eval(kw.value)
                arguments[kw.arg] = _jsonable(value, f"argument {kw.arg!r} of {name}")
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
                val_pos = lead + _node_offset(stripped, kw.value)
                source = ast.get_source_segment(stripped, kw.value) or ""
                detail = str(exc) if "JSON-like" in str(exc) else f"found {source[:60]!r}"
                raise BlockError(
                    "a literal value (string, number, True/False/None, list, dict)",
                    val_pos,
                    f"argument {kw.arg!r} of {name} is not a literal: {detail}",
                ) from None
        calls.append(ToolCall(name=name, arguments=arguments))
    return calls


class PythonicFormat(ToolCallFormat):
    """LFM2-style tool calls: ``<|tool_call_start|>[f(a=1), g(b="x")]<|tool_call_end|>``.

    ``render`` writes all calls in one block (parallel calls are items of the list);
    ``parse`` accepts any number of blocks, keeps the text outside them as ``content``,
    and reports the first malformed block as a :class:`ParseError` (calls from blocks
    before it are kept).
    """

    name = "pythonic"
    start_token = TOOL_CALL_START
    end_token = TOOL_CALL_END

    def render(self, calls: list[ToolCall]) -> str:
        if not calls:
            return ""
        return f"{TOOL_CALL_START}[{', '.join(render_call(c) for c in calls)}]{TOOL_CALL_END}"

    def parse(self, text: str) -> ParseResult:
        return parse_blocks(
            text, TOOL_CALL_START, TOOL_CALL_END, _parse_block, expected=EXPECTED_BLOCK, reject_nested=True
        )
