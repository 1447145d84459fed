"""Open-ended argument values for the built-in world, split between training and evaluation.

A small model that sees the same twelve city names in training and evaluation learns to
*recall* a value instead of *copying* it from the request (a probe of issue 10 called
``get_stock_price(symbol='HOOLI')`` when asked about INITECH). So the world draws its
free values (names, places, phrases, tickers) from spaces far larger than any training set,
and every value belongs to one split by a hash of its text: a value an evaluation prompt
carries never occurs in a training prompt, so copying from the request is the only
strategy that pays at evaluation time.

The split a value is drawn for comes from the random stream itself
(:class:`SplitRandom`, made by :meth:`GeneratedEnvironment.tasks`); a plain
``random.Random`` draws training values.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

#: share of every open value space reserved for evaluation prompts
EVAL_VALUE_FRACTION = 0.2

# Syllables for invented proper names: ~45**2..45**3 names, far more than any task set.
_SYLLABLES = ["ba", "bel", "bor", "ca", "cor", "da", "del", "dor", "el", "fa", "fen", "ga", "gor", "ha",
              "is", "ka", "kel", "la", "lin", "lo", "ma", "mar", "mi", "na", "nor", "o", "pa", "pel",
              "ra", "ren", "ri", "sa", "sel", "ta", "tor", "u", "va", "vel", "wen", "ya", "za", "zor",
              "ki", "mo", "tu"]
# Plain words for messages, queries and titles: phrases of 2-4 of them number in the millions.
WORDS = ["apple", "river", "green", "lamp", "quiet", "stone", "bright", "cloud", "garden", "silver",
         "window", "morning", "paper", "orange", "forest", "little", "yellow", "bridge", "candle", "winter",
         "summer", "island", "market", "pocket", "rocket", "mirror", "button", "planet", "pepper", "honey",
         "ocean", "meadow", "copper", "velvet", "thunder", "violet", "maple", "harbor", "cotton", "crystal",
         "blue", "red", "soft", "fast", "warm", "cold", "new", "old", "tiny", "wild", "late", "early",
         "call", "meet", "bring", "send", "check", "fix", "buy", "sell", "open", "close", "read", "write",
         "dinner", "lunch", "coffee", "train", "ticket", "report", "meeting", "party", "concert", "movie",
         "keys", "door", "car", "bike", "phone", "book", "song", "game", "letter", "photo"]
_UPPER = "ABCDEFGHIJKLMNOPRSTUVWXZ"


class SplitRandom(random.Random):
    """A random stream that knows which split (``train`` or ``eval``) it draws values for."""

    def __init__(self, seed: Any, split: str):
        super().__init__(seed)
        self.split = split


def value_split(value: Any) -> str:
    """The split a value belongs to: ``eval`` for a fixed ~20% of all values, by a hash of its text."""
    digest = hashlib.sha256(repr(value).encode("utf-8")).hexdigest()
    return "eval" if int(digest[:12], 16) / 16**12 < EVAL_VALUE_FRACTION else "train"


def held_out(rng: random.Random, draw: Callable[[random.Random], T]) -> T:
    """A value from ``draw`` that belongs to the split ``rng`` draws for (redrawn until it does)."""
    split = getattr(rng, "split", "train")
    for _ in range(1000):
        value = draw(rng)
        if value_split(value) == split:
            return value
    raise RuntimeError(f"no {split} value found in 1000 draws: the value space is too small to split")


def proper_name(rng: random.Random) -> str:
    """An invented capitalized name of 2-3 syllables (a person, a city, a restaurant)."""
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    return name[0].upper() + name[1:]


def phrase(rng: random.Random, low: int = 2, high: int = 4) -> str:
    """A phrase of ``low``-``high`` plain words."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def ticker(rng: random.Random) -> str:
    """An invented stock ticker of 3-5 capital letters."""
    return "".join(rng.choice(_UPPER) for _ in range(rng.randint(3, 5)))


def city(rng: random.Random) -> str:
    return held_out(rng, proper_name)


def person(rng: random.Random) -> str:
    return held_out(rng, proper_name)


def full_name(rng: random.Random) -> str:
    return held_out(rng, lambda r: f"{proper_name(r)} {proper_name(r)}")


def words(rng: random.Random, low: int = 2, high: int = 4) -> str:
    return held_out(rng, lambda r: phrase(r, low, high))


def symbol(rng: random.Random) -> str:
    return held_out(rng, ticker)
