"""The short_train proxy with the pipeline's tokenizer: byte counts, bits per byte, one BPE per
vocabulary size, and clear errors."""

from __future__ import annotations

import math

import pytest
import torch

from edgesmith.core.errors import ConfigError
from edgesmith.plugins.stages.search import bpe_encoder
from edgesmith.plugins.world.corpus import build_corpus
from edgesmith.search.proxies.short_train import ShortTrainProxy, proxy_width
from edgesmith.search.proxies.text_data import byte_encoder

TINY_TRAIN = dict(width=32, tokens=1024, seq_len=32, batch_size=4, eval_every=4, val_documents=6, lr=1e-2)


def candidate(vocab: int, layers: int = 2) -> dict:
    return {"vocab_size": vocab, "hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 4,
            "num_key_value_heads": 2, "layers": [{"op": "short_conv", "conv_length": 3}] * (layers - 1) + [{"op": "gqa"}]}


@pytest.fixture(scope="module")
def docs() -> list[str]:
    return build_corpus(60, seed=0)


def test_bpe_positions_count_the_bytes_of_the_text(docs):
    encode = bpe_encoder(docs, 400)
    tokens = encode(docs)
    assert int(tokens.nbytes.sum()) == sum(len(d.encode("utf-8")) + 1 for d in docs)  # + 1 per separator
    assert len(tokens) < int(tokens.nbytes.sum())  # merges: fewer tokens than bytes
    # The chats hold <|im_end|> as text: those positions keep their 10 bytes, separators count 1.
    eos = int(tokens.ids[-1])
    assert int((tokens.ids == eos).sum()) > len(docs)
    assert set(tokens.nbytes[tokens.ids == eos].tolist()) == {1, len("<|im_end|>")}


class Uniform(torch.nn.Module):
    """A language model that knows nothing: equal logits for every token."""

    def __init__(self, vocab: int):
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


@pytest.mark.parametrize("vocab", [300, 1024])
def test_bits_per_byte_divides_by_the_bytes_predicted(docs, vocab):
    proxy = ShortTrainProxy({**TINY_TRAIN, "tokenizer": "bpe"}, texts=docs, bpe_encoder=bpe_encoder)
    _, val = proxy.data(vocab)
    n = (len(val) - 1) // 32
    predicted = torch.cat([val.nbytes[i * 32 + 1:i * 32 + 33] for i in range(n)])
    expected = math.log2(vocab) * predicted.numel() / int(predicted.sum())
    assert proxy.bits_per_byte(Uniform(vocab), val) == pytest.approx(expected, rel=1e-5)
    byte_val = byte_encoder(docs[-6:])
    assert proxy.bits_per_byte(Uniform(256), byte_val) == pytest.approx(8.0)  # one byte per token


def test_one_bpe_per_vocabulary_size_and_the_value_depends_on_it(docs):
    fitted: list[int] = []

    def counting(texts, vocab_size):
        fitted.append(vocab_size)
        assert not set(texts) & set(docs[-6:])  # the tokenizer never sees the held-out documents
        return bpe_encoder(texts, vocab_size)

    proxy = ShortTrainProxy({**TINY_TRAIN, "tokenizer": "bpe"}, texts=docs, bpe_encoder=counting)
    small, again, large = (proxy.evaluate(candidate(v)) for v in (300, 300, 1024))
    assert fitted == [300, 1024]
    assert small == again and small != large
    assert all(0 < v < 12 for v in (small, large))
    assert proxy.evaluate(candidate(1024, layers=3)) != large  # depth matters too


def test_bpe_needs_a_trainer_and_a_vocabulary_that_holds_it(docs):
    with pytest.raises(ConfigError, match=r"search.proxy.options.tokenizer='bpe'.*bpe_encoder"):
        ShortTrainProxy({"tokenizer": "bpe"}, texts=docs)
    with pytest.raises(ConfigError, match=r"search.proxy.options.tokenizer='words'.*bytes or bpe"):
        ShortTrainProxy({"tokenizer": "words"}, texts=docs)
    with pytest.raises(ConfigError, match=r"search.proxy.options.val_documents=60.*fewer than"):
        ShortTrainProxy({**TINY_TRAIN, "val_documents": 60}, texts=docs).evaluate(candidate(300))
    with pytest.raises(ConfigError, match=r"search.proxy.options.width=0"):
        ShortTrainProxy({"width": 0}, texts=docs)


def test_width_follows_the_candidate_when_not_fixed():
    assert proxy_width(192, None, 0.5) == 96 and proxy_width(256, None, 0.5) == 128
    assert proxy_width(256, 64, 0.5) == 64 and proxy_width(40, None, 0.1) == 16
