"""The ``eval`` stage: evaluates the latest model artifact (loop rate, accuracy, speed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from edgesmith.core.errors import ConfigError
from edgesmith.core.stage import Artifact, Stage, StageContext
from edgesmith.plugins.evaluation.options import EvalOptions


class EvalStage(Stage):
    """Runs :func:`edgesmith.plugins.evaluation.evaluate.evaluate` on the latest ``model``.

    Options are those of ``edgesmith eval`` minus ``model_path`` (``eval.n_prompts=...``).
    The artifact is a ``report`` (the stage directory) whose metadata holds the summary.
    """

    name = "eval"
    options_class = EvalOptions

    def check(self, cfg: Any, plugins: Any) -> None:
        from edgesmith.plugins.stages.model_files import check_init_from
        from edgesmith.plugins.stages.stage_plugins import check_plugin_names

        if self.options.tasks_file:
            if not Path(self.options.tasks_file).expanduser().is_file():
                raise ConfigError("eval.tasks_file", self.options.tasks_file, "a JSONL file of tasks that exists")
        else:
            check_plugin_names(plugins, "environment", self.options.envs, "eval.envs")
        check_init_from(OmegaConf.select(cfg, "init_from", default=None), "init_from")

    def run(self, ctx: StageContext) -> Artifact:
        from edgesmith.plugins.evaluation.evaluate import evaluate
        from edgesmith.plugins.stages.model_artifact import model_input

        model_dir = model_input(ctx)
        results = evaluate(self.options, model_dir, out_dir=ctx.out_dir, plugins=ctx.plugins)
        keys = ("n", "loop_rate", "loop_rate_ci95", "accuracy", "accuracy_ci95", "mean_length", "eos_share",
                "budget_share")
        summary = {env: {mode: {k: m[k] for k in keys}
                         for mode, m in modes.items()}
                   for env, modes in results["environments"].items()}
        ctx.log_metrics(**{f"{env}/{mode}/{k}": v for env, modes in summary.items()
                           for mode, m in modes.items() for k, v in m.items() if not k.endswith("_ci95")})
        return Artifact(kind="report", path=str(ctx.out_dir), metadata={"model": str(model_dir), "summary": summary})
