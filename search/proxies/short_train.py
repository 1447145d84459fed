"""``short_train``: bits per byte of a copy of the candidate trained for a fixed token budget.

The copy keeps the candidate's depth, per-layer operator pattern (with its options), head
count and vocabulary size; its width is ``width`` (fixed) or the candidate's hidden size
times ``width_scale``, so the cost stays small while wider candidates still train wider.

``tokenizer=bpe`` tokenizes the corpus as the pipeline will: a byte-level BPE trained at the
candidate's own ``vocab_size`` (one per vocabulary size, cached for the study), so the
vocabulary's reach (bytes per token) and the embedding's share of the parameters both show
in the result. ``tokenizer=bytes``: UTF-8 bytes, vocabulary 256, for any candidate.

The value is **bits per byte** on held-out documents: the summed next-token negative
log-likelihood divided by ``ln 2`` and by the UTF-8 bytes of the predicted tokens. It is
comparable across vocabulary sizes (a loss per token is not: a larger vocabulary packs more
text into each token). Validation values along the way go to ``report``; when it answers
True the trial is pruned.

The corpus comes from outside (search/ does not import plugins/): the caller passes
``texts`` (a list of documents) or ``texts_fn`` (a callable returning them), and for
``tokenizer=bpe`` a ``bpe_encoder`` factory (:data:`.text_data.EncoderFactory`); the search
command and stage pass the built-in corpus and the pipeline's tokenizer trainer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import require_at_least_one
from edgesmith.core.profiler import QualityProxy, TrialPruned

from .text_data import BYTE_VOCAB, EncoderFactory, TokenizedText, byte_encoder

TOKENIZERS = ("bytes", "bpe")


@dataclass
class ShortTrainOptions:
    """Options of ``short_train`` (``search.proxy.options``).

    width: hidden size of the copy; null: the candidate's hidden size x ``width_scale``
    (rounded to a multiple of 16).
    ffn_ratio: feed-forward ratio of the copy (null: the candidate's).
    tokenizer: ``bpe`` (the pipeline's byte-level BPE at the candidate's vocabulary size) or
    ``bytes`` (UTF-8 bytes, vocabulary 256).
    tokens: training token budget; seq_len x batch_size tokens per step (AdamW, lr).
    eval_every: steps between validation values reported to the study.
    val_documents: documents held out (the last ones); every candidate is validated on all
    of them, in contiguous windows of seq_len + 1 tokens.
    """

    width: Optional[int] = 64
    width_scale: float = 1.0
    ffn_ratio: Optional[float] = None
    tokenizer: str = "bytes"
    tokens: int = 32768
    seq_len: int = 64
    batch_size: int = 8
    lr: float = 3e-3
    eval_every: int = 16
    val_documents: int = 30
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        key = "search.proxy.options"
        require_at_least_one(self, key, ("tokens", "seq_len", "batch_size", "eval_every", "val_documents", "threads"))
        if self.width is not None and self.width < 1:
            raise ConfigError(f"{key}.width", self.width, "an integer >= 1, or null (candidate's width x width_scale)")
        if not self.width_scale > 0:
            raise ConfigError(f"{key}.width_scale", self.width_scale, "a number > 0")
        if self.tokenizer not in TOKENIZERS:
            raise ConfigError(f"{key}.tokenizer", self.tokenizer, " or ".join(TOKENIZERS))


def proxy_width(hidden_size: int, width: int | None, width_scale: float) -> int:
    """The copy's hidden size: ``width``, else the candidate's scaled (a multiple of 16, >= 16)."""
    if width is not None:
        return width
    return max(16, int(round(hidden_size * width_scale / 16)) * 16)


def scaled_copy(model_config: dict[str, Any], width: int, ffn_ratio: float | None,
                vocab_size: int) -> dict[str, Any]:
    """The candidate at proxy width: same layers and options, heads scaled with the width."""
    heads = model_config.get("num_attention_heads", 4)
    kv = model_config.get("num_key_value_heads", heads)
    new_heads = max(1, min(heads, width // 16))
    while width % new_heads:
        new_heads -= 1
    new_kv = math.gcd(new_heads, max(1, kv * new_heads // heads))
    ratio = ffn_ratio or model_config.get("intermediate_size", 3 * model_config["hidden_size"]) / model_config["hidden_size"]
    return {
        **model_config,
        "hidden_size": width,
        "num_attention_heads": new_heads,
        "num_key_value_heads": new_kv,
        "head_dim": width // new_heads,
        "intermediate_size": max(8, int(round(width * ratio / 8)) * 8),
        "vocab_size": vocab_size,
    }


class ShortTrainProxy(QualityProxy):
    """Trains the copy with AdamW and returns its validation bits per byte (lower is better)."""

    name = "short_train"
    options_class = ShortTrainOptions
    runtime_inputs = ("texts", "texts_fn", "bpe_encoder")
    unit = "bits per byte"

    def __init__(self, options: Any = None, *, texts: list[str] | None = None,
                 texts_fn: Callable[[], list[str]] | None = None, bpe_encoder: EncoderFactory | None = None):
        super().__init__(options)
        if self.options.tokenizer == "bpe" and bpe_encoder is None:
            raise ConfigError("search.proxy.options.tokenizer", "bpe",
                              "bytes, or bpe with a BPE trainer passed as bpe_encoder= (the search command "
                              "and stage pass the pipeline's tokenizer)")
        self._texts, self._texts_fn = texts, texts_fn
        self._bpe_encoder = bpe_encoder
        self._documents: tuple[list[str], list[str]] | None = None
        # One tokenization per vocabulary size, reused by every later trial of the study.
        self._data: dict[int, tuple[TokenizedText, TokenizedText]] = {}

    def documents(self) -> tuple[list[str], list[str]]:
        """Train and held-out documents (read once)."""
        if self._documents is None:
            texts = self._texts if self._texts is not None else (self._texts_fn() if self._texts_fn else None)
            if not texts:
                raise ConfigError("search.proxy", "short_train",
                                  "a corpus: pass texts=[...] or texts_fn=callable (the search command "
                                  "and stage pass the built-in corpus)")
            texts = list(texts)
            n_val = self.options.val_documents
            if n_val >= len(texts):
                raise ConfigError("search.proxy.options.val_documents", n_val,
                                  f"fewer than the corpus's {len(texts)} documents")
            self._documents = (texts[:-n_val], texts[-n_val:])
        return self._documents

    def vocab_size_for(self, model_config: dict[str, Any]) -> int:
        """The copy's vocabulary: the candidate's with ``bpe``, 256 with ``bytes``."""
        return int(model_config["vocab_size"]) if self.options.tokenizer == "bpe" else BYTE_VOCAB

    def data(self, vocab_size: int) -> tuple[TokenizedText, TokenizedText]:
        """Train and validation tokens for one vocabulary size (tokenized once, then cached)."""
        if vocab_size not in self._data:
            train_docs, val_docs = self.documents()
            if self.options.tokenizer == "bpe":
                encode = self._bpe_encoder(train_docs, vocab_size)  # the tokenizer never sees validation text
            else:
                encode = byte_encoder
            train, val = encode(train_docs), encode(val_docs)
            top = int(max(train.ids.max(), val.ids.max()))
            if top >= vocab_size:
                raise ConfigError("search.space.vocab_size", vocab_size,
                                  f"a vocabulary holding the tokenizer's ids (it produced id {top})")
            c = self.options
            need = (c.seq_len + 1) * c.batch_size + 1
            if len(train) < need:
                raise ConfigError("search.proxy.options.seq_len", c.seq_len,
                                  f"a corpus of at least {need} training tokens (it has {len(train)}; "
                                  "lower seq_len/batch_size or add documents)")
            if len(val) < c.seq_len + 1:
                raise ConfigError("search.proxy.options.val_documents", c.val_documents,
                                  f"held-out documents of at least {c.seq_len + 1} tokens (they have {len(val)})")
            self._data[vocab_size] = (train, val)
        return self._data[vocab_size]

    def _batch(self, ids: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c = self.options
        starts = torch.randint(0, len(ids) - c.seq_len - 1, (c.batch_size,), generator=gen)
        return torch.stack([ids[s:s + c.seq_len + 1] for s in starts.tolist()])

    def bits_per_byte(self, model: torch.nn.Module, val: TokenizedText) -> float:
        """Next-token NLL over all held-out tokens (contiguous windows) in bits per byte predicted."""
        c = self.options
        span = c.seq_len + 1
        n = (len(val) - 1) // c.seq_len  # windows overlap by one token, so every token but the first is predicted
        starts = [i * c.seq_len for i in range(n)]
        nll, nbytes = 0.0, 0
        model.eval()
        with torch.no_grad():
            for b in range(0, n, c.batch_size):
                chunk = starts[b:b + c.batch_size]
                ids = torch.stack([val.ids[s:s + span] for s in chunk])
                logits = model(input_ids=ids[:, :-1]).logits.float()
                nll += torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1), reduction="sum").item()
                nbytes += int(torch.stack([val.nbytes[s + 1:s + span] for s in chunk]).sum())
        model.train()
        return nll / math.log(2) / max(nbytes, 1)

    def evaluate(self, model_config: dict[str, Any],
                 report: Callable[[float, int], bool] | None = None) -> float:
        from edgesmith.core.modeling import EdgeForCausalLM

        from ..cost import build_config

        c = self.options
        vocab = self.vocab_size_for(model_config)
        train, val = self.data(vocab)
        threads_before = torch.get_num_threads()
        torch.set_num_threads(c.threads)
        try:
            torch.manual_seed(c.seed)
            width = proxy_width(int(model_config["hidden_size"]), c.width, c.width_scale)
            small = scaled_copy(model_config, width, c.ffn_ratio, vocab)
            model = EdgeForCausalLM(build_config(small))
            model.train()
            optim = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.0)
            steps = max(1, c.tokens // (c.seq_len * c.batch_size))
            gen = torch.Generator().manual_seed(c.seed)
            value = float("nan")
            for step in range(1, steps + 1):
                batch = self._batch(train.ids, gen)
                out = model(input_ids=batch, labels=batch)
                optim.zero_grad(set_to_none=True)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optim.step()
                if step % c.eval_every == 0 or step == steps:
                    value = self.bits_per_byte(model, val)
                    if not math.isfinite(value):
                        raise TrialPruned(f"validation loss diverged at step {step}")
                    if report is not None and step < steps and report(value, step):
                        raise TrialPruned(f"pruned at step {step} with {value:.4f} bits per byte")
            return value
        finally:
            torch.set_num_threads(threads_before)
