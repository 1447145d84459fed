"""edgesmith -> GGUF: the file llama.cpp runs, in float or llama.cpp-quantized types.

llama.cpp runs a fixed list of architectures; the export picks the first of
:data:`ARCHITECTURES` that runs the model with edgesmith's own arithmetic, each a mapping in its
own file:

- ``lfm2`` (:mod:`.gguf_lfm2`): ``short_conv`` + ``gqa`` layers, an LFM2 network;
- ``qwen3next`` (:mod:`.gguf_qwen3next`): ``gated_deltanet`` + ``gqa`` layers, with exact
  stand-ins for the parts of Qwen3-Next edgesmith does not have (an attention output gate held
  open, the SwiGLU as a single-expert mixture).

Everything else is common and left to the ``gguf`` package:

- metadata: ``gguf.GGUFWriter``'s ``add_*`` calls for the keys every llama.cpp loader reads
  (block count, widths, heads, head size, RMS epsilon, RoPE base, vocabulary size), then the
  architecture's own;
- tokenizer: the byte-level BPE's tokens and types plus ``gguf.SpecialVocab`` (merges,
  special token ids, chat template) from the saved tokenizer files;
- float types (f32, f16, bf16) are written directly, the tensors each architecture names
  (norms, conv kernels, biases, ...) in f32 as llama.cpp expects; quantized types (q8_0, q4_0,
  q4_k_m, ...) are made from an f32 file by llama.cpp's own quantizer
  (``llama_model_quantize`` through llama-cpp-python).

A model no architecture runs exactly fails with :class:`ExportError` naming, for each
architecture, the offending layers and options.

Tokenizer limitation: llama.cpp chooses its pre-tokenizer (the regex that cuts text before BPE
merges) from a fixed list keyed by ``tokenizer.ggml.pre``; none of them is edgesmith's
(whitespace runs, single digits, letter runs, punctuation runs:
:data:`edgesmith.plugins.world.tokenizer.PRE_TOKENIZER_PATTERN`). The export names ``gpt-2``,
the closest: its pieces never join two of edgesmith's pieces in a way a learned merge could
cross (edgesmith's merges never span a space and a word, a letter and a digit, or a word and
punctuation), so llama.cpp encodes text exactly as edgesmith does, except where a run of two
or more whitespace characters precedes a non-space character: GPT-2 moves the run's last
space onto the next piece, which can change how the run is merged (``"a   b"``). The
vocabulary, merges, special tokens and decoding are exact; to be safe everywhere, feed
llama.cpp the token ids edgesmith's tokenizer produced (the tests and the profiler do).
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import ConfigError

from .gguf_lfm2 import LFM2_GGUF
from .gguf_qwen3next import QWEN3NEXT_GGUF
from .lfm2 import ExportError, read_edge_config

#: types the ``gguf`` writer produces directly
FLOAT_TYPES = ("f32", "f16", "bf16")
#: types llama.cpp's quantizer produces -> its ``llama_ftype`` constant in llama-cpp-python
QUANT_TYPES = {
    "q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
    "q6_k": "LLAMA_FTYPE_MOSTLY_Q6_K",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q4_k_s": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
}
GGUF_TYPES = FLOAT_TYPES + tuple(QUANT_TYPES)
#: what llama.cpp is told about the pre-tokenizer (see the module docstring)
TOKENIZER_PRE = "gpt-2"


def _float_qtype(name: str) -> Any:
    import gguf

    return {"f32": gguf.GGMLQuantizationType.F32, "f16": gguf.GGMLQuantizationType.F16,
            "bf16": gguf.GGMLQuantizationType.BF16}[name]


def check_gguf_type(value: Any, key: str = "quant") -> str:
    """``value`` as a GGUF type name, or a :class:`ConfigError` listing the accepted ones."""
    name = str(value).lower()
    if name not in GGUF_TYPES:
        raise ConfigError(key, value, f"one of {', '.join(GGUF_TYPES)}")
    return name


class GGUFArchitecture(Protocol):
    """How an edgesmith model becomes one llama.cpp architecture (one file per architecture)."""

    name: str  #: llama.cpp's architecture name (``general.architecture``)
    accepted: str  #: what the mapping accepts, in words, for errors

    def problems(self, config: EdgeConfig) -> list[str]:
        """Why llama.cpp cannot run ``config`` exactly as this architecture, one line each (empty: it can)."""

    def add_metadata(self, writer: Any, config: EdgeConfig) -> None:
        """Writes the architecture's keys beyond the common ones."""

    def tensors(self, model: torch.nn.Module) -> Iterator[tuple[str, np.ndarray]]:
        """(GGUF name, float32 array) of every tensor the file holds."""

    def stays_f32(self, name: str, array: np.ndarray) -> bool:
        """Whether a tensor is written as float32 whatever the file type."""


#: tried in order; the first that runs a model exactly is the one written
ARCHITECTURES: tuple[GGUFArchitecture, ...] = (LFM2_GGUF, QWEN3NEXT_GGUF)


def gguf_export_problems_by_architecture(config: EdgeConfig) -> dict[str, list[str]]:
    """Architecture name -> why llama.cpp cannot run ``config`` as it (empty list: it can)."""
    return {arch.name: arch.problems(config) for arch in ARCHITECTURES}


def gguf_export_problems(config: EdgeConfig) -> list[str]:
    """Why no llama.cpp architecture runs ``config`` exactly, one ``"<architecture>: <problem>"``
    line per problem of each architecture; empty when one of them can."""
    by_arch = gguf_export_problems_by_architecture(config)
    if any(not problems for problems in by_arch.values()):
        return []
    return [f"{name}: {problem}" for name, problems in by_arch.items() for problem in problems]


def gguf_architecture(config: EdgeConfig) -> GGUFArchitecture:
    """The architecture ``config`` is written as, or :class:`ExportError` naming, for each
    architecture, what it accepts and every layer or option it cannot run."""
    by_arch = gguf_export_problems_by_architecture(config)
    for arch in ARCHITECTURES:
        if not by_arch[arch.name]:
            return arch
    lines = ["cannot export to GGUF: no llama.cpp architecture runs this model exactly"]
    for arch in ARCHITECTURES:
        lines.append(f"{arch.name} (accepted: {arch.accepted}):")
        lines.extend(f"  - {problem}" for problem in by_arch[arch.name])
    raise ExportError("\n".join(lines))


def _token_entries(tokenizer: Any, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens in id order and their GGUF types (special: control; other added: user-defined)."""
    import gguf

    vocab = tokenizer.get_vocab()
    by_id = {i: t for t, i in vocab.items()}
    added = {t.content: t for t in tokenizer.added_tokens_decoder.values()}
    if max(by_id) >= vocab_size:
        raise ExportError(f"the tokenizer has token id {max(by_id)} but the model's vocab_size is {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:  # rows of the embedding the tokenizer never produces
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif token in added:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL if added[token].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def _placeholder_vocab(vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """Tokens, types and merges of a valid byte-level BPE for a model without a tokenizer (a search
    candidate): the 256 byte symbols, then two-symbol tokens each made by one merge. Timing feeds
    token ids, so what the tokens spell does not matter; llama.cpp only needs a loadable vocabulary."""
    import gguf
    from tokenizers import pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    pairs = [(alphabet[i // len(alphabet)], alphabet[i % len(alphabet)])
             for i in range(max(0, vocab_size - len(alphabet)))]
    tokens = alphabet[:vocab_size] + [a + b for a, b in pairs]
    return tokens, [gguf.TokenType.NORMAL] * len(tokens), [f"{a} {b}" for a, b in pairs] or [" ".join(alphabet[:2])]


def _load_tokenizer(tokenizer: Any) -> tuple[Any, Path | None]:
    """(tokenizer object, its saved directory) from a directory or a transformers tokenizer."""
    if tokenizer is None:
        return None, None
    if isinstance(tokenizer, (str, Path)):
        from transformers import AutoTokenizer

        path = Path(tokenizer)
        return AutoTokenizer.from_pretrained(str(path)), path
    return tokenizer, None


def write_gguf(model: torch.nn.Module, path: str | Path, dtype: str = "f32", tokenizer: Any = None,
               name: str = "edgesmith") -> Path:
    """Writes ``model`` (an :class:`EdgeForCausalLM`) as a float GGUF (``dtype``: f32, f16, bf16) of the
    llama.cpp architecture :func:`gguf_architecture` picks.

    ``tokenizer``: a saved tokenizer directory or a transformers tokenizer (it is written into
    the file); None writes a placeholder vocabulary of ``vocab_size`` entries.
    """
    import gguf

    if dtype not in FLOAT_TYPES:
        raise ConfigError("dtype", dtype, f"one of {', '.join(FLOAT_TYPES)} (quantize with quantize_gguf)")
    config = model.config
    arch = gguf_architecture(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), arch.name)
    writer.add_name(name)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "bf16": gguf.LlamaFileType.MOSTLY_BF16}[dtype])
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(float(config.norm_eps))
    writer.add_vocab_size(config.vocab_size)
    arch.add_metadata(writer, config)

    tok, tok_dir = _load_tokenizer(tokenizer)
    writer.add_tokenizer_model("gpt2")  # llama.cpp's byte-level BPE
    writer.add_tokenizer_pre(TOKENIZER_PRE)
    if tok is None:
        tokens, types, merges = _placeholder_vocab(config.vocab_size)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        writer.add_token_merges(merges)
        writer.add_add_bos_token(False)
    else:
        tokens, types = _token_entries(tok, config.vocab_size)
        writer.add_token_list(tokens)
        writer.add_token_types(types)
        with tempfile.TemporaryDirectory() as tmp:
            source = tok_dir
            if source is None or not (source / "tokenizer.json").is_file():
                tok.save_pretrained(tmp)
                source = Path(tmp)
            special = gguf.SpecialVocab(source, load_merges=True, n_vocab=config.vocab_size)
            # edgesmith's chat template starts with BOS itself; llama.cpp must not add another.
            special.add_special_token.setdefault("bos", False)
            special.add_to_gguf(writer, quiet=True)

    float_type = _float_qtype(dtype)
    for tensor_name, array in arch.tensors(model):
        if arch.stays_f32(tensor_name, array) or dtype == "f32":
            writer.add_tensor(tensor_name, array)
        elif dtype == "f16":
            writer.add_tensor(tensor_name, array.astype(np.float16))
        else:
            writer.add_tensor(tensor_name, gguf.quants.quantize(array, float_type), raw_dtype=float_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def llama_cpp_build_info() -> dict[str, Any]:
    """llama.cpp as llama-cpp-python was built here: versions and the CPU features compiled in."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    return {"llama_cpp_python": llama_cpp.__version__,
            "system_info": info.decode(errors="replace").strip() if isinstance(info, bytes) else str(info)}


def quantize_gguf(src: str | Path, dst: str | Path, quant: str, threads: int = 0) -> Path:
    """Quantizes the float GGUF ``src`` to ``quant`` with llama.cpp's own quantizer."""
    import llama_cpp

    quant = check_gguf_type(quant)
    if quant not in QUANT_TYPES:
        raise ConfigError("quant", quant, f"a quantized type: {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params.nthread = int(threads)
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    status = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if status != 0:
        raise ExportError(f"llama.cpp's quantizer failed ({status}) quantizing {src} to {quant}")
    return Path(dst)


def export_gguf(model_or_dir: Any, dst: str | Path, quant: str = "f32", tokenizer: Any = None,
                threads: int = 0, overwrite: bool = False) -> Path:
    """Writes an edgesmith model (in memory or a model directory) as a GGUF file of type ``quant``.

    A model directory's tokenizer files are written into the file unless ``tokenizer`` is given.
    Quantized types are made from a temporary f32 file by llama.cpp's quantizer.
    """
    quant = check_gguf_type(quant)
    dst = Path(dst)
    if dst.is_dir():
        raise ConfigError("dst", str(dst), "a file path ending in .gguf (this is a directory)")
    if dst.exists() and not overwrite:
        raise ConfigError("dst", str(dst), "a new file path", detail="it exists; pass overwrite=true to replace it")
    if isinstance(model_or_dir, (str, Path)):
        from edgesmith.core.modeling import EdgeForCausalLM

        src = Path(model_or_dir)
        gguf_architecture(read_edge_config(src))  # fails before loading any weights
        model = EdgeForCausalLM.from_pretrained(str(src)).eval()
        if tokenizer is None and (src / "tokenizer.json").is_file():
            tokenizer = src
        name = src.name
    else:
        model, name = model_or_dir, "edgesmith"
    if quant in FLOAT_TYPES:
        return write_gguf(model, dst, quant, tokenizer, name=name)
    with tempfile.TemporaryDirectory(dir=dst.parent if dst.parent.exists() else None) as tmp:
        float_path = write_gguf(model, Path(tmp) / "f32.gguf", "f32", tokenizer, name=name)
        return quantize_gguf(float_path, dst, quant, threads=threads or (os.cpu_count() or 1))
