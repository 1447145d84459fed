"""The proxy's text as token ids, with how many bytes of text each token position stands for.

Candidates with different vocabularies see the same documents cut into different tokens, so
their losses per token are not comparable (a 2048-token BPE packs ~2x the text of a
512-token one into each token). Keeping the UTF-8 byte count of every position lets the
proxy report *bits per byte*: summed negative log-likelihood / (ln 2 x bytes predicted), the
same unit whatever the tokenizer.

search/ does not import plugins/, so the BPE comes from the caller as an
:data:`EncoderFactory`: ``(texts to fit on, vocab_size) -> Encoder``; the search command and
stage pass the pipeline's own (``edgesmith.plugins.world.tokenizer.train_tokenizer``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

#: byte count given to the end-of-document token (the byte encoding uses a newline there)
SEPARATOR_BYTES = 1


@dataclass
class TokenizedText:
    """Documents joined into one id stream, each followed by an end-of-document token.

    ``nbytes[i]``: UTF-8 bytes of text that position ``i`` stands for (the separator counts
    :data:`SEPARATOR_BYTES`), so ``nbytes.sum()`` is the text's size whatever the tokenizer.
    """

    ids: torch.Tensor  # long, [n]
    nbytes: torch.Tensor  # long, [n]

    def __len__(self) -> int:
        return int(self.ids.numel())


Encoder = Callable[[list[str]], TokenizedText]
EncoderFactory = Callable[[list[str], int], Encoder]

BYTE_VOCAB = 256


def byte_encoder(texts: list[str]) -> TokenizedText:
    """UTF-8 bytes as tokens (vocabulary 256, newline between documents): no tokenizer at all."""
    ids: list[int] = []
    for text in texts:
        ids.extend(text.encode("utf-8"))
        ids.append(10)
    tensor = torch.tensor(ids, dtype=torch.long)
    return TokenizedText(tensor, torch.ones_like(tensor))


def token_byte_lengths(tokenizer) -> list[int]:
    """UTF-8 bytes each id of a byte-level BPE (``tokenizers`` / transformers fast) stands for.

    A byte-level token's string spells one character per byte (GPT-2's byte-to-unicode map),
    so its length is its byte count; an added token (``<|im_start|>``...) stands for its own text.
    """
    added = {i: t.content for i, t in tokenizer.added_tokens_decoder.items()}
    lengths = []
    for i in range(len(tokenizer)):
        if i in added:
            lengths.append(len(added[i].encode("utf-8")))
        else:
            lengths.append(len(tokenizer.convert_ids_to_tokens(i)))
    return lengths


def tokenizer_encoder(tokenizer) -> Encoder:
    """An :data:`Encoder` from a byte-level BPE (documents end with its EOS token)."""
    lengths = torch.tensor(token_byte_lengths(tokenizer), dtype=torch.long)
    eos = tokenizer.eos_token_id

    def encode(texts: list[str]) -> TokenizedText:
        ids: list[int] = []
        ends: list[int] = []  # separator positions (chats also hold EOS as text: those keep their bytes)
        for row in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
            ids.extend(row)
            ends.append(len(ids))
            ids.append(eos)
        tensor = torch.tensor(ids, dtype=torch.long)
        nbytes = lengths[tensor]
        nbytes[torch.tensor(ends, dtype=torch.long)] = SEPARATOR_BYTES
        return TokenizedText(tensor, nbytes)

    return encode
