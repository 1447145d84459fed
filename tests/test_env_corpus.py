"""The built-in corpus: deterministic, plain text mixed with rendered chat transcripts."""

from __future__ import annotations

import pytest

from edgesmith.core.errors import ConfigError, PluginError
from edgesmith.plugins.world.corpus import build_corpus


def test_corpus_is_deterministic_and_mixes_text_and_chats():
    docs = build_corpus(40, seed=1)
    assert docs == build_corpus(40, seed=1) and docs != build_corpus(40, seed=2)
    chats = [d for d in docs if d.startswith("<|startoftext|>")]
    assert len(chats) == 20 and len(docs) == 40
    assert any("<|tool_call_start|>" in d for d in chats)  # tool calls with their solutions
    assert any("Final answer:" in d for d in chats)
    assert all(d.rstrip().endswith("<|im_end|>") for d in chats)


def test_corpus_uses_train_prompts_only():
    from edgesmith.core.plugin_manager import get_plugin_manager

    docs = "\n".join(build_corpus(40, seed=0, environments=("reasoning",), chat_fraction=1.0))
    env = get_plugin_manager().get("environment", "reasoning")(seed=0)
    assert not any(t.messages[-1]["content"] in docs for t in env.tasks("eval", 20))
    assert all(t.messages[-1]["content"] in docs for t in env.tasks("train", 5))


def test_bad_arguments():
    with pytest.raises(PluginError, match="registered environments"):
        build_corpus(4, environments=("nope",))
    with pytest.raises(ConfigError, match="chat_fraction"):
        build_corpus(4, chat_fraction=2)
    assert len(build_corpus(5, chat_fraction=0.0)) == 5
