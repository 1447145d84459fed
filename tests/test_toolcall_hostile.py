"""Hostile tool-call text and values: deep nesting, huge ints, look-alike names, lone surrogates."""

from __future__ import annotations

import json

import pytest

from edgesmith.core.toolcall import ToolCall
from edgesmith.plugins.toolcall.json_format import JsonFormat
from edgesmith.plugins.toolcall.pythonic import PythonicFormat

P, J = PythonicFormat(), JsonFormat()
GOOD = [ToolCall("first", {"x": 1})]


@pytest.mark.parametrize("fmt,block", [
    (J, '<tool_call>{"name": "b", "arguments": {"k": ' + "[" * 10**4 + "]" * 10**4 + "}}</tool_call>"),
    (J, "<tool_call>" + json.dumps({"name": "b", "arguments": '{"k": ' + "[" * 10**4 + "]" * 10**4 + "}"})
     + "</tool_call>"),
    (J, '<tool_call>{"name": "b", "arguments": {"k": ' + "[" * 150 + "]" * 150 + "}}</tool_call>"),
    (P, "<|tool_call_start|>[b(k=" + "[" * 10**4 + "]" * 10**4 + ")]<|tool_call_end|>"),
    (P, "<|tool_call_start|>[b(k=" + "[" * 150 + "]" * 150 + ")]<|tool_call_end|>"),
], ids=["json-10k", "json-string-10k", "json-150", "pythonic-10k", "pythonic-150"])
def test_deep_nesting_is_a_parse_error_that_keeps_earlier_blocks(fmt, block):
    result = fmt.parse(fmt.render(GOOD) + block)
    assert result.calls == GOOD and result.error is not None
    assert "nest" in result.error.message or "parenthes" in result.error.message


def test_huge_non_decimal_ints_are_rejected_so_results_stay_writable_as_json():
    result = P.parse(P.render(GOOD) + "<|tool_call_start|>[b(k=0x" + "f" * 4000 + ")]<|tool_call_end|>")
    assert result.calls == GOOD and "integer" in result.error.message
    fine = P.parse("<|tool_call_start|>[b(k=0xff, m=" + str(2**200) + ")]<|tool_call_end|>")
    assert fine.ok and json.loads(json.dumps(fine.calls[0].arguments)) == {"k": 255, "m": 2**200}


@pytest.mark.parametrize("text,what", [("[ℌ(a=1)]", "function name"), ("[f(ℌ=1)]", "argument name"),
                                       ("[m.ﬁle(a=1)]", "function name")])
def test_names_python_would_normalize_are_rejected_not_renamed(text, what):
    result = P.parse("<|tool_call_start|>" + text + "<|tool_call_end|>")
    assert result.calls == [] and what in result.error.message and "NFKC" in result.error.expected
    with pytest.raises(ValueError, match="NFKC"):
        P.render([ToolCall("ℌ", {})])
    with pytest.raises(ValueError, match="NFKC"):
        P.render([ToolCall("f", {"ℌ": 1})])
    # names already in normal form, ASCII or not, are kept as written
    assert P.parse("<|tool_call_start|>[é(ç=1)]<|tool_call_end|>").calls == [ToolCall("é", {"ç": 1})]


@pytest.mark.parametrize("fmt", [P, J], ids=["pythonic", "json"])
def test_lone_surrogates_round_trip_and_the_text_is_utf8(fmt):
    calls = [ToolCall("f", {"s": "a\ud800b", "t": ["\udfff"]})]
    text = fmt.render(calls)
    text.encode("utf-8")  # the rendering is writable (and tokenizable) text
    assert fmt.parse(text).calls == calls


@pytest.mark.parametrize("arguments,fragment", [({"s": {1, 2}}, "set"), ({"b": b"x"}, "bytes"),
                                                ({"d": {1: "a"}}, "dict key 1"), ({"f": float("nan")}, "nan")])
def test_json_render_names_what_it_cannot_write(arguments, fragment):
    with pytest.raises(ValueError, match=fragment):
        J.render([ToolCall("f", arguments)])


def test_json_render_refuses_the_empty_name_its_parser_rejects():
    with pytest.raises(ValueError, match="non-empty"):
        J.render([ToolCall("", {})])
    assert not J.parse('<tool_call>{"name": "", "arguments": {}}</tool_call>').ok
