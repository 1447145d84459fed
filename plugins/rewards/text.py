"""Completion text as rewards receive it from TRL (plain text or a list of chat messages)."""

from __future__ import annotations

from typing import Any


def completion_text(completion: Any) -> str:
    """The assistant text of one completion: a string, or the contents of chat messages."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list):
        return "".join(str(m.get("content") or "") for m in completion if isinstance(m, dict))
    raise TypeError(f"a completion must be a string or a list of chat messages, got {type(completion).__name__}")
