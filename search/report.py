"""What a study leaves in the run directory: tables, CSV, plots, rank correlations, the choice.

- ``trials.csv``: every trial of the study (all workers), flat: state, worker, candidate,
  analytic estimate, measurements, proxy, feasibility;
- ``pareto.txt`` (and printed): the feasible Pareto front as a rich table;
- ``pareto_front.png``, ``optimization_history.png``, ``param_importances.png``
  (optuna.visualization.matplotlib);
- ``summary.json``: trial counts, target fingerprint, Spearman rank correlation between
  the analytic estimate and the measurement, the chosen trial and why (:mod:`.choice`);
- the chosen architecture (see :mod:`edgesmith.search.export`).
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.table import Table

from .config import SearchConfig
from .choice import choose, describe_choice, pareto_front
from .export import export_choice
from .rows import trial_rows


def spearman(frame: pd.DataFrame) -> dict[str, float | None]:
    """Rank correlation between the analytic estimate and the measurement (None: too few points)."""
    pairs = {"decode_flops_vs_decode_ms": ("est_decode_flops", "decode_ms"),
             "est_memory_vs_peak_rss": ("est_memory_mb", "peak_rss_mb")}
    out: dict[str, float | None] = {}
    for name, (a, b) in pairs.items():
        if a not in frame or b not in frame:
            out[name] = None
            continue
        sub = frame[[a, b]].dropna().astype(float)
        if len(sub) < 3 or sub[a].nunique() < 2 or sub[b].nunique() < 2:
            out[name] = None
            continue
        # Spearman = Pearson on ranks (average ranks for ties); pandas needs no scipy for this.
        out[name] = float(sub[a].rank().corr(sub[b].rank()))
    return out


def pareto_table(study: optuna.Study, objectives: list[str]) -> tuple[Table, list[FrozenTrial]]:
    """The feasible Pareto front (Optuna's ``best_trials`` honours the constraints)."""
    front = pareto_front(study)
    table = Table(title=f"Pareto front of study '{study.study_name}' ({len(front)} trials)")
    for col in ("trial", "pattern", "params", *objectives, "worker"):
        table.add_column(col)
    for t in front:
        est = t.user_attrs.get("estimate") or {}
        table.add_row(str(t.number), str(t.user_attrs.get("pattern")), f"{est.get('params', 0):,}",
                      *(f"{v:.4g}" for v in t.values), str(t.user_attrs.get("worker")))
    return table, front


def _plots(study: optuna.Study, objectives: list[str], out: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    written: dict[str, str] = {}
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    jobs = {
        "optimization_history": lambda: ovm.plot_optimization_history(
            study, target=lambda t: t.values[0], target_name=objectives[0]),
        "param_importances": lambda: ovm.plot_param_importances(
            study, target=lambda t: t.values[0], target_name=objectives[0]),
    }
    if len(objectives) >= 2:
        names = objectives[:3]
        jobs["pareto_front"] = lambda: ovm.plot_pareto_front(
            study, target_names=names, targets=lambda t: tuple(t.values[:len(names)]))
    for name, job in jobs.items():
        if not complete:
            written[name] = "skipped: no complete trial"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = job()
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            path = out / f"{name}.png"
            fig.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig)
            written[name] = str(path)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            # e.g. importances need two complete trials with different parameters.
            written[name] = f"skipped: {exc}"
    return written


def write_outputs(study: optuna.Study, cfg: SearchConfig, result: Any, console: Console, plugins: Any) -> None:
    """Writes every output file into ``result.run_dir`` and fills ``result`` in."""
    out = Path(result.run_dir)
    objectives = list(cfg.objectives)
    frame = pd.DataFrame(trial_rows(study))
    frame.to_csv(out / "trials.csv", index=False)
    result.outputs["trials_csv"] = str(out / "trials.csv")
    table, _front = pareto_table(study, objectives)
    console.print(table)
    recorder = Console(record=True, width=160, file=io.StringIO())
    recorder.print(table)
    (out / "pareto.txt").write_text(recorder.export_text())
    result.outputs["pareto"] = str(out / "pareto.txt")
    if cfg.plots:
        result.outputs.update(_plots(study, objectives, out))
    result.spearman = spearman(frame)
    chosen = choose(study, cfg)
    if chosen is not None:
        yaml_path, chosen_dir = export_choice(chosen, out, cfg.choose.model_name, cfg.study_name)
        result.model_yaml, result.chosen_dir = yaml_path, chosen_dir
        proxy_cls = plugins.get("quality_proxy", cfg.proxy.name, key="search.proxy.name") if plugins else None
        choice = describe_choice(study, cfg, chosen, proxy_cls.unit if proxy_cls else "proxy value")
        result.chosen = {"trial": chosen.number, "values": dict(zip(objectives, chosen.values)),
                         "pattern": chosen.user_attrs.get("pattern"),
                         "model_config": chosen.user_attrs["model_config"],
                         "profile": chosen.user_attrs.get("profile") or {},
                         "estimate": chosen.user_attrs.get("estimate") or {},
                         "choice": choice}
        console.print(f"chosen ({cfg.choose.rule}): trial {chosen.number} -> {chosen_dir}/config.json "
                      f"and {yaml_path}\nwhy: {choice['reason']}", highlight=False)
    else:
        console.print("[yellow]no finished trial met the constraints and budgets: nothing exported[/yellow]")
    summary = {"study": cfg.study_name, "storage": result.storage_url, "states": result.states,
               "objectives": objectives, "target_fingerprint": study.user_attrs.get("target_fingerprint"),
               "spearman": result.spearman, "choose_rule": cfg.choose.rule,
               "chosen": result.chosen, "outputs": result.outputs,
               "report_writer": result.report_writer}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    result.outputs["summary"] = str(out / "summary.json")
