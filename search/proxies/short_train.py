"""``short_train``: validation loss of a scaled-down copy trained for a fixed token budget.

The copy keeps the candidate's depth and per-layer operator pattern (with its options)
and shrinks the width, so candidates are compared on how their mixing pattern learns,
at a cost independent of their target width. Validation losses along the way go to
``report``; when it answers True the trial is pruned.

The corpus comes from outside (search/ does not import plugins/): the caller passes
``texts`` (a list of strings) or ``texts_fn`` (a callable returning them); the tokens are
the UTF-8 bytes of the text unless an ``encode`` callable ``(texts) -> (ids, vocab_size)``
is passed (e.g. a tokenizer trained on the corpus).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch

from edgesmith.core.errors import ConfigError
from edgesmith.core.profiler import QualityProxy
from edgesmith.core.stage_options import build_options, require_at_least_one


class ProxyPruned(Exception):
    """Raised when ``report`` asked to stop: the study turns it into a pruned trial."""


@dataclass
class ShortTrainOptions:
    """Options of ``short_train`` (``search.proxy.options``).

    width: hidden size of the copy (heads scaled to keep ``head_dim`` near 16 or more).
    ffn_ratio: feed-forward ratio of the copy (null: the candidate's).
    tokens: training token budget; seq_len x batch_size tokens per step.
    eval_every: steps between validation losses reported to the study.
    val_fraction: share of the corpus held out for validation.
    """

    width: int = 64
    ffn_ratio: Optional[float] = None
    tokens: int = 32768
    seq_len: int = 64
    batch_size: int = 8
    lr: float = 3e-3
    eval_every: int = 16
    eval_batches: int = 4
    val_fraction: float = 0.1
    threads: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        key = "search.proxy.options"
        require_at_least_one(self, key, ("width", "tokens", "seq_len", "batch_size", "eval_every", "eval_batches", "threads"))
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"{key}.val_fraction", self.val_fraction, "a fraction in (0, 1)")


def byte_encode(texts: list[str]) -> tuple[list[int], int]:
    """UTF-8 bytes as tokens (vocabulary 256): a tokenizer-free default."""
    ids: list[int] = []
    for text in texts:
        ids.extend(text.encode("utf-8"))
        ids.append(10)
    return ids, 256


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
    """Trains the scaled-down copy with AdamW and returns the final validation loss (nats/token)."""

    name = "short_train"

    def __init__(self, texts: list[str] | None = None, texts_fn: Callable[[], list[str]] | None = None,
                 encode: Callable[[list[str]], tuple[list[int], int]] | None = None, **options: Any):
        super().__init__(**options)
        self.config = build_options(ShortTrainOptions, options, key="search.proxy.options")
        self._texts, self._texts_fn = texts, texts_fn
        self._encode = encode or byte_encode
        self._data: tuple[torch.Tensor, torch.Tensor, int] | None = None

    def data(self) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Train ids, validation ids, vocabulary size (built once, then reused by every trial)."""
        if self._data is None:
            texts = self._texts if self._texts is not None else (self._texts_fn() if self._texts_fn else None)
            if not texts:
                raise ConfigError("search.proxy", "short_train",
                                  "a corpus: pass texts=[...] or texts_fn=callable (the search command "
                                  "and stage pass the built-in corpus)")
            ids, vocab = self._encode(list(texts))
            c = self.config
            need = 2 * (c.seq_len + 1) * c.batch_size
            if len(ids) < need:
                raise ConfigError("search.proxy.options.seq_len", c.seq_len,
                                  f"a corpus of at least {need} tokens (it has {len(ids)})")
            split = max(len(ids) - int(len(ids) * c.val_fraction), len(ids) - need // 2)
            tensor = torch.tensor(ids, dtype=torch.long)
            self._data = (tensor[:split], tensor[split:], vocab)
        return self._data

    def _batch(self, ids: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        c = self.config
        starts = torch.randint(0, len(ids) - c.seq_len - 1, (c.batch_size,), generator=gen)
        return torch.stack([ids[s:s + c.seq_len + 1] for s in starts.tolist()])

    def evaluate(self, model_config: dict[str, Any],
                 report: Callable[[float, int], bool] | None = None) -> float:
        from edgesmith.core.modeling import EdgeForCausalLM

        from ..cost import build_config

        c = self.config
        train_ids, val_ids, vocab = self.data()
        torch.set_num_threads(c.threads)
        torch.manual_seed(c.seed)
        small = scaled_copy(model_config, c.width, c.ffn_ratio, vocab)
        model = EdgeForCausalLM(build_config(small))
        model.train()
        optim = torch.optim.AdamW(model.parameters(), lr=c.lr, weight_decay=0.0)
        steps = max(1, c.tokens // (c.seq_len * c.batch_size))
        gen = torch.Generator().manual_seed(c.seed)
        val_gen_seed = c.seed + 1

        def validate() -> float:
            model.eval()
            g = torch.Generator().manual_seed(val_gen_seed)  # same batches every time
            with torch.no_grad():
                losses = [model(input_ids=b, labels=b).loss.item()
                          for b in (self._batch(val_ids, g) for _ in range(c.eval_batches))]
            model.train()
            return sum(losses) / len(losses)

        loss = float("nan")
        for step in range(1, steps + 1):
            batch = self._batch(train_ids, gen)
            out = model(input_ids=batch, labels=batch)
            optim.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optim.step()
            if step % c.eval_every == 0 or step == steps:
                loss = validate()
                if not math.isfinite(loss):
                    raise ProxyPruned(f"validation loss diverged at step {step}")
                if report is not None and step < steps and report(loss, step):
                    raise ProxyPruned(f"pruned at step {step} with validation loss {loss:.4f}")
        return loss
