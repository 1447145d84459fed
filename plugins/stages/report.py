"""The ``report`` stage: the run's trajectory, stage by stage, as markdown and PNG.

For every earlier model artifact (pretrain, sft, dpo, rl, ...) it runs the evaluation with
the run's ``eval`` options (reusing the ``eval`` stage's results for the model that stage
already measured), then writes ``report.md`` and ``report.png``: per environment and stage,
the doom-loop rate with its Wilson 95% interval and the accuracy, plus the chosen
architecture with its measured latency and memory, the DPO rounds and any RL cold start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from edgesmith.core.errors import ConfigError, StageError
from edgesmith.core.stage import Artifact, Stage, StageContext
from edgesmith.core.stage_options import build_options


@dataclass
class ReportConfig:
    """``stages``: which earlier stages' models to evaluate (empty: every model artifact)."""

    stages: list[str] = field(default_factory=list)
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


def _rows(per_stage: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for stage, results in per_stage.items():
        for env, modes in results["environments"].items():
            for mode, m in modes.items():
                rows.append({"stage": stage, "env": env, "mode": mode, "n": m["n"], "loop_rate": m["loop_rate"],
                             "loop_rate_ci95": list(m["loop_rate_ci95"]), "accuracy": m["accuracy"],
                             "mean_reward": m.get("mean_reward"), "mean_length": m.get("mean_length")})
    return rows


def markdown(title: str, rows: list[dict[str, Any]], architecture: dict[str, Any], extras: list[str]) -> str:
    lines = [f"# {title}", "", "## Loop rate and accuracy per stage and environment", "",
             "A loop is a generation that hit the token budget with a repeating tail; the interval is "
             "Wilson's 95% score interval.", "",
             "| stage | env | mode | n | loop rate | loop 95% CI | accuracy | mean reward | mean length |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        low, high = r["loop_rate_ci95"]
        reward = f"{r['mean_reward']:.3f}" if r.get("mean_reward") is not None else "-"
        length = f"{r['mean_length']:.1f}" if r.get("mean_length") is not None else "-"
        lines.append(f"| {r['stage']} | {r['env']} | {r['mode']} | {r['n']} | {r['loop_rate']:.1%} | "
                     f"[{low:.1%}, {high:.1%}] | {r['accuracy']:.1%} | {reward} | {length} |")
    lines += ["", "## Chosen architecture", ""]
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


def plot(rows: list[dict[str, Any]], stages: list[str], path: Path) -> None:
    """Loop rate (with 95% intervals), accuracy and mean length along the stages, one line per env and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loop, ax_acc, ax_len) = plt.subplots(1, 3, figsize=(15, 4))
    series = sorted({(r["env"], r["mode"]) for r in rows})
    for k, (env, mode) in enumerate(series):
        points = [next((r for r in rows if r["stage"] == s and r["env"] == env and r["mode"] == mode), None)
                  for s in stages]
        shift = (k - (len(series) - 1) / 2) * 0.04  # side by side, so the intervals stay readable
        xs = [i + shift for i, p in enumerate(points) if p]
        ps = [p for p in points if p]
        style = "-" if mode == "greedy" else "--"
        err = [[max(0.0, p["loop_rate"] - p["loop_rate_ci95"][0]) for p in ps],
               [max(0.0, p["loop_rate_ci95"][1] - p["loop_rate"]) for p in ps]]
        ax_loop.errorbar(xs, [p["loop_rate"] for p in ps], yerr=err, fmt="o" + style, capsize=3,
                         label=f"{env} ({mode})")
        ax_acc.plot(xs, [p["accuracy"] for p in ps], "o" + style, label=f"{env} ({mode})")
        ax_len.plot(xs, [p.get("mean_length") or 0 for p in ps], "o" + style, label=f"{env} ({mode})")
    for ax, title in ((ax_loop, "doom-loop rate (Wilson 95% CI)"), (ax_acc, "accuracy"),
                      (ax_len, "mean completion length (tokens)")):
        ax.set_xticks(range(len(stages)), stages)
        if ax is not ax_len:
            ax.set_ylim(-0.02, 1.02)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    ax_len.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
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
    config_class = ReportConfig

    def run(self, ctx: StageContext) -> Artifact:
        from edgesmith.plugins.evaluation.evaluate import evaluate
        from edgesmith.plugins.evaluation.options import EvalOptions

        options: ReportConfig = self.options
        eval_options = build_options(EvalOptions, OmegaConf.select(ctx.config, "eval", default=None), key="eval")
        models = [(n, a) for n, a in ctx.artifacts.items()
                  if a.kind == "model" and (not options.stages or n in options.stages)]
        if not models:
            have = ", ".join(f"{n} ({a.kind})" for n, a in ctx.artifacts.items()) or "nothing"
            raise StageError(ctx.name, f"needs earlier stages that produced models (kind 'model'); got: {have}")
        measured = {a.metadata.get("model"): Path(a.path) / "results.json"
                    for a in ctx.artifacts.values() if a.kind == "report" and a.metadata.get("model")}
        per_stage: dict[str, dict[str, Any]] = {}
        for name, artifact in models:
            done = ctx.out_dir / name / "results.json"
            reuse = measured.get(artifact.path)
            if reuse is not None and reuse.is_file():
                per_stage[name] = json.loads(reuse.read_text())
            elif done.is_file():
                per_stage[name] = json.loads(done.read_text())
            else:
                per_stage[name] = evaluate(eval_options, artifact.path, out_dir=ctx.out_dir / name,
                                           plugins=ctx.plugins)
        rows = _rows(per_stage)
        architecture = _architecture(ctx, models[0][1].path)
        notes = _notes(ctx)
        for row in rows:
            ctx.log_metrics(**{k: v for k, v in row.items() if k != "loop_rate_ci95"})
        (ctx.out_dir / "report.md").write_text(markdown(options.title, rows, dict(architecture), notes))
        plot(rows, [n for n, _ in models], ctx.out_dir / "report.png")
        (ctx.out_dir / "report.json").write_text(json.dumps({"rows": rows, "architecture": architecture,
                                                             "notes": notes}, indent=2, default=str))
        return Artifact(kind="report", path=str(ctx.out_dir / "report.md"),
                        metadata={"rows": rows, "png": str(ctx.out_dir / "report.png"), "architecture": architecture})
