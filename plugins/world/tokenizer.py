"""A byte-level BPE tokenizer trained on edgesmith's own text, saved as a transformers tokenizer.

Byte-level: every byte is in the base alphabet, so any text round-trips and nothing is
ever unknown. The chat and tool special tokens are added as single, never-split tokens,
the chat template is attached, and ``<|im_end|>`` is the end-of-sequence token (every turn
ends with it, so generation stops after one assistant turn).

The vocabulary size is a parameter because the architecture search varies it: with a
small model the embedding matrix is a large share of the parameters (LFM2 aims near 10%).
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.toolcall.chat_template import (
    BOS_TOKEN,
    CHAT_TEMPLATE,
    END_OF_TEXT_TOKEN,
    EOS_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
)

#: every special token of an edgesmith tokenizer, in id order (pad is id 0)
TOKENIZER_SPECIAL_TOKENS: list[str] = [PAD_TOKEN, END_OF_TEXT_TOKEN] + SPECIAL_TOKENS
#: the tool markers: single tokens, but kept by ``skip_special_tokens=True``
TOOL_MARKERS: list[str] = [t for t in SPECIAL_TOKENS if t.startswith("<|tool_")]
BYTE_ALPHABET_SIZE = 256


def minimum_vocab_size() -> int:
    """The smallest vocabulary that holds the 256 byte symbols and the special tokens."""
    return BYTE_ALPHABET_SIZE + len(TOKENIZER_SPECIAL_TOKENS)


def _keep_tool_markers_in_text(tokenizer: Tokenizer) -> Tokenizer:
    """Marks the tool markers as added tokens that are not *special*.

    They stay single, never-split tokens, but ``decode(..., skip_special_tokens=True)``
    (what TRL's trainers do with completions) keeps them, so a verifier still sees the
    tool calls; the turn tokens (``<|im_start|>``, ``<|im_end|>``, ...) are still dropped.
    The trainer only knows "special" atoms, so the flag is changed after training.
    """
    state = json.loads(tokenizer.to_str())
    for token in state["added_tokens"]:
        if token["content"] in TOOL_MARKERS:
            token["special"] = False
    return Tokenizer.from_str(json.dumps(state))


#: how text is cut before BPE merges: whitespace runs, single digits, letter runs, punctuation runs
PRE_TOKENIZER_PATTERN = r"\s+|\p{N}|\p{L}+|[^\s\p{L}\p{N}]+"


def pre_tokenizer() -> pre_tokenizers.PreTokenizer:
    """Byte-level pre-tokenization where a word is the same tokens wherever it stands.

    GPT-2's byte-level pattern glues a leading space to each word, so ``Oslo`` in a request
    (`` Oslo``) and in a call (``city="Oslo"``) are different tokens and a small model must
    learn that mapping for every word. Here whitespace is its own piece and digits are
    single pieces, so a value is copied from the request token for token, and numbers of
    any size are made of ten digit tokens. No prefix space: a chat is one string whose
    pieces must not gain spaces.
    """
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRE_TOKENIZER_PATTERN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def train_tokenizer(
    texts: Iterable[str], vocab_size: int, save_dir: str | None = None, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Trains a byte-level BPE of exactly ``vocab_size`` entries (fewer if the text has too few merges).

    ``texts`` is any iterable of strings (a generator is fine; it is read once). With
    ``save_dir`` the tokenizer is saved there with ``save_pretrained`` so
    ``AutoTokenizer.from_pretrained(save_dir)`` loads it, chat template included.
    """
    minimum = minimum_vocab_size()
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < minimum:
        raise ConfigError(
            "vocab_size", vocab_size,
            f"an integer >= {minimum} ({BYTE_ALPHABET_SIZE} bytes + {len(TOKENIZER_SPECIAL_TOKENS)} special tokens)",
        )
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizer()
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=TOKENIZER_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )

    def nonempty(stream: Iterable[str]):
        for text in stream:
            if not isinstance(text, str):
                raise TypeError(f"train_tokenizer expects strings, got {type(text).__name__}")
            yield text

    tokenizer.train_from_iterator(nonempty(texts), trainer=trainer)
    tokenizer = _keep_tool_markers_in_text(tokenizer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )
    if save_dir is not None:
        wrapped.save_pretrained(save_dir)
    return wrapped
