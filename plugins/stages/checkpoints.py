"""Which ``checkpoint-N`` directories a training stage can resume from.

A SIGKILL while the Trainer writes ``checkpoint-N`` leaves a partial directory (weights cut
short, no optimizer or ``trainer_state.json``), and resuming from it fails every rerun. The
Trainer writes ``trainer_state.json`` last, so a checkpoint is complete when that file parses
and names step N and every weights/state file in it is whole (a safetensors file as long as
its header says, a ``torch.save`` zip with its end record). Partial checkpoints newer than the
one resumed from are kept, renamed ``incomplete-checkpoint-N`` (a name the Trainer's rotation,
which globs ``checkpoint-*``, never deletes), so nothing written is lost.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from .model_files import safetensors_problem

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
INCOMPLETE_PREFIX = "incomplete-"
TRAINER_STATE = "trainer_state.json"


def checkpoint_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be resumed from, or None when it is a complete checkpoint."""
    path = Path(path)
    match = CHECKPOINT.match(path.name)
    state_file = path / TRAINER_STATE
    if not state_file.is_file():
        return f"no {TRAINER_STATE} (the save did not finish)"
    try:
        state = json.loads(state_file.read_text())
    except (UnicodeDecodeError, ValueError):
        return f"{TRAINER_STATE} is cut short or not JSON"
    if match and (not isinstance(state, dict) or state.get("global_step") != int(match.group(1))):
        return f"{TRAINER_STATE} does not describe step {match.group(1)}"
    weights = [p for p in path.iterdir() if p.suffix == ".safetensors" or re.match(r"pytorch_model.*\.bin$", p.name)]
    if not weights:
        return "no model weights"
    index = path / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return f"{index.name} is cut short or not a weight index"
        missing = sorted(s for s in shards if not (path / s).is_file())
        if missing:
            return f"missing weight shards: {', '.join(missing)}"
    for file in sorted(path.iterdir()):
        if file.suffix == ".safetensors":
            problem = safetensors_problem(file)
        elif file.suffix in (".pt", ".pth", ".bin"):
            # torch.save writes a zip whose end record comes last: a cut file has none.
            problem = None if zipfile.is_zipfile(file) else f"{file.name} is cut short"
        else:
            continue
        if problem:
            return problem
    return None


def checkpoint_step(path: str | Path) -> int | None:
    match = CHECKPOINT.match(Path(path).name)
    return int(match.group(1)) if match else None


def set_aside(path: Path) -> Path:
    """Renames a partial checkpoint to ``incomplete-checkpoint-N`` (``.2``, ``.3``... if taken)."""
    target = path.with_name(INCOMPLETE_PREFIX + path.name)
    n = 2
    while target.exists():
        target = path.with_name(f"{INCOMPLETE_PREFIX}{path.name}.{n}")
        n += 1
    path.rename(target)
    return target


def newest_complete_checkpoint(directory: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest complete ``checkpoint-N`` in ``directory``, and the partial ones set aside.

    Returns ``(checkpoint or None, [(new name, why), ...])``. Only partial checkpoints newer
    than the chosen one are renamed; older partial ones are what the Trainer's rotation was
    deleting and it finishes that itself.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return None, []
    candidates = sorted((p for p in directory.iterdir() if p.is_dir() and checkpoint_step(p) is not None),
                        key=checkpoint_step, reverse=True)
    kept: list[tuple[Path, str]] = []
    for path in candidates:
        problem = checkpoint_problem(path)
        if problem is None:
            return path, kept
        kept.append((set_aside(path), problem))
    return None, kept
