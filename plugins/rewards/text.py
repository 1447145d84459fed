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


def completion_texts(completions: list, kwargs: dict[str, Any], tokenizer: Any = None) -> list[str]:
    """Every completion's text with special tokens kept.

    TRL decodes completions without special tokens (tool-call markers included), so when a
    tokenizer is given and TRL passed ``completion_ids``, the ids are decoded again here.
    """
    ids = kwargs.get("completion_ids")
    if tokenizer is not None and ids is not None:
        return tokenizer.batch_decode(ids, skip_special_tokens=False)
    return [completion_text(c) for c in completions]
