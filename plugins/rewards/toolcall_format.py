"""The ``toolcall_format`` reward: well-formed tool calls to tools the prompt offers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgesmith.core.reward import Reward, RewardRuntime

from .text import completion_texts


@dataclass
class ToolCallFormatOptions:
    """``format``: the registered tool-call format the completions are parsed with."""

    format: str = "pythonic"


class ToolCallFormatReward(Reward):
    """For prompts with tools: ``1.0`` when the completion's tool calls parse and name
    offered tools, ``-1.0`` when they are malformed or name unknown tools, ``0.0`` when it
    makes no call; ``None`` for prompts without tools.

    Options: :class:`ToolCallFormatOptions`. The dataset's ``tools`` column (JSON schemas,
    or a JSON string of them) says which tools exist; the runtime's ``tokenizer`` (optional)
    decodes TRL's completion ids with the tool-call markers kept.
    """

    name = "toolcall_format"
    options_class = ToolCallFormatOptions

    def __init__(self, options: Any = None, runtime: RewardRuntime | None = None):
        super().__init__(options, runtime)
        from edgesmith.core.plugin_manager import get_plugin_manager

        # Built now, so a bad format name fails before training starts.
        self._format = get_plugin_manager().build("toolcall_format", self.options.format,
                                                  key="reward toolcall_format.format")

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        import json

        tools_column = kwargs.get("tools") or [None] * len(completions)
        rewards: list[float | None] = []
        texts = completion_texts(completions, kwargs, self.runtime.tokenizer)
        for tools, text in zip(tools_column, texts):
            if isinstance(tools, str):
                tools = json.loads(tools) if tools else None
            if not tools:
                rewards.append(None)
                continue
            names = {(t.get("function") or t).get("name") for t in tools}
            parsed = self._format.parse(text)
            if not parsed.ok:
                rewards.append(-1.0)
            elif not parsed.calls:
                rewards.append(0.0)
            else:
                rewards.append(1.0 if all(c.name in names for c in parsed.calls) else -1.0)
        return rewards
