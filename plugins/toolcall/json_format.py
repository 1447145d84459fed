"""The ``json`` tool-call format (Hermes / Qwen style): one JSON object per call.

    <tool_call>
    {"name": "get_weather", "arguments": {"city": "Paris"}}
    </tool_call>

Several blocks in one turn are parallel calls. ``arguments`` may also arrive as a JSON
string holding an object (OpenAI's wire format); it is decoded. ``parameters`` is accepted
as a synonym of ``arguments`` because some models write it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from edgesmith.core.toolcall import ParseResult, ToolCall, ToolCallFormat

from .blocks import BlockError, parse_blocks
from .pythonic import escape_surrogates

JSON_CALL_START = "<tool_call>"
JSON_CALL_END = "</tool_call>"
EXPECTED_OBJECT = 'a JSON object {"name": "...", "arguments": {...}}'


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of the float range (JSON numbers must be finite)")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON value (JSON numbers must be finite)")


def _escape_markers(dumped: str) -> str:
    """Writes ``<`` of a marker inside a JSON string as ``\\u003c``: an argument never closes the block."""
    return dumped.replace(JSON_CALL_START, "\\u003ctool_call>").replace(JSON_CALL_END, "\\u003c/tool_call>")


MAX_DEPTH = 100  # deeper arguments break JSON writers and comparisons downstream (RecursionError)


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests lists/dicts more than ``limit`` levels (iterative: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth >= limit:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def _check_renderable(value: Any, where: str, depth: int = 0) -> None:
    """What ``render`` can write so that ``parse`` reads the same value back, else a ValueError."""
    if depth > MAX_DEPTH:
        raise ValueError(f"{where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: dict key {key!r} is not a string (JSON would silently turn it into "
                                 f"{json.dumps(str(key))}); accepted: string keys")
            _check_renderable(item, where, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_renderable(item, where, depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where}: the non-finite float {value!r} is not a JSON number")
    elif not (value is None or isinstance(value, (str, int, float))):
        raise ValueError(f"cannot write {type(value).__name__} {value!r:.60} as {where}; "
                         "accepted: str, int, float, bool, None, list, tuple, dict")


def _validate(obj: Any) -> tuple[ToolCall | None, str, str]:
    """(call, "", "") or (None, expected, message)."""
    if not isinstance(obj, dict):
        return None, EXPECTED_OBJECT, f"found a JSON {type(obj).__name__}, not an object"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, 'a "name" key holding a non-empty string', f"name is {name!r}"
    if "arguments" in obj:
        args = obj["arguments"]
    else:
        args = obj.get("parameters", {})
    if isinstance(args, str):
        try:
            args = json.loads(args, parse_float=_finite_float, parse_constant=_no_constant)
        except ValueError as exc:
            return None, '"arguments" as a JSON object', f"arguments is a string that is not JSON: {exc}"
        except RecursionError:
            return None, '"arguments" as a JSON object', "arguments is a string of JSON nested too deeply"
    too_deep = _deeper_than(args, MAX_DEPTH)
    if too_deep:
        return None, f"arguments nested at most {MAX_DEPTH} levels", f"arguments of {name} are nested deeper"
    if not isinstance(args, dict):
        return None, '"arguments" as a JSON object', f"arguments of {name} is a {type(args).__name__}"
    extra = set(obj) - {"name", "arguments", "parameters", "id", "type"}
    if extra:
        return None, 'only the keys "name" and "arguments"', f"unexpected keys {sorted(extra)}"
    return ToolCall(name=name, arguments=args), "", ""


def _parse_block(body: str) -> list[ToolCall]:
    """The one call in a block's text; raises BlockError with a block-relative position."""
    decoder = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
    lead = len(body) - len(body.lstrip())
    stripped = body.strip()
    try:
        obj, used = decoder.raw_decode(stripped)
    except json.JSONDecodeError as exc:
        raise BlockError(EXPECTED_OBJECT, lead + exc.pos, f"invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise BlockError(EXPECTED_OBJECT, lead, "JSON nested too deeply") from None
    except ValueError as exc:  # a non-finite number (from the hooks above)
        raise BlockError(EXPECTED_OBJECT, lead, str(exc)) from None
    if used != len(stripped):
        raise BlockError(JSON_CALL_END, lead + used, "text after the JSON object inside the block")
    call, expected, message = _validate(obj)
    if call is None:
        raise BlockError(expected, lead, message)
    return [call]


class JsonFormat(ToolCallFormat):
    """Hermes/Qwen-style tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``."""

    name = "json"
    start_token = JSON_CALL_START
    end_token = JSON_CALL_END

    def render(self, calls: list[ToolCall]) -> str:
        for c in calls:
            if not isinstance(c.name, str) or not c.name:
                raise ValueError(f"tool-call name {c.name!r} cannot be written; accepted: a non-empty string")
            if not isinstance(c.arguments, dict):
                raise ValueError(f"arguments of {c.name} must be a dict, got {type(c.arguments).__name__}")
            _check_renderable(c.arguments, f"an argument of {c.name}")
        return "\n".join(
            f"{JSON_CALL_START}\n"
            + escape_surrogates(_escape_markers(json.dumps({"name": c.name, "arguments": c.arguments},
                                                           ensure_ascii=False, allow_nan=False)))
            + f"\n{JSON_CALL_END}"
            for c in calls
        )

    def parse(self, text: str) -> ParseResult:
        return parse_blocks(text, JSON_CALL_START, JSON_CALL_END, _parse_block, expected=EXPECTED_OBJECT)
