"""Which finished trial becomes the architecture, and the one-sentence reason why.

The rule (``search.choose``) is applied to finished trials that met every constraint:
first the budgets (``choose.decode_ms``, ``choose.peak_rss_mb``, ``choose.prefill_ms``;
a null budget falls back to the constraint of the same name), then ``best_quality``
(lowest proxy value), ``fastest`` (lowest decode latency) or ``smallest`` (lowest peak
memory); ties go to the lower decode latency, then the lower trial number. When no
feasible trial is within the budgets, ``choose.fallback=nearest`` takes the one whose worst
measurement is the smallest multiple of its budget (``none``: nothing is chosen).

:func:`describe_choice` is what the report shows: the rule, the budgets, a reason sentence,
the chosen trial's row and the rows of the feasible Pareto front.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .config import SearchConfig
from .duplicates import is_duplicate
from .rows import study_objectives, trial_row

RULE_METRIC = {"best_quality": "proxy", "fastest": "decode_ms", "smallest": "peak_rss_mb"}
BUDGET_TEXT = {"decode_ms": "decode <= {:g} ms/token", "peak_rss_mb": "peak memory <= {:g} MB",
               "prefill_ms": "prefill <= {:g} ms"}


def candidates(study: optuna.Study) -> list[FrozenTrial]:
    """Finished trials that met every constraint and carry a candidate."""
    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.user_attrs.get("feasible") is True and "model_config" in t.user_attrs and not is_duplicate(t)]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front (Optuna's ``best_trials`` honours the constraints), each candidate once."""
    return sorted((t for t in study.best_trials if not is_duplicate(t)), key=lambda t: t.values)


def metric(trial: FrozenTrial, name: str) -> float:
    """A trial's proxy value or profiled measurement (inf when it was not measured)."""
    profile = trial.user_attrs.get("profile") or {}
    if name == "proxy":
        return float(trial.user_attrs["proxy"])
    key = {"decode_ms": "decode_ms_per_token"}.get(name, name)
    return float(profile.get(key, float("inf")))


def budgets(cfg: SearchConfig) -> dict[str, float | None]:
    """The choose budgets, each falling back to the constraint of the same name."""
    c, limits = cfg.choose, cfg.constraints
    return {"decode_ms": c.decode_ms if c.decode_ms is not None else limits.decode_ms,
            "peak_rss_mb": c.peak_rss_mb if c.peak_rss_mb is not None else limits.peak_memory_mb,
            "prefill_ms": c.prefill_ms if c.prefill_ms is not None else limits.prefill_ms}


def within_budget(study: optuna.Study, cfg: SearchConfig) -> list[FrozenTrial]:
    limits = budgets(cfg)
    return [t for t in candidates(study)
            if all(limit is None or metric(t, name) <= limit for name, limit in limits.items())]


def over_budget(trial: FrozenTrial, limits: dict[str, float | None]) -> float:
    """The largest ``measurement / budget`` ratio of a trial (<= 1: within every budget)."""
    ratios = [metric(trial, name) / limit for name, limit in limits.items() if limit is not None and limit > 0]
    return max(ratios, default=0.0)


def choose(study: optuna.Study, cfg: SearchConfig) -> FrozenTrial | None:
    """The trial the configured rule picks; with no feasible trial within budget, the
    ``nearest`` fallback's pick or None."""
    key = RULE_METRIC[cfg.choose.rule]
    pool = within_budget(study, cfg)
    if pool:
        return min(pool, key=lambda t: (metric(t, key), metric(t, "decode_ms"), t.number))
    feasible = candidates(study)
    if cfg.choose.fallback == "nearest" and feasible:
        limits = budgets(cfg)
        return min(feasible, key=lambda t: (over_budget(t, limits), metric(t, key), t.number))
    return None


def describe_choice(study: optuna.Study, cfg: SearchConfig, chosen: FrozenTrial,
                    proxy_unit: str = "proxy value") -> dict[str, Any]:
    """``{"rule", "budgets", "within_budget", "proxy_unit", "reason", "row", "pareto"}`` (JSON-serializable).

    ``row``: the chosen trial's flat row (objectives, parameters, profile, proxy);
    ``pareto``: the rows of the feasible Pareto front (Optuna's ``best_trials``).
    """
    objectives = study_objectives(study)
    feasible, pool = candidates(study), within_budget(study, cfg)
    front = pareto_front(study)
    limits = {k: v for k, v in budgets(cfg).items() if v is not None}
    budget_text = " and ".join(BUDGET_TEXT[k].format(v) for k, v in limits.items())
    rule = cfg.choose.rule
    what = {"best_quality": f"best proxy {proxy_unit}", "fastest": "lowest decode latency",
            "smallest": "lowest peak memory"}[rule]
    value = metric(chosen, RULE_METRIC[rule])
    in_budget = any(t.number == chosen.number for t in pool)
    if in_budget:
        head = (f"{what} ({value:.4g}) among {len(pool)} feasible measured candidates"
                + (f" within {budget_text}" if limits else "")
                + (f" ({len(feasible) - len(pool)} over budget excluded)" if len(feasible) > len(pool) else ""))
    else:
        head = (f"none of {len(feasible)} feasible measured candidates met {budget_text}, so the nearest "
                f"({over_budget(chosen, limits):.2f}x its budget) was taken")
    profile = chosen.user_attrs.get("profile") or {}
    est = chosen.user_attrs.get("estimate") or {}
    on_front = "on" if any(t.number == chosen.number for t in front) else "off"
    reason = (f"{head}: trial {chosen.number}, {chosen.user_attrs.get('pattern')}, "
              f"{est.get('params', 0):,} parameters, {proxy_unit} {metric(chosen, 'proxy'):.4g}, "
              f"decode {metric(chosen, 'decode_ms'):.3g} ms/token, peak {profile.get('peak_rss_mb', float('nan')):.0f} MB, "
              f"{on_front} the Pareto front of {len(front)} candidates")
    return {"rule": rule, "budgets": limits, "within_budget": in_budget, "proxy_unit": proxy_unit,
            "reason": reason, "row": trial_row(chosen, objectives),
            "pareto": [trial_row(t, objectives) for t in front]}
