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

from edgesmith.core.toolcall import ParseError, ParseResult, ToolCall, ToolCallFormat

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
        try:
            return self._parse(text)
        except Exception as exc:  # parse never raises; an unforeseen failure is a parse error
            return ParseResult(content=text if isinstance(text, str) else "", error=ParseError(
                expected=EXPECTED_OBJECT, position=0, message=f"unexpected {type(exc).__name__}: {exc}"))

    def _parse(self, text: str) -> ParseResult:
        if not isinstance(text, str):
            return ParseResult(content="", error=ParseError("a string", 0, f"got {type(text).__name__}"))
        decoder = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)
        content: list[str] = []
        calls: list[ToolCall] = []
        pos = 0
        while True:
            start = text.find(JSON_CALL_START, pos)
            stray_end = text.find(JSON_CALL_END, pos)
            if stray_end != -1 and (start == -1 or stray_end < start):
                content.append(text[pos:stray_end])
                return ParseResult(
                    "".join(content) + text[stray_end + len(JSON_CALL_END):], calls,
                    ParseError(JSON_CALL_START, stray_end, f"{JSON_CALL_END} without a preceding {JSON_CALL_START}"),
                )
            if start == -1:
                content.append(text[pos:])
                return ParseResult("".join(content), calls)
            content.append(text[pos:start])
            body_start = start + len(JSON_CALL_START)
            end = text.find(JSON_CALL_END, body_start)
            if end == -1:
                return ParseResult(
                    "".join(content), calls,
                    ParseError(JSON_CALL_END, len(text), f"{JSON_CALL_START} at {start} is never closed"),
                )
            body = text[body_start:end]
            lead = len(body) - len(body.lstrip())
            stripped = body.strip()
            error: ParseError | None = None
            try:
                obj, used = decoder.raw_decode(stripped)
            except json.JSONDecodeError as exc:
                error = ParseError(EXPECTED_OBJECT, body_start + lead + exc.pos, f"invalid JSON: {exc.msg}")
            except RecursionError:
                error = ParseError(EXPECTED_OBJECT, body_start + lead, "JSON nested too deeply")
            except ValueError as exc:  # a non-finite number (from the hooks below)
                error = ParseError(EXPECTED_OBJECT, body_start + lead, str(exc))
            else:
                if used != len(stripped):
                    error = ParseError(
                        JSON_CALL_END, body_start + lead + used, "text after the JSON object inside the block"
                    )
                else:
                    call, expected, message = _validate(obj)
                    if call is None:
                        error = ParseError(expected, body_start + lead, message)
                    else:
                        calls.append(call)
            if error is not None:
                content.append(text[end + len(JSON_CALL_END):])
                return ParseResult("".join(content), calls, error)
            pos = end + len(JSON_CALL_END)
