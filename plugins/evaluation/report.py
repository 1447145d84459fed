"""Writes an evaluation's results: JSON, a markdown table, a PNG chart, and every completion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

COLUMNS = ("env", "mode", "n", "loop rate", "loop 95% CI", "accuracy", "accuracy 95% CI", "EOS share",
           "budget share", "mean reward", "mean length", "tokens/s")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _interval(ci: list[float] | None) -> str:
    return "-" if not ci else f"[{ci[0]:.1%}, {ci[1]:.1%}]"


def markdown_table(results: dict[str, Any]) -> str:
    """One row per environment and decoding mode."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for env, modes in results["environments"].items():
        for mode, m in modes.items():
            speed = f"{m['tokens_per_s']:.1f}" if m.get("tokens_per_s") else "-"
            cells = [env, mode, str(m["n"]), _pct(m["loop_rate"]), _interval(m["loop_rate_ci95"]),
                     _pct(m["accuracy"]), _interval(m.get("accuracy_ci95")),
                     _pct(m.get("eos_share", m.get("finished_rate"))), _pct(m.get("budget_share")),
                     f"{m['mean_reward']:.3f}", f"{m['mean_length']:.1f}", speed]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> None:
    """Loop rate (with Wilson 95% error bars) and accuracy per environment, one bar per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = list(results["environments"])
    modes = sorted({m for per_env in results["environments"].values() for m in per_env})
    fig, (ax_loop, ax_acc) = plt.subplots(1, 2, figsize=(4 + 2 * len(envs), 4))
    width = 0.8 / max(1, len(modes))
    for k, mode in enumerate(modes):
        xs, loops, errors, accs, acc_errors = [], [], [[], []], [], [[], []]
        for i, env in enumerate(envs):
            m = results["environments"][env].get(mode)
            if m is None:
                continue
            xs.append(i + (k - (len(modes) - 1) / 2) * width)
            loops.append(m["loop_rate"])
            # clamp float noise: the interval always contains the rate
            errors[0].append(max(0.0, m["loop_rate"] - m["loop_rate_ci95"][0]))
            errors[1].append(max(0.0, m["loop_rate_ci95"][1] - m["loop_rate"]))
            accs.append(m["accuracy"])
            low, high = m.get("accuracy_ci95") or (m["accuracy"], m["accuracy"])
            acc_errors[0].append(max(0.0, m["accuracy"] - low))
            acc_errors[1].append(max(0.0, high - m["accuracy"]))
        ax_loop.bar(xs, loops, width, yerr=errors, capsize=3, label=mode)
        ax_acc.bar(xs, accs, width, yerr=acc_errors, capsize=3, label=mode)
    for ax, title in ((ax_loop, "doom-loop rate (Wilson 95% CI)"), (ax_acc, "accuracy (Wilson 95% CI)")):
        ax.set_xticks(range(len(envs)), envs)
        ax.set_ylim(0, 1)
        ax.set_title(title)
        ax.legend()
    fig.suptitle(str(results.get("model", "")), fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: dict[str, Any], records: list[dict[str, Any]], out_dir: str | Path) -> dict[str, Path]:
    """Writes results.json, report.md, report.png and completions.jsonl; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "results.json", "markdown": out / "report.md", "png": out / "report.png",
             "completions": out / "completions.jsonl"}
    paths["json"].write_text(json.dumps(results, indent=2, default=str))
    options = results.get("options", {})
    header = (f"# Evaluation of {results.get('model')}\n\nmax_new_tokens={options.get('max_new_tokens')}, "
              f"temperature={options.get('temperature')} (sampled, {options.get('samples')} per prompt on "
              f"{'every prompt' if options.get('sampled_prompts') is None else 'the first ' + str(options['sampled_prompts'])}), "
              f"difficulty={options.get('difficulty')}. A loop is a generation that hit the token budget "
              "with a repeating tail; intervals are Wilson's 95% score intervals. EOS share: generations that "
              "ended by themselves; budget share: those cut at the token budget.\n\n")
    paths["markdown"].write_text(header + markdown_table(results) + "\n")
    plot(results, paths["png"])
    with open(paths["completions"], "w") as f:
        for record in records:
            f.write(json.dumps(record, default=str) + "\n")
    return paths
