"""Chooses the architecture to keep and exports it as a Hydra ``model`` config and an EdgeConfig dir.

The rule (``search.choose``) is applied to finished trials that met every constraint:
first the budgets (``choose.decode_ms``, ``choose.peak_rss_mb``, ``choose.prefill_ms``;
a null budget falls back to the constraint of the same name), then ``best_quality``
(lowest proxy value), ``fastest`` (lowest decode latency) or ``smallest`` (lowest peak
memory); ties go to the lower decode latency, then the lower trial number.

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

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

from .config import SearchConfig
from .cost import build_config


def candidates(study: optuna.Study) -> list[FrozenTrial]:
    """Finished trials that met every constraint and carry a candidate."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("feasible") is True and "model_config" in t.user_attrs]


def _metric(trial: FrozenTrial, name: str) -> float:
    profile = trial.user_attrs.get("profile") or {}
    if name == "proxy":
        return float(trial.user_attrs["proxy"])
    key = {"decode_ms": "decode_ms_per_token"}.get(name, name)
    return float(profile.get(key, float("inf")))


def choose(study: optuna.Study, cfg: SearchConfig) -> FrozenTrial | None:
    """The trial the configured rule picks, or None when no feasible trial is within budget."""
    c, budgets = cfg.choose, cfg.constraints
    limits = {"decode_ms": c.decode_ms if c.decode_ms is not None else budgets.decode_ms,
              "peak_rss_mb": c.peak_rss_mb if c.peak_rss_mb is not None else budgets.peak_memory_mb,
              "prefill_ms": c.prefill_ms if c.prefill_ms is not None else budgets.prefill_ms}
    pool = [t for t in candidates(study)
            if all(limit is None or _metric(t, name) <= limit for name, limit in limits.items())]
    if not pool:
        return None
    key = {"best_quality": "proxy", "fastest": "decode_ms", "smallest": "peak_rss_mb"}[c.rule]
    return min(pool, key=lambda t: (_metric(t, key), _metric(t, "decode_ms"), t.number))


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
