"""A trial as one flat row (candidate, estimate, measurements, proxy): for the CSV, the table
and the report's account of the choice."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial


def trial_row(t: FrozenTrial, objectives: list[str]) -> dict[str, Any]:
    """One trial as a flat row: candidate, analytic estimate, measurements, proxy, feasibility."""
    u = t.user_attrs
    est, prof, mc = u.get("estimate") or {}, u.get("profile") or {}, u.get("model_config") or {}
    row: dict[str, Any] = {
        "number": t.number, "state": t.state.name, "worker": u.get("worker"),
        "retry_of": t.system_attrs.get("failed_trial"),
        "feasible": u.get("feasible"), "violations": "; ".join(u.get("violations", [])),
        "pattern": u.get("pattern"), "layers": len(mc.get("layers", [])) or None,
        "hidden_size": mc.get("hidden_size"), "intermediate_size": mc.get("intermediate_size"),
        "num_attention_heads": mc.get("num_attention_heads"), "num_key_value_heads": mc.get("num_key_value_heads"),
        "vocab_size": mc.get("vocab_size"), "tie_word_embeddings": mc.get("tie_word_embeddings"),
        "params": est.get("params"), "non_embedding_params": est.get("non_embedding_params"),
        "embedding_share": est.get("embedding_share"), "est_memory_mb": est.get("memory_mb"),
        "est_decode_flops": est.get("decode_flops_per_token"),
        "proxy": u.get("proxy"), "proxy_s": u.get("proxy_s"), "prefill_ms": prof.get("prefill_ms"),
        "decode_ms": prof.get("decode_ms_per_token"), "peak_rss_mb": prof.get("peak_rss_mb"),
        "peak_rss_total_mb": prof.get("peak_rss_total_mb"), "baseline_rss_mb": prof.get("baseline_rss_mb"),
        "decode_cv": prof.get("decode_cv"), "prefill_cv": prof.get("prefill_cv"),
        "profile_s": prof.get("profile_s"), "duration_s": t.duration.total_seconds() if t.duration else None,
        "error": u.get("error"), "pruned": u.get("pruned"), "duplicate_of": u.get("duplicate_of"),
    }
    for name, value in zip(objectives, t.values or []):
        row[f"value_{name}"] = value
    return row


def study_objectives(study: optuna.Study) -> list[str]:
    return study.user_attrs.get("objectives") or [f"objective_{i}" for i in range(len(study.directions))]


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One flat row per trial."""
    objectives = study_objectives(study)
    return [trial_row(t, objectives) for t in study.get_trials(deepcopy=False)]
