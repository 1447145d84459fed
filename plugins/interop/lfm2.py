"""LFM2 <-> edgesmith: configs and weights in both directions.

transformers' ``Lfm2ForCausalLM`` is a stack of pre-norm blocks whose token mixer is either a
gated short convolution (``layer_types[i] == "conv"``) or full attention with per-head q/k
RMSNorm (``"full_attention"``), each followed by a SwiGLU feed-forward; a final RMSNorm
(named ``embedding_norm``) precedes the tied head. That is exactly an edgesmith model whose
layers are ``short_conv`` (``conv_length = conv_L_cache``) and ``gqa``, and the operator
plugins keep LFM2's parameter names, so the mapping is a rename of the block prefixes:

=====================================================  ============================================
LFM2                                                   edgesmith
=====================================================  ============================================
``model.embed_tokens.weight``                          ``model.embed_tokens.weight``
``model.layers.{i}.conv.{in_proj,conv,out_proj}.*``    ``model.layers.{i}.operator.{same}.*``
``model.layers.{i}.self_attn.{q,k,v,out}_proj.*``      ``model.layers.{i}.operator.{same}.*``
``model.layers.{i}.self_attn.{q,k}_layernorm.*``       ``model.layers.{i}.operator.{same}.*``
``model.layers.{i}.{operator_norm,ffn_norm}.*``        ``model.layers.{i}.{same}.*``
``model.layers.{i}.feed_forward.{w1,w2,w3}.*``         ``model.layers.{i}.feed_forward.{same}.*``
``model.embedding_norm.weight`` (the *final* norm)     ``model.norm.weight``
``lm_head.weight`` (only when untied)                  ``lm_head.weight``
=====================================================  ============================================

LFM2 derives its FFN width from ``intermediate_size`` (``block_auto_adjust_ff_dim``: 2/3 of
it, times ``block_ffn_dim_multiplier``, rounded up to ``block_multiple_of``); edgesmith
stores the width itself, and an export writes it with ``block_auto_adjust_ff_dim=false``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import CheckpointError, ConfigError, EdgesmithError

LFM2_CONV, LFM2_ATTENTION = "conv", "full_attention"
# What an edgesmith layer must be for LFM2 to represent it, and why the others cannot be.
EXPORTABLE = {"short_conv": LFM2_CONV, "gqa": LFM2_ATTENTION}
WHY_NOT = {
    "swa": "LFM2 attention is global; a sliding window would silently change the model",
    "gated_deltanet": "LFM2 has no recurrent (DeltaNet) layer type",
    "linear_attn": "LFM2 has no linear-attention layer type",
}
# Edgesmith's names for the few modules LFM2 names differently.
EDGE_MIXER = "operator"
EDGE_FINAL_NORM = "model.norm"
LFM2_MIXER = {LFM2_CONV: "conv", LFM2_ATTENTION: "self_attn"}
LFM2_FINAL_NORM = "model.embedding_norm"
# Files a tokenizer may consist of; carried across a conversion when present.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "tokenizer.model", "vocab.json", "merges.txt", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "generation_config.json")


class ExportError(EdgesmithError, ValueError):
    """A model cannot be written in another format: names the offending layers and why."""


# -- configs ------------------------------------------------------------------------------

def lfm2_ffn_width(cfg: Any) -> int:
    """The FFN width transformers' ``Lfm2MLP`` builds from an ``Lfm2Config``."""
    width = cfg.intermediate_size
    if cfg.block_auto_adjust_ff_dim:
        width = int(2 * width / 3)
        if cfg.block_ffn_dim_multiplier is not None:
            width = int(cfg.block_ffn_dim_multiplier * width)
            width = cfg.block_multiple_of * ((width + cfg.block_multiple_of - 1) // cfg.block_multiple_of)
    return width


def _lfm2_head_dim(cfg: Any) -> int:
    return getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads


def lfm2_config_to_edge(cfg: Any) -> EdgeConfig:
    """An :class:`EdgeConfig` describing the same network as the ``Lfm2Config`` ``cfg``."""
    rope = dict(getattr(cfg, "rope_parameters", None) or {})
    rope_type = rope.get("rope_type", "default")
    if rope_type != "default":
        raise ConfigError("rope_parameters.rope_type", rope_type,
                          "'default' (edgesmith's gqa implements plain RoPE only)")
    layers = []
    for i, kind in enumerate(cfg.layer_types):
        if kind == LFM2_CONV:
            layers.append({"op": "short_conv", "conv_length": int(cfg.conv_L_cache),
                           "bias": bool(cfg.conv_bias)})
        elif kind == LFM2_ATTENTION:
            layers.append({"op": "gqa"})
        else:
            raise ConfigError(f"layer_types[{i}]", kind, f"'{LFM2_CONV}' or '{LFM2_ATTENTION}'")
    extra = {}
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        extra[name] = getattr(cfg, name, None)
    return EdgeConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=lfm2_ffn_width(cfg),
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=_lfm2_head_dim(cfg),
        layers=layers,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=float(rope.get("rope_theta", getattr(cfg, "default_theta", 1_000_000.0))),
        norm_eps=cfg.norm_eps,
        initializer_range=cfg.initializer_range,
        tie_word_embeddings=bool(cfg.tie_word_embeddings),
        **extra,
    )


def _conv_settings(config: EdgeConfig) -> dict[tuple[int, bool], list[int]]:
    """``(conv_length, bias) -> layer indices`` of the ``short_conv`` layers (validated options)."""
    from edgesmith.core.plugin_manager import get_plugin_manager

    settings: dict[tuple[int, bool], list[int]] = {}
    for i, (name, raw) in enumerate(config.operator_specs()):
        if name == "short_conv":
            cls = get_plugin_manager().get("operator", name, key=f"model.layers[{i}].op")
            options = cls.parse_options(raw, config.dims, key=f"model.layers[{i}]")
            key = (int(options.conv_length), bool(getattr(options, "bias", False)))
            settings.setdefault(key, []).append(i)
    return settings


def export_problems(config: EdgeConfig) -> list[str]:
    """Why ``config`` cannot be written as LFM2, one line per problem (empty: it can)."""
    from edgesmith.core.plugin_manager import get_plugin_manager

    problems: list[str] = []
    plugins = get_plugin_manager()
    conv_options = _conv_settings(config)
    for i, (name, raw) in enumerate(config.operator_specs()):
        if name not in EXPORTABLE:
            why = WHY_NOT.get(name, "LFM2 layers are only gated short convolutions and full attention")
            problems.append(f"layer {i} is {name}: {why}")
            continue
        cls = plugins.get("operator", name, key=f"model.layers[{i}].op")
        options = cls.parse_options(raw, config.dims, key=f"model.layers[{i}]")
        if name == "gqa" and not getattr(options, "qk_norm", True):
            problems.append(f"layer {i} is gqa with qk_norm=false: LFM2 attention always "
                            "normalizes queries and keys per head")
    if len(conv_options) > 1:
        groups = "; ".join(f"conv_length={length}, bias={str(bias).lower()} at layers {idx}"
                           for (length, bias), idx in sorted(conv_options.items()))
        problems.append(f"short_conv layers differ ({groups}): LFM2 has one conv_L_cache and one "
                        "conv_bias for all its conv layers")
    if config.head_dim * config.num_attention_heads != config.hidden_size:
        problems.append(f"head_dim={config.head_dim} x num_attention_heads={config.num_attention_heads} "
                        f"!= hidden_size={config.hidden_size}: LFM2 derives head_dim as "
                        "hidden_size // num_attention_heads")
    return problems


def edge_config_to_lfm2(config: EdgeConfig) -> Any:
    """The ``Lfm2Config`` of an edgesmith model made of ``short_conv`` and ``gqa`` layers only.

    Raises :class:`ExportError` naming every layer (index and operator) LFM2 cannot hold.
    """
    from transformers import Lfm2Config

    problems = export_problems(config)
    if problems:
        raise ExportError("cannot export to LFM2 format (accepted: layers of short_conv and gqa "
                          "only, as in LFM2):\n  - " + "\n  - ".join(problems))
    specs = config.operator_specs()
    # One setting for all conv layers (checked above); a model without convs keeps LFM2's.
    conv_length, conv_bias = next(iter(_conv_settings(config)), (3, False))
    layer_types = [EXPORTABLE[name] for name, _ in specs]
    return Lfm2Config(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        block_auto_adjust_ff_dim=False,  # the width is stored as is
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        norm_eps=config.norm_eps,
        tie_word_embeddings=bool(config.tie_word_embeddings),
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
        conv_bias=conv_bias,
        conv_L_cache=conv_length,
        layer_types=layer_types,
        full_attn_idxs=[i for i, kind in enumerate(layer_types) if kind == LFM2_ATTENTION],
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
    )


# -- tensor names ---------------------------------------------------------------------------

_LFM2_BLOCK = re.compile(r"^model\.layers\.(\d+)\.(conv|self_attn)\.(.+)$")
_EDGE_BLOCK = re.compile(rf"^model\.layers\.(\d+)\.{EDGE_MIXER}\.(.+)$")


def lfm2_to_edge_name(name: str) -> str:
    """The edgesmith name of an LFM2 tensor (names without a rule map to themselves)."""
    if match := _LFM2_BLOCK.match(name):
        return f"model.layers.{match.group(1)}.{EDGE_MIXER}.{match.group(3)}"
    if name.startswith(LFM2_FINAL_NORM + "."):
        return EDGE_FINAL_NORM + name[len(LFM2_FINAL_NORM):]
    return name


def edge_to_lfm2_name(name: str, layer_types: list[str]) -> str:
    """The LFM2 name of an edgesmith tensor, given LFM2's ``layer_types``."""
    if match := _EDGE_BLOCK.match(name):
        i = int(match.group(1))
        return f"model.layers.{i}.{LFM2_MIXER[layer_types[i]]}.{match.group(2)}"
    if name.startswith(EDGE_FINAL_NORM + "."):
        return LFM2_FINAL_NORM + name[len(EDGE_FINAL_NORM):]
    return name


def _expected_tensors(model_cls: type, config: Any) -> dict[str, torch.Size]:
    """Names and shapes a model of ``config`` holds, built on the meta device (no memory)."""
    with torch.device("meta"):
        model = model_cls(config)
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        shapes.pop("lm_head.weight", None)  # the head is the embedding; checkpoints omit it
    return shapes


def check_tensors(found: dict[str, torch.Size], expected: dict[str, torch.Size], source: str) -> None:
    """Raises :class:`CheckpointError` naming all missing, extra and mis-shaped tensors."""
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    misshaped = sorted(n for n in set(found) & set(expected) if tuple(found[n]) != tuple(expected[n]))
    if not (missing or extra or misshaped):
        return
    lines = [f"checkpoint {source} does not match its config:"]
    if missing:
        lines.append(f"  missing tensors ({len(missing)}): {', '.join(missing)}")
    if extra:
        lines.append(f"  unexpected tensors ({len(extra)}): {', '.join(extra)}")
    for name in misshaped:
        lines.append(f"  mis-shaped tensor {name}: {tuple(found[name])}, expected {tuple(expected[name])}")
    raise CheckpointError("\n".join(lines))


# -- reading and writing directories --------------------------------------------------------

def _read_safetensors(src: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(src.glob("*.safetensors"))
    if not files:
        raise CheckpointError(f"no *.safetensors file in {src}; accepted: a transformers LFM2 "
                              "directory with config.json and safetensors weights")
    tensors: dict[str, torch.Tensor] = {}
    for file in files:
        for name, tensor in load_file(str(file)).items():
            if name in tensors:
                raise CheckpointError(f"tensor {name} appears in more than one file of {src}")
            tensors[name] = tensor
    return tensors


def _read_lfm2_config(src: Path) -> Any:
    from transformers import Lfm2Config

    config_file = src / "config.json"
    if not config_file.is_file():
        raise CheckpointError(f"no config.json in {src}; accepted: a transformers LFM2 directory")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type != "lfm2":
        raise CheckpointError(f"{config_file} has model_type={model_type!r}; accepted: 'lfm2'")
    return Lfm2Config.from_pretrained(str(src))


def copy_tokenizer_files(src: Path, dst: Path) -> list[str]:
    """Copies the tokenizer (and generation config) files ``src`` has into ``dst``."""
    copied = []
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
            copied.append(name)
    return copied


def _floating_dtype(tensors: dict[str, torch.Tensor]) -> torch.dtype:
    dtypes = {t.dtype for t in tensors.values() if t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else torch.float32


def read_edge_config(src: Path) -> EdgeConfig:
    """The config of the edgesmith model directory ``src`` (before any weights are read)."""
    if not (src / "config.json").is_file():
        raise ConfigError("src", str(src), "an edgesmith model directory (config.json + safetensors)")
    model_type = json.loads((src / "config.json").read_text()).get("model_type")
    if model_type != EdgeConfig.model_type:
        raise ConfigError("src", str(src), f"an edgesmith model directory (model_type "
                          f"'{EdgeConfig.model_type}'; this one has {model_type!r})")
    return EdgeConfig.from_pretrained(str(src))


def _check_dst(dst: Path, overwrite: bool) -> None:
    """Refuses a destination whose contents would be overwritten (checked before any work)."""
    if dst.exists() and not dst.is_dir():
        raise ConfigError("dst", str(dst), "a directory path (this is a file)")
    if dst.is_dir() and any(dst.iterdir()) and not overwrite:
        raise ConfigError("dst", str(dst), "an empty or new directory",
                          detail="it is not empty; pass overwrite=true to write into it anyway")


def import_lfm2(src_dir_or_model: Any, dst_dir: str | Path | None = None, overwrite: bool = False):
    """An :class:`EdgeForCausalLM` with the weights of an LFM2 checkpoint.

    ``src_dir_or_model`` is a transformers LFM2 directory (config.json + safetensors) or an
    ``Lfm2ForCausalLM`` in memory. With ``dst_dir`` the model is also saved there
    (``save_pretrained``), with the source's tokenizer files. A checkpoint whose tensors do
    not match its config fails with :class:`CheckpointError` naming them.
    """
    from edgesmith.core.modeling import EdgeForCausalLM

    if dst_dir is not None:
        _check_dst(Path(dst_dir), overwrite)
    if isinstance(src_dir_or_model, (str, Path)):
        src = Path(src_dir_or_model)
        if not src.is_dir():
            raise ConfigError("src", str(src), "an existing LFM2 checkpoint directory")
        lfm2_config = _read_lfm2_config(src)
        tensors = _read_safetensors(src)
        source = str(src)
    else:
        src = None
        lfm2_config = src_dir_or_model.config
        tensors = dict(src_dir_or_model.state_dict())
        source = type(src_dir_or_model).__name__
    config = lfm2_config_to_edge(lfm2_config)
    if config.tie_word_embeddings and "lm_head.weight" in tensors:
        # In-memory tied models (and some writers) carry the head; it must be the embedding.
        head = tensors.pop("lm_head.weight")
        embed = tensors.get("model.embed_tokens.weight")
        if embed is not None and head.shape == embed.shape and not torch.equal(head, embed):
            raise CheckpointError(f"checkpoint {source} has tie_word_embeddings=true but an "
                                  "lm_head.weight that differs from model.embed_tokens.weight")
    renamed = {lfm2_to_edge_name(name): tensor for name, tensor in tensors.items()}
    if len(renamed) != len(tensors):
        raise CheckpointError(f"checkpoint {source} has tensors that map to the same edgesmith name")
    expected = _expected_tensors(EdgeForCausalLM, config)
    # Report problems in the checkpoint's own (LFM2) names, which is what the user has.
    layer_types = list(lfm2_config.layer_types)
    check_tensors({edge_to_lfm2_name(n, layer_types): t.shape for n, t in renamed.items()},
                  {edge_to_lfm2_name(n, layer_types): s for n, s in expected.items()}, source)
    dtype = _floating_dtype(renamed)
    config.dtype = dtype
    from transformers.initialization import no_init_weights

    with no_init_weights():  # every weight is overwritten right below
        model = EdgeForCausalLM(config)
    model.to(dtype)
    result = model.load_state_dict(renamed, strict=False)
    unexpected_missing = [k for k in result.missing_keys if k != "lm_head.weight"]
    if unexpected_missing or result.unexpected_keys:
        raise CheckpointError(f"loading {source} left {unexpected_missing} unset and "
                              f"{result.unexpected_keys} unused")
    if config.tie_word_embeddings:
        model.tie_weights()
    model.eval()
    if dst_dir is not None:
        dst = Path(dst_dir)
        dst.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(dst)
        if src is not None:
            copy_tokenizer_files(src, dst)
    return model


def export_lfm2(model_or_dir: Any, dst_dir: str | Path, overwrite: bool = False) -> Path:
    """Writes an edgesmith model (``short_conv`` and ``gqa`` layers only) as an LFM2 directory.

    The result loads with transformers' ``Lfm2ForCausalLM.from_pretrained``. A model with
    other operators fails with :class:`ExportError` naming each offending layer and why.
    """
    from transformers import Lfm2ForCausalLM

    _check_dst(Path(dst_dir), overwrite)
    src = None
    if isinstance(model_or_dir, (str, Path)):
        src = Path(model_or_dir)
        config = read_edge_config(src)
        lfm2_config = edge_config_to_lfm2(config)  # fail on unexportable layers before loading weights
        from edgesmith.core.modeling import EdgeForCausalLM

        model = EdgeForCausalLM.from_pretrained(str(src))
    else:
        model = model_or_dir
        lfm2_config = edge_config_to_lfm2(model.config)
    layer_types = list(lfm2_config.layer_types)
    state = {edge_to_lfm2_name(n, layer_types): t.detach() for n, t in model.state_dict().items()}
    if lfm2_config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    expected = _expected_tensors(Lfm2ForCausalLM, lfm2_config)
    check_tensors({n: t.shape for n, t in state.items() if n != "lm_head.weight" or n in expected},
                  expected, f"of {type(model).__name__}")
    dst = Path(dst_dir)
    dst.mkdir(parents=True, exist_ok=True)
    dtype = _floating_dtype(state)
    lfm2_config.dtype = dtype
    # Built on meta and filled with the model's own tensors: no second copy, no random init.
    with torch.device("meta"):
        lfm2 = Lfm2ForCausalLM(lfm2_config)
    lfm2.load_state_dict(state, strict=True, assign=True)
    if lfm2_config.tie_word_embeddings:
        lfm2.tie_weights()
    lfm2.save_pretrained(dst)
    if src is not None:
        copy_tokenizer_files(src, dst)
    return dst
