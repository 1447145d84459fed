"""Splitting model output into plain text and marker-delimited tool-call blocks.

Both tool-call formats wrap calls between a start and an end marker; only the text
inside a block differs. :func:`parse_blocks` does the shared part (finding blocks,
keeping the text around them as content, reporting a stray end marker or an unclosed
block) and hands each block's text to the format's own parser.
"""

from __future__ import annotations

from typing import Callable

from edgesmith.core.toolcall import ParseError, ParseResult, ToolCall


class BlockError(Exception):
    """A malformed block body; ``position`` is relative to the block's text."""

    def __init__(self, expected: str, position: int, message: str):
        super().__init__(message)
        self.expected, self.position, self.message = expected, position, message


def parse_blocks(
    text: str,
    start_marker: str,
    end_marker: str,
    parse_block: Callable[[str], list[ToolCall]],
    *,
    expected: str,
    reject_nested: bool = False,
) -> ParseResult:
    """Parses every ``start_marker ... end_marker`` block of ``text`` with ``parse_block``; never raises.

    Text outside blocks becomes ``content``. The first structural problem (an end marker
    before any start, a block never closed, and with ``reject_nested`` a start marker
    inside an open block) or the first :class:`BlockError` from ``parse_block`` stops
    parsing; calls from earlier blocks are kept. After a malformed block body the text
    following that block is kept as content. ``expected`` describes a valid block body;
    it is what an unforeseen failure reports.
    """
    if not isinstance(text, str):
        return ParseResult(content="", error=ParseError("a string", 0, f"got {type(text).__name__}"))
    try:
        return _scan(text, start_marker, end_marker, parse_block, reject_nested, expected)
    except Exception as exc:  # parse never raises; an unforeseen failure is a parse error
        return ParseResult(content=text, error=ParseError(
            expected=expected, position=0, message=f"unexpected {type(exc).__name__}: {exc}"))


def _scan(text: str, start_marker: str, end_marker: str, parse_block: Callable[[str], list[ToolCall]],
          reject_nested: bool, expected: str) -> ParseResult:
    content: list[str] = []
    calls: list[ToolCall] = []
    pos = 0
    while True:
        start = text.find(start_marker, pos)
        stray_end = text.find(end_marker, pos)
        if stray_end != -1 and (start == -1 or stray_end < start):
            content.append(text[pos:stray_end])
            return ParseResult(
                "".join(content) + text[stray_end + len(end_marker):], calls,
                ParseError(start_marker, stray_end, f"{end_marker} without a preceding {start_marker}"),
            )
        if start == -1:
            content.append(text[pos:])
            return ParseResult("".join(content), calls)
        content.append(text[pos:start])
        block_start = start + len(start_marker)
        end = text.find(end_marker, block_start)
        if end == -1:
            return ParseResult(
                "".join(content), calls,
                ParseError(end_marker, len(text), f"{start_marker} at {start} is never closed"),
            )
        block = text[block_start:end]
        nested = block.find(start_marker) if reject_nested else -1
        if nested != -1:
            return ParseResult(
                "".join(content), calls,
                ParseError(end_marker, block_start + nested, f"{start_marker} inside an open tool-call block"),
            )
        try:
            calls.extend(parse_block(block))
        except BlockError as exc:
            content.append(text[end + len(end_marker):])
            error = ParseError(exc.expected, block_start + exc.position, exc.message)
            return ParseResult("".join(content), calls, error)
        except (RecursionError, MemoryError, ValueError, TypeError) as exc:
            # An unforeseen failure inside one block: that block is malformed, earlier blocks' calls stay.
            content.append(text[end + len(end_marker):])
            error = ParseError(expected, block_start, f"unexpected {type(exc).__name__}: {exc}"[:300])
            return ParseResult("".join(content), calls, error)
        pos = end + len(end_marker)
