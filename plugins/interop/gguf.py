"""edgesmith -> GGUF: the file llama.cpp runs, in float or llama.cpp-quantized types.

An edgesmith model of ``short_conv`` and ``gqa`` layers is an LFM2 network (:mod:`.lfm2`), and
llama.cpp runs LFM2 as its ``lfm2`` architecture. The export therefore goes through the LFM2
names and lets the ``gguf`` package do every GGUF-specific step:

- tensor names: LFM2 name (:func:`.lfm2.edge_to_lfm2_name`) -> GGUF name through
  ``gguf.TensorNameMap`` for ``MODEL_ARCH.LFM2`` (``blk.{i}.shortconv.in_proj``,
  ``blk.{i}.attn_q``, ``token_embd_norm`` for the final norm, ...);
- metadata: ``gguf.GGUFWriter``'s ``add_*`` calls for the keys llama.cpp's ``lfm2`` loader
  reads (block count, widths, heads, per-layer KV heads (0 marks a conv layer),
  ``shortconv.l_cache``, RMS epsilon, RoPE base, vocabulary size);
- tokenizer: the byte-level BPE's tokens and types plus ``gguf.SpecialVocab`` (merges,
  special token ids, chat template) from the saved tokenizer files;
- float types (f32, f16, bf16) are written directly, norms and the conv kernels in f32 as
  llama.cpp expects; quantized types (q8_0, q4_0, q4_k_m, ...) are made from an f32 file by
  llama.cpp's own quantizer (``llama_model_quantize`` through llama-cpp-python).

A model llama.cpp cannot run fails with :class:`ExportError` naming each offending layer.

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
from typing import Any

import numpy as np
import torch

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import ConfigError

from .lfm2 import (ExportError, _conv_settings, edge_config_to_lfm2, edge_to_lfm2_name, export_problems,
                   read_edge_config)

GGUF_ARCH = "lfm2"
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


def gguf_export_problems(config: EdgeConfig) -> list[str]:
    """Why llama.cpp's ``lfm2`` cannot run ``config``, one line per problem (empty: it can)."""
    problems = export_problems(config)
    ops = {name for name, _ in config.operator_specs()}
    for needed in ("short_conv", "gqa"):
        if needed not in ops:
            # Measured: llama.cpp (llama-cpp-python 0.3.36) aborts in the first llama_decode
            # (GGML_ASSERT(buffer) in ggml-backend.cpp) when one half of lfm2's hybrid cache is empty.
            problems.append(f"no layer is {needed}: llama.cpp's lfm2 needs at least one short_conv and one "
                            f"gqa layer (its hybrid cache fails when one part is empty)")
    for (length, bias), layers in sorted(_conv_settings(config).items()):
        if bias:
            problems.append(f"short_conv layers {layers} have bias=true: llama.cpp's LFM2 short "
                            "convolution has no bias")
        if length < 2:
            problems.append(f"short_conv layers {layers} have conv_length={length}: llama.cpp's LFM2 "
                            "needs a kernel of at least 2 (it keeps length-1 past inputs)")
    return problems


def check_exportable(config: EdgeConfig) -> None:
    """Raises :class:`ExportError` naming every layer llama.cpp's ``lfm2`` cannot run."""
    problems = gguf_export_problems(config)
    if problems:
        raise ExportError("cannot export to GGUF (llama.cpp architecture lfm2; accepted: layers of "
                          "short_conv (bias=false, conv_length>=2) and gqa with qk_norm, as in LFM2):\n  - "
                          + "\n  - ".join(problems))


def _gguf_tensors(model: torch.nn.Module, lfm2_config: Any) -> Iterator[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) of every tensor, in llama.cpp's layout."""
    import gguf

    layer_types = list(lfm2_config.layer_types)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LFM2, len(layer_types))
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and lfm2_config.tie_word_embeddings:
            continue  # llama.cpp reuses token_embd as the output when output.weight is absent
        lfm2_name = edge_to_lfm2_name(name, layer_types)
        gguf_name = names.get_name(lfm2_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ExportError(f"tensor {name} (LFM2 name {lfm2_name}) has no GGUF name in llama.cpp's lfm2")
        data = tensor.detach().to(torch.float32)
        if gguf_name.endswith("shortconv.conv.weight"):
            data = data.squeeze(1)  # (hidden, 1, L) depthwise kernel -> llama.cpp's (hidden, L)
        yield gguf_name, data.numpy()


def _stays_f32(name: str, array: np.ndarray) -> bool:
    # llama.cpp's norm and ssm_conv kernels take f32 operands; they are tiny anyway.
    return array.ndim <= 1 or name.endswith("_norm.weight") or name.endswith("shortconv.conv.weight")


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
    """Writes ``model`` (an :class:`EdgeForCausalLM`) as a float GGUF (``dtype``: f32, f16, bf16).

    ``tokenizer``: a saved tokenizer directory or a transformers tokenizer (it is written into
    the file); None writes a placeholder vocabulary of ``vocab_size`` entries.
    """
    import gguf

    if dtype not in FLOAT_TYPES:
        raise ConfigError("dtype", dtype, f"one of {', '.join(FLOAT_TYPES)} (quantize with quantize_gguf)")
    config = model.config
    check_exportable(config)
    lfm2 = edge_config_to_lfm2(config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(path), GGUF_ARCH)
    writer.add_name(name)
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "bf16": gguf.LlamaFileType.MOSTLY_BF16}[dtype])
    writer.add_block_count(config.num_hidden_layers)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    # Per layer: the KV heads of attention layers, 0 for conv layers (how llama.cpp tells them apart).
    writer.add_head_count_kv([config.num_key_value_heads if kind == "full_attention" else 0
                              for kind in lfm2.layer_types])
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(float(config.norm_eps))
    writer.add_vocab_size(config.vocab_size)
    writer.add_shortconv_l_cache(int(lfm2.conv_L_cache))

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
    for tensor_name, array in _gguf_tensors(model, lfm2):
        if _stays_f32(tensor_name, array) or dtype == "f32":
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
        check_exportable(read_edge_config(src))  # before loading any weights
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
