"""Reading line-oriented input files (JSONL, UTF-8 text) with errors that name file and line.

Every reader of a user's or a stage's line file goes through here, so a bad line always reads
``<file>, line <n>: <problem>; accepted: <what the caller accepts>``, raised as the caller's
error class (a dataset error, a BFCL data error, ...).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from .errors import DataError


def line_error(path: str | Path, line: int, problem: str, accepted: str,
               error: type[Exception] = DataError) -> Exception:
    """The error for one bad line: file, line number, the problem and what is accepted."""
    return error(f"{path}, line {line}: {problem}; accepted: {accepted}")


def read_text_lines(path: str | Path, accepted: str, error: type[Exception] = DataError) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of a UTF-8 file, ``\\r\\n`` read as ``\\n``; a bad byte is an error naming the line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise line_error(path, number, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at column "
                                               f"{exc.start + 1})", accepted, error) from exc
            yield number, text[:-2] + "\n" if text.endswith("\r\n") else text


def read_jsonl(path: str | Path, accepted: str, error: type[Exception] = DataError) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed value)`` of every non-blank line of a JSONL file.

    A line that is not UTF-8 or not JSON is an ``error`` naming the file, the line, the column
    and ``accepted``; what a row must hold beyond JSON is the caller's to check (with
    :func:`line_error`, so its messages read alike).
    """
    for number, text in read_text_lines(path, accepted, error):
        if not text.strip():
            continue
        try:
            row = json.loads(text)
        except json.JSONDecodeError as exc:
            raise line_error(path, number, f"not valid JSON ({exc.msg} at column {exc.colno})", accepted,
                             error) from exc
        yield number, row
