"""edgesmith's chat template: LFM2-like special tokens, the tool list, pythonic tool calls.

The template is a Jinja string used by transformers' ``tokenizer.apply_chat_template``
(attach it as ``tokenizer.chat_template``), so TRL and every transformers code path use it
unchanged. ``render_chat`` renders the very same template through transformers' own
renderer, for code that needs the text before a tokenizer exists (the corpus generator).

A rendered conversation::

    <|startoftext|><|im_start|>system
    You are helpful.
    List of tools: <|tool_list_start|>[{"name": "get_weather", ...}]<|tool_list_end|><|im_end|>
    <|im_start|>user
    Weather in Paris?<|im_end|>
    <|im_start|>assistant
    <|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|><|im_end|>
    <|im_start|>tool
    <|tool_response_start|>{"temp_c": 21}<|tool_response_end|><|im_end|>
    <|im_start|>assistant
    It is 21 °C in Paris.<|im_end|>

Messages: ``{"role": "system"|"user"|"assistant"|"tool", "content": ...}``. An assistant
message may carry ``tool_calls``: a list of ``{"type": "function", "function": {"name":
..., "arguments": {...}}}`` (or the inner ``{"name", "arguments"}`` directly); the calls are
written in the ``pythonic`` format before the message's content. ``arguments`` must be a
mapping (not a JSON string). Tools are JSON schemas, either wrapped as ``{"type":
"function", "function": {...}}`` or bare; the bare function object is what is listed.

Everything an assistant writes (tool calls, content, the closing ``<|im_end|>``) sits in
``{% generation %}`` so ``return_assistant_tokens_mask=True`` masks exactly the assistant
tokens (SFT with assistant-only loss). The ``<|im_start|>assistant`` header is prompt, not
generation: the model never has to produce it.
"""

from __future__ import annotations

from typing import Any

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|im_end|>"  # ends every turn; generation stops here
PAD_TOKEN = "<|pad|>"
END_OF_TEXT_TOKEN = "<|endoftext|>"  # separates documents in pretraining text

#: the tokens the chat template writes (each must be one token in any edgesmith tokenizer)
SPECIAL_TOKENS: list[str] = [
    "<|startoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|tool_list_start|>",
    "<|tool_list_end|>",
    "<|tool_call_start|>",
    "<|tool_call_end|>",
    "<|tool_response_start|>",
    "<|tool_response_end|>",
]

# The Python-literal macro mirrors plugins.toolcall.pythonic.render_value (strings through
# tojson: JSON string escapes are valid Python string literals), so a call written by the
# template and one written by PythonicFormat.render are the same text, token for token.
CHAT_TEMPLATE = r"""
{%- macro py(v) -%}
{%- if v is none -%}None
{%- elif v is boolean -%}{{ "True" if v else "False" }}
{%- elif v is string -%}{{ v | tojson | replace("<|", "\\u003c|") }}
{%- elif v is number -%}{{ v }}
{%- elif v is mapping -%}{ {%- for k, x in v.items() -%}{{ py(k) }}: {{ py(x) }}{{ ", " if not loop.last }}{%- endfor -%} }
{%- elif v is iterable -%}[ {%- for x in v -%}{{ py(x) }}{{ ", " if not loop.last }}{%- endfor -%} ]
{%- else -%}{{ v | tojson }}
{%- endif -%}
{%- endmacro -%}
{%- macro text(c) -%}
{%- if c is not defined or c is none -%}
{%- elif c is string -%}{{ c }}
{%- else -%}{{ c | tojson }}
{%- endif -%}
{%- endmacro -%}
{{- "<|startoftext|>" -}}
{%- set ns = namespace(system=none, start=0) -%}
{%- if messages and messages[0].role == "system" -%}
{%- set ns.system = text(messages[0].content) -%}
{%- set ns.start = 1 -%}
{%- endif -%}
{%- if ns.system is not none or tools -%}
{{- "<|im_start|>system\n" -}}
{%- if ns.system is not none -%}{{- ns.system -}}{%- endif -%}
{%- if tools -%}
{%- if ns.system -%}{{- "\n" -}}{%- endif -%}
{{- "List of tools: <|tool_list_start|>[" -}}
{%- for t in tools -%}
{{- (t.function if t.function is defined else t) | tojson -}}{{- ", " if not loop.last -}}
{%- endfor -%}
{{- "]<|tool_list_end|>" -}}
{%- endif -%}
{{- "<|im_end|>\n" -}}
{%- endif -%}
{%- for message in messages[ns.start:] -%}
{%- if message.role == "assistant" -%}
{{- "<|im_start|>assistant\n" -}}
{%- generation -%}
{%- if message.tool_calls -%}
{{- "<|tool_call_start|>[" -}}
{%- for tc in message.tool_calls -%}
{%- set f = tc.function if tc.function is defined else tc -%}
{%- if f.arguments is string -%}
{{- raise_exception("tool_calls arguments must be a mapping, not a JSON string (call " ~ f.name ~ ")") -}}
{%- endif -%}
{{- f.name ~ "(" -}}
{%- for k, v in (f.arguments or {}).items() -%}
{{- k ~ "=" ~ py(v) -}}{{- ", " if not loop.last -}}
{%- endfor -%}
{{- ")" -}}{{- ", " if not loop.last -}}
{%- endfor -%}
{{- "]<|tool_call_end|>" -}}
{%- endif -%}
{{- text(message.content) -}}
{{- "<|im_end|>" -}}
{%- endgeneration -%}
{{- "\n" -}}
{%- elif message.role == "tool" -%}
{{- "<|im_start|>tool\n<|tool_response_start|>" ~ text(message.content) ~ "<|tool_response_end|><|im_end|>\n" -}}
{%- elif message.role in ["system", "user"] -%}
{{- "<|im_start|>" ~ message.role ~ "\n" ~ text(message.content) ~ "<|im_end|>\n" -}}
{%- else -%}
{{- raise_exception("unknown chat role '" ~ message.role ~ "'; accepted: system, user, assistant, tool") -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- "<|im_start|>assistant\n" -}}
{%- endif -%}
""".strip()


def render_chat(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
) -> str:
    """The text ``tokenizer.apply_chat_template(messages, tools=tools, tokenize=False)`` gives.

    Uses transformers' own Jinja renderer (same sandbox, same ``tojson``), so the text is
    identical to what a tokenizer carrying :data:`CHAT_TEMPLATE` renders.
    """
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template(
        conversations=[messages],
        tools=tools,
        chat_template=CHAT_TEMPLATE,
        add_generation_prompt=add_generation_prompt,
    )
    return rendered[0]
