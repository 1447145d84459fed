"""The pythonic and json tool-call formats: round trips, parallel calls, structured parse errors."""

from __future__ import annotations

import pytest

from edgesmith.core.plugin_manager import PluginManager
from edgesmith.core.toolcall import ToolCall
from edgesmith.plugins.toolcall.json_format import JsonFormat
from edgesmith.plugins.toolcall.pythonic import PythonicFormat

NESTED = ToolCall(
    "geo.route",
    {
        "points": [[48.85, 2.35], [51.5, -0.12]],
        "options": {"avoid": ["tolls", "ferries"], "max_km": 900, "fast": True, "note": None},
        "name": 'Quote " and \\ backslash\nnewline, üñí',
        "count": -3,
        "ratio": 1e-07,
    },
)
PARALLEL = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_weather", {"city": "Berlin", "unit": "c"}), ToolCall("now", {})]


@pytest.mark.parametrize("fmt", [PythonicFormat(), JsonFormat()], ids=["pythonic", "json"])
@pytest.mark.parametrize("calls", [[NESTED], PARALLEL, [ToolCall("f", {})]], ids=["nested", "parallel", "no_args"])
def test_render_parse_round_trip(fmt, calls):
    text = fmt.render(calls)
    assert text.startswith(fmt.start_token) and text.rstrip().endswith(fmt.end_token)
    result = fmt.parse("Let me check. " + text + " Done.")
    assert result.ok, result.error
    assert result.calls == calls
    assert result.content.split() == ["Let", "me", "check.", "Done."]


def test_pythonic_text_is_lfm2_style():
    text = PythonicFormat().render(PARALLEL[:2])
    assert text == (
        '<|tool_call_start|>[get_weather(city="Paris"), get_weather(city="Berlin", unit="c")]<|tool_call_end|>'
    )


def test_json_parallel_calls_are_separate_blocks():
    text = JsonFormat().render(PARALLEL[:2])
    assert text.count("<tool_call>") == 2 and text.count("</tool_call>") == 2
    assert '{"name": "get_weather", "arguments": {"city": "Paris"}}' in text


def test_pythonic_accepts_variants_it_does_not_write():
    fmt = PythonicFormat()
    r = fmt.parse("<|tool_call_start|> f(x=(1, 2), y=-2.5) <|tool_call_end|>")  # bare call, tuple
    assert r.ok and r.calls == [ToolCall("f", {"x": [1, 2], "y": -2.5})]
    r = fmt.parse("<|tool_call_start|>[a()]<|tool_call_end|> and <|tool_call_start|>[b(k='v')]<|tool_call_end|>")
    assert r.ok and [c.name for c in r.calls] == ["a", "b"] and r.calls[1].arguments == {"k": "v"}
    assert fmt.parse("no tools here").calls == [] and fmt.parse("no tools here").ok


def test_json_accepts_string_arguments_and_parameters_key():
    fmt = JsonFormat()
    r = fmt.parse('<tool_call>{"name": "f", "arguments": "{\\"a\\": 1}"}</tool_call>')
    assert r.ok and r.calls == [ToolCall("f", {"a": 1})]
    r = fmt.parse('<tool_call>{"name": "g", "parameters": {"b": [1, 2]}}</tool_call>')
    assert r.ok and r.calls == [ToolCall("g", {"b": [1, 2]})]


# (text, expected substring of ParseError.expected, where the error must be)
PYTHONIC_BAD = [
    ("<|tool_call_start|>[f(x=1)", "<|tool_call_end|>", 26),  # truncated: end of text
    ("<|tool_call_start|>[f(x=1]<|tool_call_end|>", "Python list of calls", None),
    ("<|tool_call_start|>[f(1)]<|tool_call_end|>", "keyword arguments", 20),
    ("<|tool_call_start|>[f(x=open('/etc/passwd'))]<|tool_call_end|>", "literal", 24),
    ("<|tool_call_start|>[f(x=y)]<|tool_call_end|>", "literal", 24),
    ("<|tool_call_start|>[1 + 2]<|tool_call_end|>", "function call", 20),
    ("<|tool_call_start|>[f(x=1, x=2)]<|tool_call_end|>", "each argument once", 27),
    ("<|tool_call_start|>[f()[0]()]<|tool_call_end|>", "function name", None),
    ("<|tool_call_start|>{'a': 1}<|tool_call_end|>", "Python list of calls", 19),
    ("<|tool_call_start|>   <|tool_call_end|>", "Python list of calls", 19),
    ("text <|tool_call_end|>", "<|tool_call_start|>", 5),
    ("<|tool_call_start|>[f(x={1, 2})]<|tool_call_end|>", "literal", 24),
]


@pytest.mark.parametrize("text,expected,position", PYTHONIC_BAD)
def test_pythonic_malformed_gives_structured_error(text, expected, position):
    result = PythonicFormat().parse(text)
    assert not result.ok and result.calls == []
    assert expected in result.error.expected, result.error
    assert 0 <= result.error.position <= len(text)
    if position is not None:
        assert result.error.position == position, result.error
    assert result.error.message


def test_pythonic_never_evaluates(tmp_path):
    marker = tmp_path / "pwned"
    text = f"<|tool_call_start|>[f(x=__import__('pathlib').Path({str(marker)!r}).touch())]<|tool_call_end|>"
    result = PythonicFormat().parse(text)
    assert not result.ok and not marker.exists()


JSON_BAD = [
    ('<tool_call>{"name": "f", "arguments": {"a": 1}', "</tool_call>"),
    ('<tool_call>{"name": "f", "arguments": {"a": }}</tool_call>', "JSON object"),
    ('<tool_call>["f"]</tool_call>', "JSON object"),
    ('<tool_call>{"arguments": {}}</tool_call>', '"name"'),
    ('<tool_call>{"name": "f", "arguments": [1]}</tool_call>', '"arguments"'),
    ('<tool_call>{"name": "f", "arguments": {}} trailing</tool_call>', "</tool_call>"),
    ('<tool_call>{"name": "f", "arguments": {}, "extra": 1}</tool_call>', '"name" and "arguments"'),
]


@pytest.mark.parametrize("text,expected", JSON_BAD)
def test_json_malformed_gives_structured_error(text, expected):
    result = JsonFormat().parse(text)
    assert not result.ok and result.calls == []
    assert expected in result.error.expected, result.error
    assert 0 <= result.error.position <= len(text)


def test_json_error_position_points_into_the_block():
    text = 'ok <tool_call>{"name": "f", "arguments": {"a": tru}}</tool_call>'
    err = JsonFormat().parse(text).error
    assert text[err.position:].startswith("tru")


def test_calls_before_a_malformed_block_are_kept():
    fmt = PythonicFormat()
    result = fmt.parse(fmt.render([ToolCall("a", {})]) + "<|tool_call_start|>[b(")
    assert not result.ok and result.calls == [ToolCall("a", {})]


def test_render_rejects_what_the_format_cannot_write():
    with pytest.raises(ValueError, match="class"):
        PythonicFormat().render([ToolCall("f", {"class": 1})])
    with pytest.raises(ValueError, match="non-finite"):
        PythonicFormat().render([ToolCall("f", {"x": float("nan")})])


def test_formats_are_registered_plugins():
    import edgesmith.plugins.toolcall as builtin

    # the built-in package's hook, through pluggy, without loading every other plugin
    manager = PluginManager(load_entry_points=False)
    manager.register(builtin, name="builtin-toolcall")
    assert manager.get("toolcall_format", "pythonic") is PythonicFormat
    assert manager.get("toolcall_format", "json") is JsonFormat


def test_error_positions_count_characters_not_bytes():
    text = '<|tool_call_start|> [f(a="東京 café", b=x)]<|tool_call_end|>'
    err = PythonicFormat().parse(text).error
    assert err.position == text.index("x)]")


def test_non_finite_numbers_are_parse_errors():
    for fmt, text in [
        (JsonFormat(), '<tool_call>{"name": "f", "arguments": {"a": 1e999}}</tool_call>'),
        (JsonFormat(), '<tool_call>{"name": "f", "arguments": {"a": NaN}}</tool_call>'),
        (PythonicFormat(), "<|tool_call_start|>[f(a=1e999)]<|tool_call_end|>"),
    ]:
        result = fmt.parse(text)
        assert not result.ok and result.calls == [], text
