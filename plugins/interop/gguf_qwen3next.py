"""edgesmith -> GGUF for llama.cpp's ``qwen3next``: ``gated_deltanet`` and ``gqa`` layers, exactly.

llama.cpp's ``qwen3next`` (``src/models/qwen3next.cpp``) is a stack of pre-norm blocks as
edgesmith's is: ``attn_norm`` -> token mixer -> residual -> ``post_attention_norm`` -> FFN ->
residual, then ``output_norm`` and the head (``token_embd`` when ``output`` is absent). Which
layers are recurrent is the per-layer ``attention.recurrent_layers`` array. What each part
becomes, and why the arithmetic is edgesmith's:

- ``gated_deltanet`` -> a gated DeltaNet layer. edgesmith's ``in_proj`` rows [q | k | v | z | b
  | a] (each head-major) split into ``attn_qkv`` [q | k | v] and ``attn_gate`` (z), the layout
  of llama.cpp's fused path; ``ssm_ba`` holds b and a grouped per key head ([b | a] of that key
  head's value heads), as llama.cpp splits it. Conv kernel -> ``ssm_conv1d``, ``dt_bias`` ->
  ``ssm_dt.bias``, ``A_log`` -> ``ssm_a = -exp(A_log)`` (llama.cpp multiplies softplus(a +
  dt_bias) by it), gated-norm weight -> ``ssm_norm``, ``out_proj`` -> ``ssm_out``. Both scale q
  by head_k_dim^-1/2 and let value head j use key head j // (num_v_heads / num_heads).
  llama.cpp L2-normalizes q and k as ``x / sqrt(sum x^2 + eps)`` with eps = the model's RMS
  epsilon, and the gated output norm uses that epsilon too; edgesmith uses
  :func:`~edgesmith.plugins.operators.gated_deltanet.l2_normalize`'s 1e-6 and the layer's
  ``norm_eps``. So the two agree only where those equal the model's ``norm_eps`` (checked).
- ``gqa`` -> full attention, whose Qwen3-Next form has an output gate: ``attn_q`` gives each
  head [query | gate] and the attention output is multiplied by sigmoid(gate). edgesmith's
  attention has no gate, so the gate rows are zero and ``attn_q.bias`` puts
  :data:`OPEN_GATE` on them: sigmoid(40) is exactly 1.0 in float32 (1 + e^-40 rounds to 1), at
  every weight type since the bias stays float32. q/k RMSNorm (required by llama.cpp), NEOX RoPE
  (edgesmith's rotate-half) over the whole head (``rope.dimension_count = head_dim``; Qwen3-Next
  itself rotates a quarter).
- SwiGLU FFN -> a mixture of experts, because llama.cpp's qwen3next accepts nothing else: it
  refuses ``expert_count = 0`` and requires the router, the expert and the shared-expert tensors,
  so its dense-FFN branch cannot be reached from a file. The SwiGLU is the single routed expert
  (``expert_count = expert_used_count = 1``): llama.cpp takes the softmax of the one router logit
  and then divides the selected weights by their sum, and w / w is exactly 1 whatever the router
  weights (written as zeros). The shared expert cannot be left out; it is
  :data:`SHARED_EXPERT_WIDTH` wide with zero weights, so it adds exactly 0 whatever its gate.
- Norm weights are written as they are. Qwen3-Next checkpoints store their RMSNorm weights
  zero-centred (the norm multiplies by 1 + w); llama.cpp's converter adds the 1 and llama.cpp
  multiplies by the stored value, which is what edgesmith's weights already are.

Cost in llama.cpp beyond edgesmith's own model: the gate rows double each attention layer's q
projection, the FFN runs as an expert product (``mul_mat_id``) plus the small shared expert.
The numbers are unchanged; a latency measured on such a file includes that work.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from edgesmith.core.configuration import EdgeConfig
from edgesmith.plugins.operators.gated_deltanet import l2_normalize

from .lfm2 import ExportError

#: the gate logit that makes Qwen3-Next's attention output gate exactly 1 (see the module docstring)
OPEN_GATE = 40.0
#: width of the shared expert llama.cpp requires (all zeros; 32 is one block of q8_0/q4_0)
SHARED_EXPERT_WIDTH = 32
#: the epsilon edgesmith's gated DeltaNet L2-normalizes q and k with
L2_NORM_EPS = inspect.signature(l2_normalize).parameters["eps"].default

WHY_NOT = {
    "short_conv": "llama.cpp's qwen3next layers are gated DeltaNet and full attention; it has no short convolution",
    "swa": "qwen3next attention is global; a sliding window would silently change the model",
    "linear_attn": "qwen3next's recurrent layers are gated DeltaNet (decay and delta rule); plain linear "
                   "attention has neither",
}


def _gated_deltanet_options(config: EdgeConfig) -> dict[int, Any]:
    """Layer index -> resolved options of every ``gated_deltanet`` layer."""
    return {i: options.resolved(config.dims)
            for i, ((name, _), (_, options)) in enumerate(zip(config.operator_specs(), config.resolve_operators()))
            if name == "gated_deltanet"}


def _ssm_sizes(options: Any) -> tuple[int, int, int, int, int]:
    return (options.num_heads, options.num_v_heads, options.head_k_dim, options.head_v_dim, options.conv_length)


class Qwen3NextGGUF:
    """The ``qwen3next`` mapping of an edgesmith model (see the module docstring)."""

    name = "qwen3next"
    accepted = ("layers of gated_deltanet (head_k_dim = head_v_dim, the same sizes in every such layer, "
                f"norm_eps = the model's) and gqa with qk_norm, with model.norm_eps = {L2_NORM_EPS:g} "
                "when there is a gated_deltanet layer")

    def problems(self, config: EdgeConfig) -> list[str]:
        """Why llama.cpp's ``qwen3next`` cannot run ``config`` exactly, one line per problem."""
        problems = []
        deltanets: dict[int, Any] = {}
        for i, ((name, _), (_, options)) in enumerate(zip(config.operator_specs(), config.resolve_operators())):
            if name == "gated_deltanet":
                deltanets[i] = options.resolved(config.dims)
            elif name == "gqa":
                if not options.qk_norm:
                    problems.append(f"layer {i} is gqa with qk_norm=false: qwen3next attention always normalizes "
                                    "queries and keys per head (attn_q_norm, attn_k_norm are required)")
            else:
                why = WHY_NOT.get(name, "qwen3next layers are only gated DeltaNet and full attention")
                problems.append(f"layer {i} is {name}: {why}")
        sizes: dict[tuple[int, ...], list[int]] = {}
        for i, o in deltanets.items():
            sizes.setdefault(_ssm_sizes(o), []).append(i)
            if o.head_k_dim != o.head_v_dim:
                problems.append(f"layer {i} is gated_deltanet with head_k_dim={o.head_k_dim} != head_v_dim="
                                f"{o.head_v_dim}: qwen3next has one head size (ssm.state_size) for keys and values")
            if o.norm_eps != config.norm_eps:
                problems.append(f"layer {i} is gated_deltanet with norm_eps={o.norm_eps:g}, the model's is "
                                f"{config.norm_eps:g}: qwen3next's gated output norm uses the model's RMS epsilon")
        for needed in ("gated_deltanet", "gqa"):
            if needed not in {name for name, _ in config.operator_specs()}:
                # Measured: llama.cpp (llama-cpp-python 0.3.36) aborts in the first llama_decode
                # (GGML_ASSERT(buffer) in ggml-backend.cpp) when one half of the hybrid memory is empty.
                problems.append(f"no layer is {needed}: llama.cpp's qwen3next needs at least one gated_deltanet "
                                "and one gqa layer (its hybrid cache fails when one part is empty)")
        if len(sizes) > 1:
            groups = "; ".join(f"num_heads={h}, num_v_heads={hv}, head_k_dim={dk}, head_v_dim={dv}, conv_length={c} "
                               f"at layers {idx}" for (h, hv, dk, dv, c), idx in sorted(sizes.items()))
            problems.append(f"gated_deltanet layers differ ({groups}): qwen3next has one set of ssm sizes for all "
                            "its recurrent layers")
        if deltanets and config.norm_eps != L2_NORM_EPS:
            problems.append(f"norm_eps={config.norm_eps:g} with gated_deltanet layers {sorted(deltanets)}: qwen3next "
                            f"L2-normalizes q and k with the model's RMS epsilon, edgesmith with {L2_NORM_EPS:g} "
                            f"(set model.norm_eps={L2_NORM_EPS:g})")
        return problems

    def add_metadata(self, writer: Any, config: EdgeConfig) -> None:
        """The qwen3next keys beyond the ones every architecture gets (see ``write_gguf``)."""
        deltanets = _gated_deltanet_options(config)
        writer.add_head_count_kv(config.num_key_value_heads)
        writer.add_rope_dimension_count(config.head_dim)
        writer.add_expert_count(1)
        writer.add_expert_used_count(1)
        writer.add_expert_feed_forward_length(config.intermediate_size)
        writer.add_expert_shared_feed_forward_length(SHARED_EXPERT_WIDTH)
        heads, v_heads, k_dim, v_dim, conv_length = _ssm_sizes(next(iter(deltanets.values())))  # one set (checked)
        writer.add_ssm_conv_kernel(conv_length)
        writer.add_ssm_state_size(k_dim)
        writer.add_ssm_group_count(heads)
        writer.add_ssm_time_step_rank(v_heads)
        writer.add_ssm_inner_size(v_heads * v_dim)
        # gguf 0.19 has no add_recurrent_layers; the key is llama.cpp's LLM_KV_ATTENTION_RECURRENT_LAYERS.
        writer.add_array(f"{self.name}.attention.recurrent_layers",
                         [i in deltanets for i in range(config.num_hidden_layers)])

    def tensors(self, model: torch.nn.Module) -> Iterator[tuple[str, np.ndarray]]:
        """(GGUF name, float32 array) of every tensor llama.cpp's qwen3next loads, in its layout."""
        import gguf

        config = model.config
        state = {n: t.detach().to(torch.float32) for n, t in model.state_dict().items()}
        used: set[str] = set()

        def take(name: str) -> torch.Tensor:
            used.add(name)
            return state[name]

        def gguf_name(kind: str, bid: int | None = None, suffix: str = ".weight") -> str:
            tensor = gguf.MODEL_TENSOR[kind]
            if tensor not in gguf.MODEL_TENSORS[gguf.MODEL_ARCH.QWEN3NEXT]:
                raise ExportError(f"the gguf package lists no {kind} tensor for qwen3next")
            return gguf.TENSOR_NAMES[tensor].format(bid=bid) + suffix

        hidden = config.hidden_size
        yield gguf_name("TOKEN_EMBD"), take("model.embed_tokens.weight").numpy()
        yield gguf_name("OUTPUT_NORM"), take("model.norm.weight").numpy()
        if config.tie_word_embeddings:
            used.add("lm_head.weight")  # llama.cpp reuses token_embd as the output when output.weight is absent
        else:
            yield gguf_name("OUTPUT"), take("lm_head.weight").numpy()
        deltanets = _gated_deltanet_options(config)
        for i in range(config.num_hidden_layers):
            block = f"model.layers.{i}."
            op = block + "operator."
            yield gguf_name("ATTN_NORM", i), take(block + "operator_norm.weight").numpy()
            yield gguf_name("ATTN_POST_NORM", i), take(block + "ffn_norm.weight").numpy()
            if i in deltanets:
                o = deltanets[i]
                key_dim, value_dim = o.num_heads * o.head_k_dim, o.num_v_heads * o.head_v_dim
                qkv, z, b, a = take(op + "in_proj.weight").split(
                    [2 * key_dim + value_dim, value_dim, o.num_v_heads, o.num_v_heads])
                group = o.num_v_heads // o.num_heads
                ba = torch.cat([b.view(o.num_heads, group, hidden), a.view(o.num_heads, group, hidden)], dim=1)
                yield gguf_name("ATTN_QKV", i), qkv.numpy()
                yield gguf_name("ATTN_GATE", i), z.numpy()
                yield gguf_name("SSM_BETA_ALPHA", i), ba.reshape(2 * o.num_v_heads, hidden).numpy()
                yield gguf_name("SSM_CONV1D", i), take(op + "conv_weight").numpy()
                yield gguf_name("SSM_DT", i, ".bias"), take(op + "dt_bias").numpy()
                yield gguf_name("SSM_A", i, ""), (-take(op + "A_log").exp()).numpy()
                yield gguf_name("SSM_NORM", i), take(op + "norm_weight").numpy()
                yield gguf_name("SSM_OUT", i), take(op + "out_proj.weight").numpy()
            else:
                heads, dim = config.num_attention_heads, config.head_dim
                # per head [query rows | gate rows]: gate weights 0 and bias OPEN_GATE -> sigmoid = 1
                query = take(op + "q_proj.weight").view(heads, dim, hidden)
                q_and_gate = torch.cat([query, torch.zeros_like(query)], dim=1).reshape(2 * heads * dim, hidden)
                bias = torch.cat([torch.zeros(heads, dim), torch.full((heads, dim), OPEN_GATE)], dim=1)
                yield gguf_name("ATTN_Q", i), q_and_gate.numpy()
                yield gguf_name("ATTN_Q", i, ".bias"), bias.reshape(-1).numpy()
                yield gguf_name("ATTN_K", i), take(op + "k_proj.weight").numpy()
                yield gguf_name("ATTN_V", i), take(op + "v_proj.weight").numpy()
                yield gguf_name("ATTN_OUT", i), take(op + "out_proj.weight").numpy()
                yield gguf_name("ATTN_Q_NORM", i), take(op + "q_layernorm.weight").numpy()
                yield gguf_name("ATTN_K_NORM", i), take(op + "k_layernorm.weight").numpy()
            # the SwiGLU as the one routed expert (w1: gate, w3: up, w2: down); router and shared expert zero
            ffn = block + "feed_forward."
            yield gguf_name("FFN_GATE_INP", i), np.zeros((1, hidden), dtype=np.float32)
            yield gguf_name("FFN_GATE_EXP", i), take(ffn + "w1.weight")[None].numpy()
            yield gguf_name("FFN_UP_EXP", i), take(ffn + "w3.weight")[None].numpy()
            yield gguf_name("FFN_DOWN_EXP", i), take(ffn + "w2.weight")[None].numpy()
            yield gguf_name("FFN_GATE_INP_SHEXP", i), np.zeros(hidden, dtype=np.float32)
            yield gguf_name("FFN_GATE_SHEXP", i), np.zeros((SHARED_EXPERT_WIDTH, hidden), dtype=np.float32)
            yield gguf_name("FFN_UP_SHEXP", i), np.zeros((SHARED_EXPERT_WIDTH, hidden), dtype=np.float32)
            yield gguf_name("FFN_DOWN_SHEXP", i), np.zeros((hidden, SHARED_EXPERT_WIDTH), dtype=np.float32)
        left = sorted(set(state) - used)
        if left:
            raise ExportError(f"tensors {left} have no place in llama.cpp's qwen3next")

    def stays_f32(self, name: str, array: np.ndarray) -> bool:
        """Whether ``name`` is written as float32 whatever the file type (as llama.cpp's converter does)."""
        # 1-D tensors, norms, biases, ssm_a, the conv kernel and the routers: llama.cpp takes them in f32
        return (array.ndim <= 1 or name.endswith("_norm.weight") or not name.endswith(".weight")
                or ".ssm_conv1d." in name or ".ffn_gate_inp" in name)


QWEN3NEXT_GGUF = Qwen3NextGGUF()
