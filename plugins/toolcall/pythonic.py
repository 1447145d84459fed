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
import bisect
import json
import keyword
import math
import re
import unicodedata
import warnings
from typing import Any

from edgesmith.core.toolcall import ParseResult, ToolCall, ToolCallFormat

from .blocks import BlockError, parse_blocks

TOOL_CALL_START = "<|tool_call_start|>"
TOOL_CALL_END = "<|tool_call_end|>"

EXPECTED_BLOCK = "a Python list of calls, e.g. [get_weather(city=\"Paris\")]"


_SURROGATE = re.compile("[\ud800-\udfff]")


def escape_surrogates(text: str) -> str:
    """Writes lone surrogates as ``\\udXXX`` escapes: raw, they cannot be encoded (or parsed) as UTF-8."""
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


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
        return escape_surrogates(json.dumps(value, ensure_ascii=False).replace("<|", "\\u003c|"))
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
        if not part.isidentifier() or keyword.iskeyword(part) or unicodedata.normalize("NFKC", part) != part:
            raise ValueError(
                f"function name {call.name!r} cannot be written in the pythonic format; "
                "accepted: dotted Python identifiers in NFKC form (Python reads 'ℌ' as 'H') such as 'math.hypot'"
            )
    args = []
    for key, value in call.arguments.items():
        if (not isinstance(key, str) or not key.isidentifier() or keyword.iskeyword(key)
                or unicodedata.normalize("NFKC", key) != key):
            raise ValueError(
                f"argument name {key!r} of {call.name} cannot be written in the pythonic format; "
                "accepted: Python identifiers in NFKC form that are not keywords"
            )
        args.append(f"{key}={render_value(value)}")
    return f"{call.name}({', '.join(args)})"


_NEWLINE = re.compile(r"\r\n|\r|\n")  # the line breaks Python's tokenizer counts (not str.splitlines')


class _SourceMap:
    """Character offsets of AST positions (line, UTF-8 byte column) in one block.

    Line starts are found once and a line's byte-to-character table is built once, when
    first needed, so locating every node of a block stays linear in its length.
    """

    def __init__(self, text: str):
        self.text = text
        self.starts = [0] + [m.end() for m in _NEWLINE.finditer(text)]
        self.ascii = text.isascii()
        self._bytes: dict[int, list[int]] = {}

    def _line_end(self, index: int) -> int:
        return self.starts[index + 1] if index + 1 < len(self.starts) else len(self.text)

    def offset(self, lineno: int | None, col: int | None, *, byte_col: bool = True) -> int:
        """Offset of a 1-based line and 0-based column (UTF-8 bytes, or characters)."""
        if not lineno:
            return 0
        index = min(lineno, len(self.starts)) - 1
        start, col = self.starts[index], max(col or 0, 0)
        if byte_col and not self.ascii:
            table = self._bytes.get(index)
            if table is None:  # table[k]: bytes of the line's first k characters
                table = [0]
                for ch in self.text[start:self._line_end(index)]:
                    table.append(table[-1] + len(ch.encode("utf-8", errors="surrogatepass")))
                self._bytes[index] = table
            col = bisect.bisect_right(table, col) - 1
        return min(start + col, len(self.text))

    def node(self, node: ast.AST) -> int:
        return self.offset(getattr(node, "lineno", None), getattr(node, "col_offset", 0))

    def node_end(self, node: ast.AST) -> int:
        return self.offset(getattr(node, "end_lineno", None), getattr(node, "end_col_offset", 0))


def _dotted_name(node: ast.expr, source: _SourceMap, lead: int) -> str:
    parts = []
    while isinstance(node, ast.Attribute):  # a loop: a 10^5-long a.b.c... chain must not recurse
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise BlockError(
            "a function name (a dotted identifier)",
            lead + source.node(node),
            f"the called object is a {type(node).__name__}, not a function name",
        )
    parts.append(node.id)
    return ".".join(reversed(parts))


def _as_written(read: str, written: str, what: str, pos: int) -> None:
    """Python reads identifiers NFKC-normalized ('ℌ' as 'H'): a name must be what the model wrote."""
    if read != written:
        raise BlockError(f"{what} in NFKC normal form (as Python reads it)", pos,
                         f"{what} {written!r} would be read as {read!r} (Python normalizes identifiers)")


_PLAIN = (str, bool, type(None))  # constants needing no check (ints and floats have range checks)
MAX_DEPTH = 100  # nesting of argument values; deeper data breaks JSON writers and comparisons downstream


def _jsonable(value: Any, where: str, depth: int = 0) -> Any:
    """Tuples to lists; anything JSON cannot hold (sets, bytes, complex, unprintable ints) is an error."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where}: nested deeper than {MAX_DEPTH} levels, not a JSON-like literal")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, where, depth + 1) for v in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: dict key {key!r} is not a string")
            out[key] = _jsonable(item, where, depth + 1)
        return out
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 4096:
        # 0x + thousands of digits: Python can hold it, but it cannot be written as a JSON number
        raise ValueError(f"{where}: an integer of {value.bit_length()} bits is not a JSON-like literal "
                         "(accepted: integers below 2**4096)")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise ValueError(f"{where}: {type(value).__name__} value {value!r:.60} is not a JSON-like literal")


def _parse_block(block: str) -> list[ToolCall]:
    """Parses the text between the markers; raises BlockError with a block-relative position."""
    stripped = block.strip()
    lead = len(block) - len(block.lstrip())
    if not stripped:
        raise BlockError(EXPECTED_BLOCK, 0, "the tool-call block is empty")
    source = _SourceMap(stripped)
    try:
        with warnings.catch_warnings():  # invalid escapes in model text are not our warnings
            warnings.simplefilter("ignore")
            tree = ast.parse(stripped, mode="eval")
    except SyntaxError as exc:
        pos = lead + source.offset(exc.lineno, (exc.offset or 1) - 1, byte_col=False)
        raise BlockError(EXPECTED_BLOCK, pos, f"not valid Python syntax: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, lone surrogates, absurd nesting
        raise BlockError(EXPECTED_BLOCK, lead, f"not parseable as Python: {exc}"[:200]) from None

    body = tree.body
    if isinstance(body, ast.Call):  # a bare call without brackets is accepted too
        nodes = [body]
    elif isinstance(body, (ast.List, ast.Tuple)):
        nodes = list(body.elts)
    else:
        raise BlockError(EXPECTED_BLOCK, lead, f"found a {type(body).__name__} expression, not a list of calls")

    calls = []
    # Positions are located only for an error (or a non-ASCII name): the valid path stays lean.
    for node in nodes:
        if not isinstance(node, ast.Call):
            raise BlockError("a function call name(key=value, ...)", lead + source.node(node),
                             f"list item is a {type(node).__name__}, not a call")
        name = _dotted_name(node.func, source, lead)
        if not source.ascii:
            written = "".join(stripped[source.node(node.func):source.node_end(node.func)].split())
            _as_written(name, written, "function name", lead + source.node(node))
        if node.args:
            raise BlockError("keyword arguments only (key=value)", lead + source.node(node),
                             f"call to {name} has {len(node.args)} positional argument(s)")
        arguments: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise BlockError("keyword arguments only (key=value)", lead + source.node(kw),
                                 f"call to {name} uses ** unpacking")
            if not source.ascii:
                written = stripped[source.node(kw):source.node(kw.value)].rstrip().rstrip("=").strip()
                _as_written(kw.arg, written, "argument name", lead + source.node(kw))
            if kw.arg in arguments:
                raise BlockError("each argument once", lead + source.node(kw),
                                 f"argument {kw.arg!r} of {name} is given twice")
            try:
                constant = kw.value
                if type(constant) is ast.Constant:  # the common case, without literal_eval's walk
                    plain = constant.value
                    if (type(plain) in _PLAIN or (type(plain) is int and plain.bit_length() <= 64)
                            or (type(plain) is float and math.isfinite(plain))):
                        arguments[kw.arg] = plain
                        continue
                value = ast.literal_eval(kw.value)
                arguments[kw.arg] = _jsonable(value, f"argument {kw.arg!r} of {name}")
            except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError) as exc:
                val_pos = lead + source.node(kw.value)
                found = stripped[val_pos - lead:min(source.node_end(kw.value), val_pos - lead + 60)]
                detail = str(exc) if "JSON-like" in str(exc) else f"found {found!r}"
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
