"""Running a GGUF file with llama.cpp (llama-cpp-python's low-level API): logits, greedy decoding.

What a check of an export needs and nothing more: every position's logits for a token sequence
(perplexity, comparison with edgesmith), greedy continuation, and llama.cpp's own tokenizer.

``extra_buffers`` is llama.cpp's ``use_extra_bufts`` (weights repacked at load into CPU-specific
layouts: AMX tiles, interleaved Q4_0). It is off by default: on the Xeon with AMX these models
were measured on (a VM), llama.cpp 0.3.36's AMX path crashed (segmentation fault) in the first
``llama_decode`` of any quantized model; plain CPU kernels ran. Turn it on where it works.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import numpy as np


class GGUFRunner:
    """One llama.cpp model and context. ``f32_cache``: keys and values cached in float32 (llama.cpp's
    default is float16), and flash attention off, for comparisons at float32 precision."""

    def __init__(self, path: str | Path, n_ctx: int = 1024, threads: int = 1, f32_cache: bool = False,
                 extra_buffers: bool = False, vocab_only: bool = False):
        import llama_cpp as L

        self.L = L
        L.llama_backend_init()
        mparams = L.llama_model_default_params()
        mparams.use_extra_bufts = bool(extra_buffers)
        mparams.vocab_only = bool(vocab_only)
        self.model = L.llama_model_load_from_file(str(path).encode(), mparams)
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.ctx = None
        self.n_ctx = n_ctx
        if vocab_only:
            return
        cparams = L.llama_context_default_params()
        cparams.n_ctx = cparams.n_batch = cparams.n_ubatch = n_ctx
        cparams.n_threads = cparams.n_threads_batch = threads
        cparams.no_perf = True
        if f32_cache:
            cparams.type_k = cparams.type_v = L.GGML_TYPE_F32
            cparams.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self.ctx = L.llama_init_from_model(self.model, cparams)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {path}")

    def close(self) -> None:
        if self.ctx:
            self.L.llama_free(self.ctx)
            self.ctx = None
        if self.model:
            self.L.llama_model_free(self.model)
            self.model = None

    def __enter__(self) -> "GGUFRunner":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _decode(self, ids: list[int], start: int, all_logits: bool) -> None:
        L = self.L
        batch = L.llama_batch_init(len(ids), 0, 1)
        try:
            batch.n_tokens = len(ids)
            for i, token in enumerate(ids):
                batch.token[i] = int(token)
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = all_logits or i == len(ids) - 1
            status = L.llama_decode(self.ctx, batch)
            if status != 0:
                raise RuntimeError(f"llama_decode returned {status}")
        finally:
            L.llama_batch_free(batch)

    def logits(self, ids: list[int]) -> np.ndarray:
        """(len(ids), vocab) logits of every position, from an empty context."""
        if len(ids) > self.n_ctx:
            raise ValueError(f"{len(ids)} tokens do not fit the context of {self.n_ctx}")
        self.L.llama_memory_clear(self.L.llama_get_memory(self.ctx), True)
        self._decode(list(ids), 0, all_logits=True)
        flat = np.ctypeslib.as_array(self.L.llama_get_logits(self.ctx), shape=(len(ids) * self.n_vocab,))
        return flat.reshape(len(ids), self.n_vocab).copy()

    def greedy(self, prompt: list[int], n: int) -> list[int]:
        """``n`` tokens continuing ``prompt`` by argmax (no stop at end-of-sequence)."""
        L = self.L
        L.llama_memory_clear(L.llama_get_memory(self.ctx), True)
        self._decode(list(prompt), 0, all_logits=False)
        out: list[int] = []
        for step in range(n):
            logits = np.ctypeslib.as_array(L.llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab,))
            out.append(int(logits.argmax()))
            if step + 1 < n:
                self._decode([out[-1]], len(prompt) + step, all_logits=False)
        return out

    def tokenize(self, text: str) -> list[int]:
        """llama.cpp's own encoding of ``text`` (special tokens parsed, no BOS added)."""
        raw = text.encode()
        size = len(raw) + 16
        buf = (self.L.llama_token * size)()
        n = self.L.llama_tokenize(self.vocab, raw, len(raw), buf, size, False, True)
        if n < 0:
            raise RuntimeError(f"llama_tokenize needs {-n} tokens")
        return list(buf[:n])

    def detokenize(self, ids: list[int]) -> str:
        """llama.cpp's decoding of ``ids`` (special tokens rendered)."""
        tokens = (self.L.llama_token * len(ids))(*ids)
        size = 8 * len(ids) + 64
        buf = ctypes.create_string_buffer(size)
        n = self.L.llama_detokenize(self.vocab, tokens, len(ids), buf, size, False, True)
        if n < 0:
            raise RuntimeError(f"llama_detokenize needs {-n} bytes")
        return buf.raw[:n].decode("utf-8", errors="replace")
