"""Options of the ``pretrain`` stage (``pretrain.<key>=value``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import require_at_least_one

from .precision import check_precision


@dataclass
class PretrainConfig:
    """Language-model pretraining of the chosen architecture, or an import instead.

    ``init_from`` (or the top-level ``init_from``): start from an existing checkpoint
    instead of training from scratch: an edgesmith model directory, an LFM2 directory
    (converted), or any transformers causal LM directory. ``train_after_init`` also trains it
    on the corpus. ``dataset``: a user's text (a ``.txt`` file, one document per blank-line
    separated block; a ``.jsonl`` file with ``text_field``; or a directory of ``.txt``
    files) instead of the built-in corpus. The built-in corpus is ``n_documents`` documents,
    ``chat_fraction`` of them chat transcripts of ``environments``' training tasks (at
    ``difficulty``) with their reference solutions, the rest generated plain text.

    ``copy_warmup_steps`` > 0 first trains a fresh model on the copy curriculum of
    :mod:`edgesmith.plugins.stages.copy_warmup` (``copy_warmup_batch_size`` sequences of
    ``copy_warmup_seq_len`` random tokens per step) for at most that many steps, stopping
    once the loss on the copied spans is below ``copy_warmup_target_loss`` nats (0: run
    every step): it forms the induction circuit that copying values from a request needs,
    which the corpus alone reaches only after a long plateau.
    """

    init_from: str | None = None
    train_after_init: bool = False
    dataset: str | None = None
    text_field: str = "text"
    n_documents: int = 3000
    environments: list[str] = field(default_factory=lambda: ["toolcall", "extraction", "reasoning"])
    chat_fraction: float = 0.5
    difficulty: int = 1
    max_steps: int = 300
    copy_warmup_steps: int = 0
    copy_warmup_batch_size: int = 64
    copy_warmup_seq_len: int = 32
    copy_warmup_learning_rate: float = 2e-3
    copy_warmup_target_loss: float = 1.0
    batch_size: int = 8
    seq_len: int = 256
    learning_rate: float = 3e-3
    warmup_ratio: float = 0.05
    save_steps: int = 100
    precision: str = "fp32"
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for time)
    seed: int = 0

    def __post_init__(self) -> None:
        check_precision(self.precision, "pretrain.precision")
        require_at_least_one(self, "pretrain", ("n_documents", "max_steps", "batch_size", "seq_len", "save_steps",
                                                "copy_warmup_batch_size"))
        if not self.learning_rate > 0:
            raise ConfigError("pretrain.learning_rate", self.learning_rate, "a positive number")
        if self.copy_warmup_steps < 0:
            raise ConfigError("pretrain.copy_warmup_steps", self.copy_warmup_steps, "an integer >= 0 (0: no warm-up)")
        if self.copy_warmup_seq_len < 16:
            raise ConfigError("pretrain.copy_warmup_seq_len", self.copy_warmup_seq_len,
                              "an integer >= 16 (room for a 6-token span and its copy)")
        if self.copy_warmup_target_loss < 0:
            raise ConfigError("pretrain.copy_warmup_target_loss", self.copy_warmup_target_loss,
                              "a number >= 0 (0: always run copy_warmup_steps steps)")
        if not self.copy_warmup_learning_rate > 0:
            raise ConfigError("pretrain.copy_warmup_learning_rate", self.copy_warmup_learning_rate, "a positive number")
        if not 0 <= self.chat_fraction <= 1:
            raise ConfigError("pretrain.chat_fraction", self.chat_fraction, "a number from 0 to 1")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError("pretrain.warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
