"""Multi-turn GRPO rollouts with tools (an environment's ``rollout_tools``, e.g. the Python sandbox).

TRL 1.16's GRPOTrainer executes tool calls during generation (``tools=[callable]``): it
parses each completion with the tokenizer's *response template* (transformers' response
parsing), calls the tool, appends the result as a ``tool`` message and lets the policy
continue. edgesmith's chat template writes calls in the pythonic format, which
transformers parses with its ``python-call-list`` content parser; the template below tells
it where calls and content sit in an assistant turn.
"""

from __future__ import annotations

from typing import Any

#: how an edgesmith assistant turn is laid out (see plugins.toolcall.chat_template)
PYTHONIC_RESPONSE_TEMPLATE: dict[str, Any] = {
    "defaults": {"role": "assistant"},
    "start_anchor": "<|im_start|>assistant\n",
    "fields": {
        "tool_calls": {
            "open": "<|tool_call_start|>",
            "close": "<|tool_call_end|>",
            "content": "python-call-list",
            "transform_each": True,
            "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{arguments}"}},
        },
        "content": {"close_pattern": r"<\|im_end\|>\s*", "content": "text"},
    },
}


def attach_response_template(tokenizer: Any) -> Any:
    """Lets ``tokenizer.parse_response`` (and so TRL's tool loop) read pythonic tool calls."""
    tokenizer.response_template = PYTHONIC_RESPONSE_TEMPLATE
    return tokenizer
