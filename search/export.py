"""Exports the chosen architecture (:mod:`.choice`) as a Hydra ``model`` config and an EdgeConfig dir.

Outputs in the run directory:

- ``conf/model/<choose.model_name>.yaml``: a ``model`` config group entry. Use it with
  ``edgesmith run hydra.searchpath=[file://<run_dir>/conf] model=<choose.model_name>``
  (Hydra adds the directory to its search path, so the group ``model`` gains the file);
- ``chosen/config.json``: the same architecture saved by ``EdgeConfig.save_pretrained``,
  read back with ``EdgeConfig.from_pretrained(<run_dir>/chosen)`` (the pretrain stage does
  this with the search stage's artifact), plus ``chosen/profile.json`` with its measurements.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from optuna.trial import FrozenTrial

from .cost import build_config


def export_choice(trial: FrozenTrial, run_dir: Path, model_name: str, study_name: str) -> tuple[Path, Path]:
    """Writes ``conf/model/<name>.yaml`` and ``chosen/config.json``; returns (yaml path, chosen dir)."""
    model_config = dict(trial.user_attrs["model_config"])
    config = build_config(model_config)  # validates before anything is written
    yaml_path = Path(run_dir) / "conf" / "model" / f"{model_name}.yaml"
    yaml_path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Chosen by `edgesmith search` (study '{study_name}', trial {trial.number}).\n"
              f"# Use: edgesmith run hydra.searchpath=[file://{Path(run_dir).resolve() / 'conf'}] model={model_name}\n")
    yaml_path.write_text(header + OmegaConf.to_yaml(OmegaConf.create({"name": model_name, **model_config})))
    chosen_dir = Path(run_dir) / "chosen"
    config.save_pretrained(chosen_dir)
    facts: dict[str, Any] = {"study": study_name, "trial": trial.number, "values": trial.values,
                             "proxy": trial.user_attrs.get("proxy"), "profile": trial.user_attrs.get("profile"),
                             "estimate": trial.user_attrs.get("estimate")}
    (chosen_dir / "profile.json").write_text(json.dumps(facts, indent=2, default=str))
    return yaml_path, chosen_dir
