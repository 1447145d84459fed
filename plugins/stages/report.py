"""The ``report`` stage: the run's trajectory, stage by stage, as markdown, PNG and JSON.

For every earlier model artifact (pretrain, sft, dpo, rl, ...) it runs the evaluation with
the run's ``eval`` options (reusing the ``eval`` stage's results for the model that stage
already measured), then writes ``report.md``, ``report.png``, ``changes.png`` and ``report.json``: per stage,
environment and decoding mode (greedy, sampled) the doom-loop rate and the accuracy with
their Wilson 95% intervals, the mean completion length and how generations ended (by
themselves: ``eos_share``; at the token budget: ``budget_share``); what each stage changed
against the one before it and against ``report.baseline`` on the same greedy prompts, with
paired intervals (:mod:`.report_changes`); the wall time of every stage (from the
pipeline's completion records); the chosen architecture with the search's reason and Pareto
front when the search left them; the DPO rounds and any RL cold start.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from edgesmith.core.errors import ConfigError, StageError
from edgesmith.core.stage import Artifact, Stage, StageContext
from edgesmith.core.options import build_options

from .report_changes import change_lines, greedy_outcomes, plot_changes, stage_changes


@dataclass
class ReportConfig:
    """``stages``: which earlier stages' models to evaluate (empty: every model artifact);
    ``baseline``: the stage every later stage is also compared with (ignored when not in the run)."""

    stages: list[str] = field(default_factory=list)
    baseline: str = "sft"
    title: str = "edgesmith run report"

    def __post_init__(self) -> None:
        if not self.title:
            raise ConfigError("report.title", self.title, "a non-empty string")


def _architecture(ctx: StageContext, first_model: str) -> dict[str, Any]:
    """The chosen architecture: the search's config and measured profile, else the first model's config."""
    chosen = ctx.latest("model_config")
    path = Path(chosen.path if chosen else first_model) / "config.json"
    config = json.loads(path.read_text()) if path.is_file() else {}
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_attention_heads", "num_key_value_heads",
            "tie_word_embeddings", "model_type")
    facts: dict[str, Any] = {k: config[k] for k in keys if k in config}
    if "layers" in config:
        facts["layers"] = " ".join(layer.get("op", "?") for layer in config["layers"])
    elif "num_hidden_layers" in config:
        facts["layers"] = config["num_hidden_layers"]
    if chosen is not None:
        facts["profile"] = dict(chosen.metadata.get("profile") or {})
        facts["search_trial"] = chosen.metadata.get("trial")
    return facts


def _choice(ctx: StageContext) -> dict[str, Any] | None:
    """The search's account of its choice (``{"rule", "reason", "row", "pareto", ...}``), if it left one."""
    chosen = ctx.latest("model_config")
    choice = chosen.metadata.get("choice") if chosen is not None else None
    return choice if isinstance(choice, dict) else None


def _share(m: dict[str, Any], key: str, count_key: str | None = None) -> tuple[float | None, list[float] | None]:
    """A rate and its Wilson interval from one summary (derived when an older results.json lacks the interval)."""
    from edgesmith.plugins.evaluation.evaluate import wilson_interval

    rate = m.get(key)
    if rate is None:
        return None, None
    interval = m.get(f"{key}_ci95")
    if interval is None and m.get("n"):
        interval = wilson_interval(round(rate * m["n"]), m["n"])
    return rate, list(interval) if interval is not None else None


def _rows(per_stage: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for stage, results in per_stage.items():
        for env, modes in results["environments"].items():
            for mode, m in modes.items():
                accuracy, accuracy_ci = _share(m, "accuracy")
                # eos_share is new; older results call it finished_rate
                eos, eos_ci = _share({**m, "eos_share": m.get("eos_share", m.get("finished_rate"))}, "eos_share")
                rows.append({"stage": stage, "env": env, "mode": mode, "n": m["n"], "loop_rate": m["loop_rate"],
                             "loop_rate_ci95": list(m["loop_rate_ci95"]), "accuracy": accuracy,
                             "accuracy_ci95": accuracy_ci, "mean_reward": m.get("mean_reward"),
                             "mean_length": m.get("mean_length"), "eos_share": eos, "eos_share_ci95": eos_ci,
                             "budget_share": m.get("budget_share"), "guard_share": m.get("guard_share"),
                             "tokens_per_s": m.get("tokens_per_s")})
    return rows


def stage_times(ctx: StageContext, report_started: float) -> dict[str, dict[str, Any]]:
    """Start, end and wall seconds of every earlier stage (from its completion record), in pipeline
    order, and of this report up to now."""
    from edgesmith.core.pipeline import COMPLETE

    names = list(OmegaConf.select(ctx.config, "pipeline.stages", default=None) or ctx.artifacts)
    times: dict[str, dict[str, Any]] = {}
    for name in names:
        if name == ctx.name:
            continue
        record_path = ctx.out_dir.parent / name / COMPLETE
        if not record_path.is_file():
            continue
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            continue  # a torn record says nothing reliable; the stage is left out
        seconds = record.get("seconds")
        if seconds is None:
            continue
        end = record.get("finished")
        start = record.get("started", end - seconds if end is not None else None)
        times[name] = {"start": start, "end": end, "wall_s": float(seconds)}
    now = time.time()
    times[ctx.name] = {"start": report_started, "end": now, "wall_s": now - report_started, "partial": True}
    return times


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _interval(ci: list[float] | None) -> str:
    return "-" if not ci else f"[{ci[0]:.1%}, {ci[1]:.1%}]"


TABLE_COLUMNS = ("stage", "env", "mode", "n", "loop rate", "loop 95% CI", "accuracy", "accuracy 95% CI",
                 "EOS share", "budget share", "mean length", "mean reward")


def table_cells(r: dict[str, Any]) -> list[str]:
    """One row of the report's table, as it is printed (the tests read these back)."""
    return [r["stage"], r["env"], r["mode"], str(r["n"]), _pct(r["loop_rate"]), _interval(r["loop_rate_ci95"]),
            _pct(r.get("accuracy")), _interval(r.get("accuracy_ci95")), _pct(r.get("eos_share")),
            _pct(r.get("budget_share")),
            "-" if r.get("mean_length") is None else f"{r['mean_length']:.1f}",
            "-" if r.get("mean_reward") is None else f"{r['mean_reward']:.3f}"]


PARETO_COLUMNS = ("number", "pattern", "layers", "hidden_size", "vocab_size", "params", "embedding_share",
                  "proxy", "decode_ms", "prefill_ms", "peak_rss_mb")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value))
    return str(value).replace("|", "/")


def _choice_lines(choice: dict[str, Any]) -> list[str]:
    """The search's rule, reason and Pareto front (the chosen row marked); whatever of it is there."""
    lines = []
    if choice.get("rule"):
        lines.append(f"- rule: {choice['rule']}")
    if choice.get("budgets"):
        lines.append(f"- budgets: {', '.join(f'{k} <= {_cell(v)}' for k, v in dict(choice['budgets']).items())}")
    if choice.get("reason"):
        lines.append(f"- reason: {choice['reason']}")
    front = [r for r in choice.get("pareto") or [] if isinstance(r, dict)]
    if front:
        columns = [c for c in PARETO_COLUMNS if any(r.get(c) is not None for r in front)]
        if not columns:  # rows of another shape: their first scalar fields
            columns = [k for k, v in front[0].items() if not isinstance(v, (dict, list))][:8]
        chosen = choice.get("row") if isinstance(choice.get("row"), dict) else {}
        lines += ["", f"Pareto front ({len(front)} candidates; * = chosen):", "",
                  "| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for r in front:
            mark = "*" if chosen and (r == chosen or ("number" in r and r.get("number") == chosen.get("number"))) \
                else ""
            lines.append(f"| {mark} | " + " | ".join(_cell(r.get(c)) for c in columns) + " |")
    return lines


def markdown(title: str, rows: list[dict[str, Any]], architecture: dict[str, Any], extras: list[str],
             times: dict[str, dict[str, Any]] | None = None, choice: dict[str, Any] | None = None,
             changes: list[dict[str, Any]] | None = None) -> str:
    lines = [f"# {title}", "", "## Loop rate and accuracy per stage and environment", "",
             "A loop is a generation that hit the token budget with a repeating tail. Intervals are Wilson's "
             "95% score intervals. EOS share: generations that ended by themselves; budget share: those cut "
             "at the token budget (the rest, if any, were cut by the loop guard). Greedy: one completion per "
             "prompt; sampled: several per prompt on a subset of the prompts.", "",
             "| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(table_cells(r)) + " |")
    lines += change_lines(changes or [])
    if times:
        lines += ["", "## Wall time per stage", "", "| stage | wall time (s) | minutes |", "|---|---|---|"]
        for name, t in times.items():
            note = " (until this report was written)" if t.get("partial") else ""
            lines.append(f"| {name}{note} | {t['wall_s']:.1f} | {t['wall_s'] / 60:.1f} |")
        total = sum(t["wall_s"] for t in times.values())
        lines.append(f"| total | {total:.1f} | {total / 60:.1f} |")
    lines += ["", "## Chosen architecture", ""]
    if choice:
        lines += ["The search's choice:", "", *_choice_lines(choice), "", "The model:", ""]
    profile = architecture.pop("profile", None)
    for key, value in architecture.items():
        lines.append(f"- {key}: {value}")
    if profile:
        lines += ["", "Measured on this machine (search profiler):", ""]
        for key, value in profile.items():
            if isinstance(value, (int, float)):
                lines.append(f"- {key}: {value:.4g}" if isinstance(value, float) else f"- {key}: {value}")
        architecture["profile"] = profile
    if extras:
        lines += ["", "## Post-training notes", "", *extras]
    return "\n".join(lines) + "\n"


PLOT_METRICS = (("loop_rate", "doom-loop rate"), ("accuracy", "accuracy"), ("eos_share", "ends by itself (EOS)"))


def plot(rows: list[dict[str, Any]], stages: list[str], path: Path, title: str = "") -> None:
    """One column per environment; rows: loop rate, accuracy, EOS share along the stages (pipeline
    order), greedy and sampled as two series with Wilson 95% error bars, y in percent."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    envs = list(dict.fromkeys(r["env"] for r in rows))
    modes = [m for m in ("greedy", "sampled") if any(r["mode"] == m for r in rows)]
    modes += sorted({r["mode"] for r in rows} - set(modes))
    styles = {"greedy": ("tab:blue", "o", "-"), "sampled": ("tab:orange", "s", "--")}
    fig, axes = plt.subplots(len(PLOT_METRICS), max(1, len(envs)), figsize=(4.2 * max(1, len(envs)), 9.5),
                             squeeze=False, sharex=True, sharey=True)
    for col, env in enumerate(envs):
        sizes = []
        for row_index, (key, label) in enumerate(PLOT_METRICS):
            ax = axes[row_index][col]
            for k, mode in enumerate(modes):
                color, marker, line = styles.get(mode, (None, "^", ":"))
                points = [(i, r) for i, s in enumerate(stages)
                          for r in rows if r["stage"] == s and r["env"] == env and r["mode"] == mode
                          and r.get(key) is not None]
                if not points:
                    continue
                if row_index == 0:
                    sizes.append(f"{mode} n={'/'.join(sorted({str(r['n']) for _, r in points}))}")
                shift = (k - (len(modes) - 1) / 2) * 0.12  # side by side, so both intervals stay readable
                xs = [i + shift for i, _ in points]
                ys = [r[key] for _, r in points]
                cis = [r.get(f"{key}_ci95") or [r[key], r[key]] for _, r in points]
                # clamp float noise: the interval always contains the rate
                err = [[max(0.0, y - ci[0]) for y, ci in zip(ys, cis)], [max(0.0, ci[1] - y) for y, ci in zip(ys, cis)]]
                ax.errorbar(xs, ys, yerr=err, color=color, marker=marker, linestyle=line, capsize=4, label=mode)
            ax.set_ylim(-0.03, 1.03)
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.set_xticks(range(len(stages)), stages)
            ax.set_xlim(-0.5, len(stages) - 0.5)  # a fixed slot per stage, however few there are
            ax.grid(alpha=0.3)
            if col == 0:
                ax.set_ylabel(label)
            if row_index == len(PLOT_METRICS) - 1:
                ax.set_xlabel("stage (pipeline order)")
        axes[0][col].set_title(f"{env}\n({', '.join(sizes)})" if sizes else env)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, [f"{lab} decoding" for lab in labels], loc="upper right", ncol=len(handles))
    fig.suptitle(f"{title}: per stage and environment, Wilson 95% intervals" if title else
                 "per stage and environment, Wilson 95% intervals", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _notes(ctx: StageContext) -> list[str]:
    notes = []
    for name, artifact in ctx.artifacts.items():
        for h in artifact.metadata.get("history", []) or []:
            notes.append(f"- {name} round {h.get('round')}: {h.get('pairs')} pairs, {h.get('ties')} ties, "
                         f"sampled loop rate {h.get('loop_rate', 0):.1%}")
        for event in artifact.metadata.get("cold_start", []) or []:
            notes.append(f"- {name} step {event.get('step')}: {event.get('message')} -> {event.get('action')} "
                         f"(signal {json.dumps(event.get('signal'))})")
    return notes


class ReportStage(Stage):
    """Evaluates each stage's model and writes the run report (markdown + PNG)."""

    name = "report"
    options_class = ReportConfig

    def run(self, ctx: StageContext) -> Artifact:
        from edgesmith.plugins.evaluation.evaluate import evaluate
        from edgesmith.plugins.evaluation.options import EvalOptions

        options: ReportConfig = self.options
        report_started = time.time()
        eval_options = build_options(EvalOptions, OmegaConf.select(ctx.config, "eval", default=None), key="eval")
        models = [(n, a) for n, a in ctx.artifacts.items()
                  if a.kind == "model" and (not options.stages or n in options.stages)]
        if not models:
            have = ", ".join(f"{n} ({a.kind})" for n, a in ctx.artifacts.items()) or "nothing"
            raise StageError(ctx.name, f"needs earlier stages that produced models (kind 'model'); got: {have}")
        measured = {a.metadata.get("model"): Path(a.path) / "results.json"
                    for a in ctx.artifacts.values() if a.kind == "report" and a.metadata.get("model")}
        per_stage: dict[str, dict[str, Any]] = {}
        completions: dict[str, Path] = {}  # each evaluation writes its completions beside results.json
        for name, artifact in models:
            done = ctx.out_dir / name / "results.json"
            reuse = measured.get(artifact.path)
            reused = reuse is not None and reuse.is_file()
            completions[name] = (reuse if reused else done).parent / "completions.jsonl"
            if reused:
                per_stage[name] = json.loads(reuse.read_text())
            elif done.is_file():
                per_stage[name] = json.loads(done.read_text())
            else:
                per_stage[name] = evaluate(eval_options, artifact.path, out_dir=ctx.out_dir / name,
                                           plugins=ctx.plugins)
        rows = _rows(per_stage)
        changes = stage_changes({name: greedy_outcomes(path) for name, path in completions.items()}, options.baseline)
        architecture = _architecture(ctx, models[0][1].path)
        choice = _choice(ctx)
        notes = _notes(ctx)
        for row in rows:
            ctx.log_metrics(**{k: v for k, v in row.items() if not k.endswith("_ci95")})
        stages = [n for n, _ in models]
        if options.baseline not in stages:  # a typo must not pass unnoticed
            notes.append(f"- report.baseline '{options.baseline}' is not among this run's stages "
                         f"({', '.join(stages)}): each stage is compared with the one before it only")
        times = stage_times(ctx, report_started)
        text = markdown(options.title, rows, dict(architecture), notes, times, choice, changes)
        (ctx.out_dir / "report.md").write_text(text)
        plot(rows, stages, ctx.out_dir / "report.png", options.title)
        if changes:
            plot_changes(changes, ctx.out_dir / "changes.png", options.title)
        report = {"title": options.title, "stages": stages, "rows": rows, "changes": changes,
                  "stage_wall_time_s": {name: t["wall_s"] for name, t in times.items()}, "stage_times": times,
                  "architecture": architecture, "choice": choice, "notes": notes,
                  "eval_options": json.loads(json.dumps(dataclasses.asdict(eval_options), default=str))}
        (ctx.out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str))
        return Artifact(kind="report", path=str(ctx.out_dir / "report.md"),
                        metadata={"rows": rows, "png": str(ctx.out_dir / "report.png"),
                                  "json": str(ctx.out_dir / "report.json"), "architecture": architecture,
                                  "stage_wall_time_s": report["stage_wall_time_s"]})
