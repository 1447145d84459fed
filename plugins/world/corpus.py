"""The built-in corpus: plain text plus chat transcripts of environment tasks with their solutions.

Runs that download nothing still need text to train a tokenizer, to pretrain, and for the
search's quality proxy. Plain documents are generated prose (facts about invented places,
short instructions, numbered lists, markdown tables, arithmetic worked out line by line),
so the model sees legitimate repetition of *form* (lists, tables) without copied content.
Chat documents are environment tasks (train split only, never eval prompts) rendered with
edgesmith's chat template together with their reference solutions, so a pretrained model
has already seen the chat, tool-list and tool-call markup it will be post-trained on.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from edgesmith.core.errors import ConfigError

DEFAULT_ENVIRONMENTS = ("toolcall", "extraction", "reasoning")

_PLACES = ["Alder", "Brisk", "Corran", "Dunmere", "Elsby", "Fenwick", "Galla", "Harrow", "Istra", "Jorvik",
           "Kestle", "Lunden", "Marrow", "Norrin", "Oakham", "Pellam", "Quarry", "Rostov", "Selby", "Tamsin"]
_THINGS = ["apples", "copper", "wool", "salt", "timber", "honey", "glass", "paper", "tea", "cheese"]
_ADJ = ["quiet", "busy", "old", "windy", "green", "rocky", "small", "large", "coastal", "hilly"]
_VERBS = ["trades", "produces", "exports", "stores", "buys", "sells"]
_STEPS = ["Preheat the oven", "Wash the vegetables", "Chop the onions", "Boil the water", "Stir the sauce",
          "Set the table", "Slice the bread", "Season to taste", "Let it rest", "Serve warm"]


def _prose(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(3, 8)):
        a, b = rng.sample(_PLACES, 2)
        sentences.append(rng.choice([
            f"{a} is a {rng.choice(_ADJ)} town about {rng.randint(3, 90)} miles from {b}.",
            f"The people of {a} {rng.choice(_VERBS)} {rng.choice(_THINGS)} and {rng.choice(_THINGS)}.",
            f"In {rng.randint(1700, 2020)}, {a} built a bridge to {b}.",
            f"{a} has {rng.randint(2, 40) * 100} inhabitants and {rng.randint(1, 9)} schools.",
            f"Travellers from {b} often stop in {a} for the {rng.choice(_THINGS)} market.",
        ]))
    return " ".join(sentences)


def _numbered_list(rng: random.Random) -> str:
    steps = rng.sample(_STEPS, rng.randint(3, 7))
    return "Steps:\n" + "\n".join(f"{i}. {s}." for i, s in enumerate(steps, 1))


def _table(rng: random.Random) -> str:
    towns = rng.sample(_PLACES, rng.randint(3, 6))
    rows = [f"| {t} | {rng.randint(1, 99) * 100} | {rng.choice(_THINGS)} |" for t in towns]
    return "| town | population | main good |\n| --- | --- | --- |\n" + "\n".join(rows)


def _worked_sum(rng: random.Random) -> str:
    value = rng.randint(1, 50)
    lines = [f"Start with {value}."]
    for _ in range(rng.randint(2, 6)):
        x = rng.randint(1, 20)
        if rng.random() < 0.5:
            lines.append(f"{value} + {x} = {value + x}")
            value += x
        else:
            lines.append(f"{value} - {x} = {value - x}")
            value -= x
    lines.append(f"The result is {value}.")
    return "\n".join(lines)


_PLAIN = (_prose, _prose, _numbered_list, _table, _worked_sum)


def plain_document(rng: random.Random) -> str:
    """One generated plain-text document."""
    return rng.choice(_PLAIN)(rng)


def build_corpus(n_documents: int, seed: int = 0, environments: Sequence[str] = DEFAULT_ENVIRONMENTS,
                 chat_fraction: float = 0.5, difficulty: int = 1) -> list[str]:
    """``n_documents`` documents, deterministic for ``seed``: plain text and rendered chats.

    ``chat_fraction`` of the documents are chat transcripts of the ``environments``' train
    tasks with their solutions (rendered with :func:`render_chat`), the rest plain text.
    Unknown environment names are an error listing the registered ones.
    """
    if isinstance(n_documents, bool) or not isinstance(n_documents, int) or n_documents < 0:
        raise ConfigError("n_documents", n_documents, "a non-negative integer")
    if not 0.0 <= chat_fraction <= 1.0:
        raise ConfigError("chat_fraction", chat_fraction, "a number from 0 to 1")
    from edgesmith.core.plugin_manager import get_plugin_manager
    from edgesmith.plugins.toolcall.chat_template import render_chat

    rng = random.Random(f"corpus:{seed}")
    n_chat = round(n_documents * chat_fraction) if environments else 0
    chats: list[str] = []
    if n_chat:
        plugins = get_plugin_manager()
        per_env = -(-n_chat // len(environments))
        streams = []
        for name in environments:
            env = plugins.build("environment", name, key="environments", seed=seed, difficulty=difficulty)
            streams.append(env.tasks("train", per_env))
        for i in range(per_env):  # interleave environments
            for tasks in streams:
                if i < len(tasks) and len(chats) < n_chat:
                    task = tasks[i]
                    if task.solution is None:
                        continue
                    messages = list(task.messages) + [{"role": "assistant", "content": task.solution}]
                    chats.append(render_chat(messages, tools=task.tools))
    docs = chats + [plain_document(rng) for _ in range(n_documents - len(chats))]
    rng.shuffle(docs)
    return docs
