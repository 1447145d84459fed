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
        return "\n".join(
            f"{JSON_CALL_START}\n"
            + _escape_markers(json.dumps({"name": c.name, "arguments": c.arguments}, ensure_ascii=False, allow_nan=False))
            + f"\n{JSON_CALL_END}"
            for c in calls
        )

    def parse(self, text: str) -> ParseResult:
        return parse_blocks(text, JSON_CALL_START, JSON_CALL_END, _parse_block, expected=EXPECTED_OBJECT)
