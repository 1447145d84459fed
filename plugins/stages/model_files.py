"""Whether a directory holds a loadable model: config.json, its model_type, whole weight files.

transformers answers a bad file with a 25-90 line traceback that does not name it (and for
an unknown ``model_type`` advises upgrading transformers). These checks read only the
config and the weight files' headers, so they are cheap enough to run before any stage
starts, and each problem is one line naming the file and what is accepted;
:func:`check_model_dir` and :func:`check_init_from` raise it as a stage or config error.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from edgesmith.core.errors import ConfigError, StageError

SAVED_BY = "a directory written by save_pretrained (config.json + model.safetensors + tokenizer files)"


def safetensors_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole safetensors file (cut short, garbage header), or None."""
    size = path.stat().st_size
    if size < 8:
        return f"{path}: {size} bytes, cut short (a safetensors file starts with an 8-byte header length)"
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        if header_len > size - 8:
            return f"{path}: not a whole safetensors file (its header claims {header_len} bytes, the file has {size})"
        try:
            header = json.loads(f.read(header_len))
            ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"]
        except (UnicodeDecodeError, ValueError, TypeError, KeyError, IndexError, AttributeError):
            return f"{path}: not a safetensors file (its header is not a JSON tensor table)"
    expected = 8 + header_len + max(ends, default=0)
    if size != expected:
        return f"{path}: not a whole safetensors file ({size} bytes, its header describes {expected})"
    return None


def known_model_types() -> set[str]:
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    import edgesmith.core.modeling  # noqa: F401  (registers "edgesmith" with the Auto classes)
    return set(CONFIG_MAPPING.keys())


def config_problem(directory: Path) -> str | None:
    """Why ``directory/config.json`` cannot configure a model, or None."""
    file = directory / "config.json"
    if not file.is_file():
        return f"{directory}: no config.json; accepted: {SAVED_BY}"
    try:
        config = json.loads(file.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        return f"{file}: not UTF-8 text (byte {exc.start}); accepted: a JSON object written by save_pretrained"
    except json.JSONDecodeError as exc:
        return f"{file}:{exc.lineno}:{exc.colno}: not valid JSON ({exc.msg}); accepted: a JSON object " \
               "written by save_pretrained"
    if not isinstance(config, dict):
        return f"{file}: a JSON {type(config).__name__}, accepted: a JSON object with a model_type"
    model_type = config.get("model_type")
    if not isinstance(model_type, str) or model_type not in known_model_types():
        return (f"{file}: model_type {model_type!r} is not an architecture this installation knows; accepted: "
                "edgesmith, lfm2 or another transformers causal LM type (llama, qwen3, ...)")
    return None


def weights_problem(directory: Path) -> str | None:
    """Why the weight files in ``directory`` are missing or cut short, or None."""
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            return f"{index}: not a safetensors weight index (a JSON object with a weight_map)"
        missing = [s for s in shards if not (directory / s).is_file()]
        if missing:
            return f"{index}: names weight files that are missing: {', '.join(missing)}"
        files = [directory / s for s in shards]
    else:
        files = sorted(directory.glob("*.safetensors"))
    if not files:
        if any(re.match(r"pytorch_model.*\.bin$", p.name) for p in directory.iterdir()):
            return None  # legacy torch weights: transformers reads them (and checks them) itself
        return f"{directory}: no model weights; accepted: model.safetensors (or shards with their index)"
    for file in files:
        problem = safetensors_problem(file)
        if problem:
            return problem
    return None


def model_dir_problem(directory: str | Path) -> str | None:
    """The first reason ``directory`` is not a loadable model directory, or None."""
    directory = Path(str(directory)).expanduser()
    if not directory.is_dir():
        return f"{directory}: not a directory; accepted: {SAVED_BY}"
    return config_problem(directory) or weights_problem(directory)


def check_model_dir(path: str | Path, what: str, stage: str) -> Path:
    """A directory holding a loadable model, or a StageError naming the bad file and what is accepted."""
    path = Path(str(path)).expanduser()
    problem = model_dir_problem(path)
    if problem:
        raise StageError(stage, f"{what} is not a usable model: {problem}")
    return path


def check_init_from(value: Any, key: str) -> None:
    """Before any stage runs: ``init_from`` (when set) is a loadable model directory."""
    if value:
        problem = model_dir_problem(value)
        if problem:
            raise ConfigError(key, str(value), SAVED_BY, detail=problem)
