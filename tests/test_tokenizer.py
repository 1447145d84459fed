"""The built-in tokenizer and the chat template through transformers' apply_chat_template."""

from __future__ import annotations

import random

import pytest
from transformers import AutoTokenizer

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.toolcall.chat_template import CHAT_TEMPLATE, SPECIAL_TOKENS, render_chat
from edgesmith.plugins.toolcall.pythonic import PythonicFormat
from edgesmith.plugins.world.tokenizer import TOKENIZER_SPECIAL_TOKENS, minimum_vocab_size, train_tokenizer

WORDS = (
    "the weather in paris is sunny today and tomorrow it will rain over berlin while london stays "
    "cloudy please call get_weather with the city name and report the temperature in celsius"
).split()

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"],
            },
        },
    }
]

CONVERSATION = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Paris and Berlin?"},
    {
        "role": "assistant",
        "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Berlin", "unit": "c"}}},
        ],
    },
    {"role": "tool", "content": '{"city": "Paris", "temp": 21}'},
    {"role": "tool", "content": {"city": "Berlin", "temp": 17}},
    {"role": "assistant", "content": "Paris 21 C, Berlin 17 C."},
]


def corpus(n: int = 400, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 30))) for _ in range(n)]
    texts += [render_chat(CONVERSATION, TOOLS)] * 20
    return texts


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tok")
    train_tokenizer(corpus(), vocab_size=384, save_dir=str(path))
    return path


def test_vocab_size_is_honoured():
    for size in (minimum_vocab_size(), 320, 400):
        assert len(train_tokenizer(corpus(), vocab_size=size)) == size


def test_vocab_below_bytes_plus_specials_is_an_error_naming_the_minimum():
    minimum = minimum_vocab_size()
    assert minimum == 256 + len(TOKENIZER_SPECIAL_TOKENS)
    with pytest.raises(ConfigError, match=f">= {minimum}"):
        train_tokenizer(corpus(10), vocab_size=minimum - 1)


def test_special_tokens_are_single_tokens_and_roles_are_set(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    for token in SPECIAL_TOKENS + ["<|pad|>", "<|endoftext|>"]:
        ids = tok.encode(token, add_special_tokens=False)
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids[0]) == token
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|pad|>" and tok.bos_token == "<|startoftext|>"
    assert tok.pad_token_id == 0


def test_save_load_round_trip(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    assert tok.chat_template == CHAT_TEMPLATE
    text = "Unicode survives: 東京 café 🙂 and bytes \x01 <|im_start|> done"
    ids = tok.encode(text, add_special_tokens=False)
    assert tok.decode(ids) == text
    reloaded = train_tokenizer(corpus(), vocab_size=384)
    assert reloaded.encode(text, add_special_tokens=False) == ids  # same corpus, same tokenizer


def test_apply_chat_template_renders_every_turn_and_the_tool_list(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    text = tok.apply_chat_template(CONVERSATION, tools=TOOLS, tokenize=False)
    assert text == render_chat(CONVERSATION, TOOLS)
    assert text.startswith("<|startoftext|><|im_start|>system\nYou are a weather bot.\nList of tools: <|tool_list_start|>[")
    assert '"name": "get_weather"' in text and "<|tool_list_end|><|im_end|>" in text
    assert "<|im_start|>user\nWeather in Paris and Berlin?<|im_end|>\n" in text
    calls = PythonicFormat().parse(text).calls
    assert [(c.name, c.arguments) for c in calls] == [
        ("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Berlin", "unit": "c"})
    ]
    assert (
        '<|im_start|>assistant\n<|tool_call_start|>[get_weather(city="Paris"), get_weather(city="Berlin", unit="c")]'
        "<|tool_call_end|><|im_end|>\n" in text
    )
    assert '<|im_start|>tool\n<|tool_response_start|>{"city": "Paris", "temp": 21}<|tool_response_end|><|im_end|>' in text
    assert '<|tool_response_start|>{"city": "Berlin", "temp": 17}<|tool_response_end|>' in text
    assert text.endswith("<|im_start|>assistant\nParis 21 C, Berlin 17 C.<|im_end|>\n")
    prompt = tok.apply_chat_template(CONVERSATION[:2], tools=TOOLS, tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_no_tools_no_system_turn():
    text = render_chat([{"role": "user", "content": "hi"}])
    assert text == "<|startoftext|><|im_start|>user\nhi<|im_end|>\n"


def test_bad_messages_are_clear_errors():
    with pytest.raises(Exception, match="unknown chat role 'robot'"):
        render_chat([{"role": "robot", "content": "x"}])
    with pytest.raises(Exception, match="must be a mapping"):
        render_chat([{"role": "assistant", "tool_calls": [{"name": "f", "arguments": '{"a": 1}'}]}])


def test_assistant_mask_covers_only_assistant_tokens(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    out = tok.apply_chat_template(
        CONVERSATION, tools=TOOLS, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids, mask = out["input_ids"], out["assistant_masks"]
    assert len(ids) == len(mask) and 0 < sum(mask) < len(mask)
    masked = tok.decode([i for i, m in zip(ids, mask) if m])
    assert masked == (
        '<|tool_call_start|>[get_weather(city="Paris"), get_weather(city="Berlin", unit="c")]<|tool_call_end|><|im_end|>'
        "Paris 21 C, Berlin 17 C.<|im_end|>"
    )
    unmasked = tok.decode([i for i, m in zip(ids, mask) if not m])
    for prompt_part in ("You are a weather bot.", "Weather in Paris and Berlin?", "<|tool_response_start|>", "<|im_start|>assistant"):
        assert prompt_part in unmasked
    # every <|im_end|> that closes an assistant turn is trained on; the others are not
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    flags = [m for i, m in zip(ids, mask) if i == im_end]
    assert flags == [0, 0, 1, 0, 0, 1]


def test_skip_special_tokens_keeps_tool_calls(tokenizer_dir):
    """TRL decodes completions with skip_special_tokens=True: the tool calls must survive it."""
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    completion = '<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|><|im_end|>'
    ids = tok.encode(completion, add_special_tokens=False)
    text = tok.decode(ids, skip_special_tokens=True)
    assert text == '<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|>'
    assert PythonicFormat().parse(text).calls[0].arguments == {"city": "Paris"}
