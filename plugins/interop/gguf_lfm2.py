"""edgesmith -> GGUF for llama.cpp's ``lfm2``: ``short_conv`` and ``gqa`` layers (an LFM2 network).

An edgesmith model of ``short_conv`` and ``gqa`` layers is an LFM2 network (:mod:`.lfm2`), and
llama.cpp runs LFM2 as its ``lfm2`` architecture. The mapping therefore goes through the LFM2
names and lets the ``gguf`` package do the GGUF-specific naming:

- tensor names: LFM2 name (:func:`.lfm2.edge_to_lfm2_name`) -> GGUF name through
  ``gguf.TensorNameMap`` for ``MODEL_ARCH.LFM2`` (``blk.{i}.shortconv.in_proj``,
  ``blk.{i}.attn_q``, ``token_embd_norm`` for the final norm, ...);
- metadata beyond the common keys: per-layer KV heads (0 marks a conv layer, which is how
  llama.cpp tells the layers apart) and ``shortconv.l_cache``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from edgesmith.core.configuration import EdgeConfig

from .lfm2 import LFM2_ATTENTION, ExportError, _conv_settings, edge_config_to_lfm2, edge_to_lfm2_name, export_problems


class LFM2GGUF:
    """The ``lfm2`` mapping of an edgesmith model (see the module docstring)."""

    name = "lfm2"
    accepted = ("layers of short_conv (bias=false, conv_length>=2) and gqa with qk_norm, at least one of each, "
                "as in LFM2")

    def problems(self, config: EdgeConfig) -> list[str]:
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

    def add_metadata(self, writer: Any, config: EdgeConfig) -> None:
        """The lfm2 keys beyond the ones every architecture gets (see ``write_gguf``)."""
        lfm2 = edge_config_to_lfm2(config)
        # Per layer: the KV heads of attention layers, 0 for conv layers (how llama.cpp tells them apart).
        writer.add_head_count_kv([config.num_key_value_heads if kind == LFM2_ATTENTION else 0
                                  for kind in lfm2.layer_types])
        writer.add_shortconv_l_cache(int(lfm2.conv_L_cache))

    def tensors(self, model: torch.nn.Module) -> Iterator[tuple[str, np.ndarray]]:
        """(GGUF name, float32 array) of every tensor, in llama.cpp's layout."""
        import gguf

        lfm2_config = edge_config_to_lfm2(model.config)
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

    def stays_f32(self, name: str, array: np.ndarray) -> bool:
        """Whether ``name`` is written as float32 whatever the file type."""
        # llama.cpp's norm and ssm_conv kernels take f32 operands; they are tiny anyway.
        return array.ndim <= 1 or name.endswith("_norm.weight") or name.endswith("shortconv.conv.weight")


LFM2_GGUF = LFM2GGUF()
