"""core/jsonl.py: the one reader of line files; every bad line names file, line and what is accepted."""

from __future__ import annotations

import json

import pytest

from edgesmith.core.errors import DataError
from edgesmith.core.jsonl import read_jsonl, read_text_lines
from edgesmith.plugins.stages.preferences import read_pairs


class CustomError(ValueError):
    pass


def test_rows_keep_their_line_numbers_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\n  \n[2, 3]\n"x"')
    assert list(read_jsonl(path, "anything")) == [(1, {"a": 1}), (4, [2, 3]), (5, "x")]
    assert [text for _, text in read_text_lines(path, "anything")][0] == '{"a": 1}\n'


def test_bad_json_names_file_line_column_and_what_is_accepted(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n\n{"a" 1}\n')
    with pytest.raises(DataError) as info:
        list(read_jsonl(path, "one object per line"))
    assert str(info.value) == (f"{path}, line 3: not valid JSON (Expecting ':' delimiter at column 6); "
                               "accepted: one object per line")


def test_bad_utf8_names_the_byte_and_the_callers_error_class_is_raised(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "\xff"}\n')
    with pytest.raises(CustomError) as info:
        list(read_jsonl(path, "UTF-8 rows", CustomError))
    assert str(info.value) == f"{path}, line 2: not UTF-8 text (byte 0xff at column 8); accepted: UTF-8 rows"


def test_a_damaged_preference_file_names_its_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    (tmp_path / "summary.json").write_text(json.dumps({"ties": 0, "prompts": 1, "candidates": 2, "loops": 0}))
    path.write_text('{"prompt": [], "chosen": "a"\n')
    with pytest.raises(DataError, match=rf"{path}, line 1: not valid JSON"):
        read_pairs(path)
