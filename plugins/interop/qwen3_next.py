"""Qwen3-Next -> edgesmith: a transformers ``Qwen3NextGatedDeltaNet`` layer's weights into ``gated_deltanet``.

The operator file keeps to the layer; this mapping of another model's parameter layout lives
with the other conversions. The tests hold the two layers, given the same weights, to the
same outputs.
"""

from __future__ import annotations

import torch

from edgesmith.core.errors import CheckpointError
from edgesmith.plugins.operators.gated_deltanet import GatedDeltaNet


def load_qwen3_next_weights(layer: GatedDeltaNet, qwen_state_dict: dict[str, torch.Tensor]) -> None:
    """Copies a transformers ``Qwen3NextGatedDeltaNet`` state dict into ``layer``.

    Qwen3-Next fuses its projections per key head: ``in_proj_qkvz`` rows are grouped as
    [q_h, k_h, v_h (group*Dv), z_h (group*Dv)] for each key head h, and ``in_proj_ba`` as
    [b_h (group), a_h (group)]; edgesmith's ``in_proj`` is [q | k | v | z | b | a], each
    head-major. The conv, A_log, dt_bias, norm and out_proj map one to one.
    """
    hidden = layer.dims.hidden_size
    Hk, group, Dk, Dv = layer.num_heads, layer.num_v_heads // layer.num_heads, layer.head_k_dim, layer.head_v_dim
    expected = {
        "in_proj_qkvz.weight": (2 * layer.key_dim + 2 * layer.value_dim, hidden),
        "in_proj_ba.weight": (2 * layer.num_v_heads, hidden),
        "conv1d.weight": (layer.conv_dim, 1, layer.conv_length),
        "A_log": (layer.num_v_heads,),
        "dt_bias": (layer.num_v_heads,),
        "norm.weight": (Dv,),
        "out_proj.weight": (hidden, layer.value_dim),
    }
    problems = [f"missing {n}" for n in expected if n not in qwen_state_dict]
    problems += [f"unexpected {n}" for n in qwen_state_dict if n not in expected]
    problems += [
        f"{n}: shape {tuple(qwen_state_dict[n].shape)}, expected {shape}"
        for n, shape in expected.items() if n in qwen_state_dict and tuple(qwen_state_dict[n].shape) != shape
    ]
    if problems:
        raise CheckpointError("Qwen3-Next gated DeltaNet weights do not fit this layer: " + "; ".join(problems))
    qkvz = qwen_state_dict["in_proj_qkvz.weight"].reshape(Hk, 2 * Dk + 2 * group * Dv, hidden)
    q, k, v, z = qkvz.split([Dk, Dk, group * Dv, group * Dv], dim=1)
    ba = qwen_state_dict["in_proj_ba.weight"].reshape(Hk, 2 * group, hidden)
    b, a = ba.split([group, group], dim=1)
    fused = torch.cat([t.reshape(-1, hidden) for t in (q, k, v, z, b, a)], dim=0)
    with torch.no_grad():
        layer.in_proj.weight.copy_(fused)
        layer.conv_weight.copy_(qwen_state_dict["conv1d.weight"].squeeze(1))
        layer.A_log.copy_(qwen_state_dict["A_log"])
        layer.dt_bias.copy_(qwen_state_dict["dt_bias"])
        layer.norm_weight.copy_(qwen_state_dict["norm.weight"])
        layer.out_proj.weight.copy_(qwen_state_dict["out_proj.weight"])
