"""The ``dpo`` stage: on-policy rounds of preference data, trained with TRL's DPOTrainer.

Round r: the policy (the input model in round 0, round r-1's result after) writes k
samples plus one greedy completion per prompt; the jury scores them; best vs worst pairs
are written to ``round_<r>/pairs.jsonl``; DPOTrainer trains on them with the reference
fixed to the policy at the start of the round (length-normalized ``sigmoid_norm`` loss by
default). A finished round is skipped on a re-run; an interrupted one reuses its pairs and
resumes from its last checkpoint.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from edgesmith.core import distributed
from edgesmith.core.errors import StageError
from edgesmith.core.stage import Artifact, Stage, StageContext

from .dpo_config import DPOStageConfig
from .preference_tokens import dpo_trainer_class, tokenize_pairs
from .preferences import PreferencePair, PreferenceRound, read_pairs, write_pairs
from .rollout_split import build_preferences_split
from .model_artifact import model_artifact, model_input
from .model_files import check_init_from
from .model_io import is_finished_model_dir, load_model_and_tokenizer, save_model_dir
from .resume import train_with_resume
from .stage_callback import StageCallback
from .stage_plugins import build_environments, check_plugin_names
from .trainer_arguments import common_training_arguments


def build_jury(ctx: StageContext, options: DPOStageConfig) -> Any:
    from edgesmith.plugins.judges.jury import Jury

    return Jury.from_refs(options.judges, options.aggregation, ctx.plugins, key="dpo")


def train_dpo(ctx: StageContext, policy_dir: Path, pairs: list[PreferencePair], options: DPOStageConfig,
              work_dir: Path, phase: str) -> tuple[Path, dict[str, Any]]:
    """One DPO pass on ``pairs`` starting from, and referenced to, the model in ``policy_dir``."""
    from trl import DPOConfig

    final = work_dir / "model"
    if is_finished_model_dir(final):
        return final, {"resumed": True}
    model, tokenizer = load_model_and_tokenizer(policy_dir)
    reference, _ = load_model_and_tokenizer(policy_dir)  # frozen: the policy at the start of the round
    steps = training_steps(options, len(pairs))
    checkpoints = work_dir / "checkpoints"
    args = DPOConfig(
        **common_training_arguments(checkpoints, max_steps=steps, batch_size=options.batch_size,
                                    learning_rate=options.learning_rate, save_steps=options.save_steps,
                                    seed=options.seed, precision=options.precision,
                                    gradient_checkpointing=options.gradient_checkpointing),
        **preference_losses(options),
        beta=options.beta,
        max_length=options.max_length,
        # the reference model is fixed: its log-probs are computed once, not again every epoch;
        # one process only: TRL keeps them in a cache file in the main process's own temporary
        # directory, which the other processes of a launch cannot open
        precompute_ref_log_probs=options.precompute_reference and not distributed.is_distributed(),
    )
    trainer_class = dpo_trainer_class()
    trainer = trainer_class(model=model, ref_model=reference, args=args,
                            train_dataset=tokenize_pairs(tokenizer, pairs, options.max_length),
                            processing_class=tokenizer, callbacks=[StageCallback(ctx, phase)])
    result = train_with_resume(trainer, checkpoints, ctx, phase)
    save_model_dir(trainer.model, tokenizer, final)
    return final, {"train_loss": result.training_loss, "steps": steps}


def training_steps(options: DPOStageConfig, n_pairs: int) -> int:
    """Optimizer steps of one round: ``steps_per_round``, or ``epochs`` passes over its pairs."""
    return options.steps_per_round or math.ceil(options.epochs * n_pairs / options.batch_size)


def preference_losses(options: DPOStageConfig) -> dict[str, list]:
    """TRL's loss list: the preference loss, plus NLL on the chosen side when ``sft_weight`` > 0."""
    if options.sft_weight > 0 and options.loss_type != "sft":
        return {"loss_type": [options.loss_type, "sft"], "loss_weights": [1.0, options.sft_weight]}
    return {"loss_type": [options.loss_type]}


class DPOStage(Stage):
    """On-policy, length-normalized DPO with a jury, for ``rounds`` rounds."""

    name = "dpo"
    options_class = DPOStageConfig
    config_keys = ("init_from",)
    data_parallel = True  # rollouts split and gathered (rollout_split.py), DPOTrainer through Accelerate

    def check(self, cfg: Any, plugins: Any) -> None:
        check_plugin_names(plugins, "environment", self.options.environments, "dpo.environments")
        plugins.check_refs("judge", self.options.judges, "dpo.judges")
        check_init_from(OmegaConf.select(cfg, "init_from", default=None), "init_from")

    def run(self, ctx: StageContext) -> Artifact:
        options: DPOStageConfig = self.options
        policy = model_input(ctx)
        environments = build_environments(ctx, options.environments, options.seed, options.difficulty)
        jury = build_jury(ctx, options)
        total = options.prompts_per_environment * options.rounds
        all_tasks = {name: env.tasks("train", total) for name, env in environments.items()}
        history = []
        for r in range(options.rounds):
            round_dir = ctx.out_dir / f"round_{r}"
            if distributed.is_main():
                round_dir.mkdir(parents=True, exist_ok=True)
            if is_finished_model_dir(round_dir / "model"):
                policy = round_dir / "model"
                continue
            pairs_path = round_dir / "pairs.jsonl"
            if pairs_path.is_file():
                prefs = read_pairs(pairs_path)
            else:
                lo, hi = r * options.prompts_per_environment, (r + 1) * options.prompts_per_environment
                tasks = [(name, t) for name, ts in all_tasks.items() for t in ts[lo:hi]]
                prefs = self._sample(policy, tasks, environments, jury, r)
                if distributed.is_main():
                    write_pairs(pairs_path, prefs)
            summary = _round_summary(r, prefs)
            ctx.log_metrics(phase="preferences", **summary)
            if not prefs.pairs:
                raise StageError(ctx.name, f"round {r}: every one of the {prefs.prompts} prompts was a tie (best and "
                                           "worst candidate scored the same), so there is no preference to learn; "
                                           "raise dpo.temperature or dpo.samples, add judges (dpo.judges), or train "
                                           f"the model further before DPO (pairs file: {pairs_path})")
            policy, facts = train_dpo(ctx, policy, prefs.pairs, options, round_dir, phase=f"round {r}")
            ctx.log_metrics(phase="round_done", round=r, **facts)
            history.append({**summary, **facts})
        return model_artifact(policy, rounds=options.rounds, loss_type=options.loss_type, history=history)

    def _sample(self, policy: Path, tasks: list, environments: dict, jury: Any, round_index: int) -> PreferenceRound:
        options: DPOStageConfig = self.options
        model, tokenizer = load_model_and_tokenizer(policy)
        model.eval()
        with torch.no_grad():
            return build_preferences_split(model, tokenizer, tasks, environments, jury, samples=options.samples,
                                           temperature=options.temperature, max_new_tokens=options.max_new_tokens,
                                           round_index=round_index, seed=options.seed,
                                           min_margin=options.min_margin, reference_chosen=options.reference_chosen,
                                           reference_wins_ties=options.reference_wins_ties,
                                           rejected=options.rejected, rejected_cut=options.rejected_cut,
                                           loop_branches=options.loop_branches,
                                           branch_chosen=options.branch_chosen,
                                           branch_from=options.branch_from, branch_at=options.branch_at,
                                           branch_correct_only=options.branch_correct_only,
                                           corrections=options.corrections,
                                           corrections_at=options.corrections_at)


def _round_summary(r: int, prefs: PreferenceRound) -> dict[str, Any]:
    pairs = prefs.pairs
    return {
        "round": r,
        "prompts": prefs.prompts,
        "pairs": len(pairs),
        "ties": prefs.ties,
        "loop_rate": round(prefs.loop_rate, 4),
        "mean_chosen_score": sum(p.chosen_score for p in pairs) / len(pairs) if pairs else None,
        "mean_rejected_score": sum(p.rejected_score for p in pairs) / len(pairs) if pairs else None,
        "loop_branch_pairs": sum(bool(p.prefix) and not p.correction for p in pairs),
        "correction_pairs": sum(p.correction for p in pairs),
        "prompts_paired": len({(p.environment, p.task_id) for p in pairs}),
        "greedy_chosen": sum(any(c.greedy and c.text == p.chosen for c in p.candidates) for p in pairs),
        "reference_chosen": sum(any(c.reference and c.text == p.chosen for c in p.candidates) for p in pairs),
    }
