"""A stage's model directory (``save_pretrained`` model + tokenizer) and result files on disk.

A model directory is written through ``<name>.partial`` and marked finished last, and a
result file through a temporary file, so a kill never leaves one that looks finished;
loading names the file that is wrong.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import edgesmith.core.modeling  # noqa: F401  (registers "edgesmith" with the Auto classes)
from edgesmith.core import distributed
from edgesmith.core.errors import DataError

from .library_logging import quiet_libraries

DONE_MARKER = "_done"


def load_model_and_tokenizer(path: str | Path) -> tuple[Any, Any]:
    """A causal LM (edgesmith's or any transformers one) and its tokenizer from a directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .model_files import model_dir_problem

    quiet_libraries()
    problem = model_dir_problem(path)
    if problem:
        raise DataError(problem)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path}: cannot load its tokenizer ({_first_line(exc)}); accepted: tokenizer files "
                        "written by save_pretrained (tokenizer.json + tokenizer_config.json)") from exc
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise DataError(f"{path}: cannot load it as a causal LM ({_first_line(exc)}); accepted: {SAVED_BY_ANY}") \
            from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


SAVED_BY_ANY = "an edgesmith, LFM2 or transformers causal LM directory written by save_pretrained"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def save_model_dir(model: Any, tokenizer: Any, destination: str | Path) -> Path:
    """Saves model + tokenizer so a half-written directory never looks finished.

    Under a multi-process launch the main process saves and the others wait for it.
    """
    destination = Path(destination)
    if not distributed.is_main():
        distributed.wait_for_everyone()
        return destination
    tmp = destination.with_name(destination.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / DONE_MARKER).write_text("complete\n")
    if destination.exists():
        shutil.rmtree(destination)
    os.replace(tmp, destination)
    distributed.wait_for_everyone()
    return destination


def is_finished_model_dir(path: str | Path) -> bool:
    """Whether :func:`save_model_dir` finished writing ``path``."""
    return (Path(path) / DONE_MARKER).is_file()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Writes ``path`` through a temporary file, so a kill never leaves it half-written (main process only)."""
    path = Path(path)
    if distributed.is_main():
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    distributed.wait_for_everyone()
