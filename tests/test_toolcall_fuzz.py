"""Fuzzing both tool-call parsers: they never raise, and what they accept round-trips.

Thousands of inputs in total: random text, random JSON-like calls rendered then mutated
(cut, spliced, with markers and brackets inserted), and valid renderings.
"""

from __future__ import annotations

import keyword
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgesmith.core.toolcall import ParseResult, ToolCall
from edgesmith.plugins.toolcall.chat_template import render_chat
from edgesmith.plugins.toolcall.json_format import JsonFormat
from edgesmith.plugins.toolcall.pythonic import PythonicFormat

FORMATS = [PythonicFormat(), JsonFormat()]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: not keyword.iskeyword(s))
names = st.lists(identifiers, min_size=1, max_size=3).map(".".join)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
calls = st.builds(ToolCall, name=names, arguments=st.dictionaries(identifiers, values, max_size=4))
call_lists = st.lists(calls, min_size=1, max_size=3)



def _check_result(result: ParseResult, text: str) -> None:
    assert isinstance(result, ParseResult)
    assert all(isinstance(c, ToolCall) and isinstance(c.arguments, dict) for c in result.calls)
    if result.error is not None:
        assert 0 <= result.error.position <= len(text)
        assert result.error.expected and result.error.message


@FUZZ
@given(text=st.text(max_size=200))
def test_random_text_never_raises(text):
    for fmt in FORMATS:
        _check_result(fmt.parse(text), text)
        wrapped = fmt.start_token + text + fmt.end_token
        _check_result(fmt.parse(wrapped), wrapped)


SPLICES = ["<|tool_call_start|>", "<|tool_call_end|>", "<tool_call>", "</tool_call>", "[", "]", "(", ")", "{", "}",
           '"', "'", ",", "=", ":", "\\", "\n", "\x00", "1e999", "None", "null", "__import__('os')", "*", "lambda: 0"]
MUTANTS_PER_EXAMPLE = 10


def _mutate(text: str, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 4)):
        i = rng.randint(0, len(text))
        j = rng.randint(i, min(len(text), i + 8))
        op = rng.choice(["delete", "insert", "replace", "truncate", "duplicate"])
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "insert":
            text = text[:i] + rng.choice(SPLICES) + text[i:]
        elif op == "replace":
            text = text[:i] + rng.choice(SPLICES) + text[j:]
        elif op == "truncate":
            text = text[:i]
        else:
            text = text[:j] + text[i:j] + text[j:]
    return text


@FUZZ
@given(cs=call_lists, seed=st.integers(0, 2**32))
def test_mutated_renderings_never_raise(cs, seed):
    # Hypothesis picks the calls; a seeded RNG makes several mutants of each rendering,
    # which keeps thousands of parses cheap.
    rng = random.Random(seed)
    for fmt in FORMATS:
        rendered = fmt.render(cs)
        for _ in range(MUTANTS_PER_EXAMPLE):
            text = _mutate(rendered, rng)
            result = fmt.parse(text)
            _check_result(result, text)
            if result.ok and result.calls:
                # whatever the parser accepts is a call list the format can write and read back
                again = fmt.parse(fmt.render(result.calls))
                assert again.ok and again.calls == result.calls


@FUZZ
@given(cs=call_lists, before=st.text(max_size=20), after=st.text(max_size=20))
def test_valid_renderings_round_trip(cs, before, after):
    for fmt in FORMATS:
        if fmt.start_token in before + after or fmt.end_token in before + after:
            continue
        result = fmt.parse(before + fmt.render(cs) + after)
        assert result.ok, result.error
        assert result.calls == cs
        separators = "\n" * (len(cs) - 1) if fmt.name == "json" else ""  # json puts blocks on their own lines
        assert result.content == before + separators + after


@settings(max_examples=50, deadline=None)
@given(cs=call_lists)
def test_chat_template_writes_calls_as_the_pythonic_format_does(cs):
    message = {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in cs]}
    text = render_chat([message])
    fmt = PythonicFormat()
    assert fmt.render(cs) in text
    assert fmt.parse(text).calls == cs


def test_a_one_megabyte_pythonic_block_parses_in_linear_time():
    """52,000 calls (1 MB) in one block: a quadratic parser took 15 s for 64 KB and never finished 1 MB.

    The bound is generous (shared CI cores): the parse takes about 1 s of CPU, most of it in
    ``ast.parse`` itself, so it only catches a return to super-linear time.
    """
    import time

    fmt = PythonicFormat()
    calls = [ToolCall(f"tool_{i % 7}", {"a": i, "b": "x" * (i % 5), "c": [1.5, None]}) for i in range(52_000)]
    text = fmt.render(calls)
    assert len(text) > 1_000_000
    started = time.process_time()
    result = fmt.parse(text)
    elapsed = time.process_time() - started
    assert result.ok and result.calls == calls
    assert elapsed < 10, f"{elapsed:.1f} s of CPU for 1 MB"
