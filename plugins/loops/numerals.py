"""The token ids a tokenizer spells numbers with, for the loop detector's near-repeat rule.

A counter that increments every cycle ("Step 7 ... Step 8 ...") changes only digits; the
detector forgives such changes when it knows which ids are numerals (on text it sees the
digits itself).
"""

from __future__ import annotations

from typing import Any


def numeral_token_ids(tokenizer: Any) -> frozenset[int]:
    """Ids whose token text is digits only (after dropping a byte-level space marker)."""
    found = set()
    for token, token_id in tokenizer.get_vocab().items():
        text = token.lstrip("Ġ▁ ")
        if text and text.isdigit():
            found.add(int(token_id))
    return frozenset(found)
