"""The ``rl`` stage: RL with verifiable rewards through TRL's GRPOTrainer, with cold-start recovery.

Rewards are reward plugins (default: the environment verifier, TRL's n-gram repetition
penalty, the tool-call format). Prompts are rendered with the tokenizer's chat template,
tools included, so every task keeps its own tool list. While training, the verifier's
rewards per prompt group are tracked per environment (:mod:`.cold_start`); an environment
without learning signal is reported, and with ``rl.cold_start=auto`` recovered: RL-like SFT
samples for it are built, SFT re-runs from the current checkpoint, and RL resumes from there
for the remaining steps. Phases live in ``phase_0/``, ``cold_start_sft/`` and ``phase_1/``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from rich.console import Console

from edgesmith.core import distributed
from edgesmith.core.environment import Environment, Task
from edgesmith.core.errors import ConfigError
from edgesmith.core.reward import RewardRuntime
from edgesmith.core.stage import Artifact, Stage, StageContext

from .cold_start import ColdStartCallback, ColdStartEvent, SignalTracker, read_events, write_events
from .preferences import prompt_text
from .rl_config import RLStageConfig
from .sft import ChatExample, train_sft
from .sft_config import SFTStageConfig
from .model_artifact import model_artifact, model_input
from .model_files import check_init_from
from .model_io import is_finished_model_dir, load_model_and_tokenizer, save_model_dir, write_text_atomic
from .resume import train_with_resume
from .stage_callback import StageCallback
from .stage_plugins import build_environments, check_plugin_names
from .trainer_arguments import common_training_arguments


def task_key(env_name: str, task: Task) -> str:
    return f"{env_name}:{task.id}"


def strip_added_bos(tokenizer: Any, text: str) -> str:
    """Drops a rendered BOS when the tokenizer adds its own (so a prompt never has two)."""
    bos = tokenizer.bos_token
    if bos and text.startswith(bos):
        ids = tokenizer(text)["input_ids"]
        if len(ids) > 1 and ids[0] == ids[1] == tokenizer.bos_token_id:
            return text[len(bos):]
    return text


def recovery_examples(model_dir: Path, env_name: str, env: Environment, options: RLStageConfig,
                      ) -> tuple[list[ChatExample], dict[str, int]]:
    """RL-like SFT samples: verified high-temperature samples, else the reference solution."""
    import torch

    from edgesmith.plugins.evaluation.rollout import generate_completions

    tasks = env.tasks("train", options.cold_start_tasks)
    model, tokenizer = load_model_and_tokenizer(model_dir)
    model.eval()
    with torch.no_grad():
        sampled = generate_completions(model, tokenizer, tasks, n_samples=options.cold_start_samples,
                                       temperature=options.cold_start_temperature,
                                       max_new_tokens=options.max_new_tokens, seed=options.seed)
    examples: list[ChatExample] = []
    counts = {"tasks": len(tasks), "verified_samples": 0, "reference_solutions": 0, "skipped": 0}
    for task, completions in zip(tasks, sampled):
        correct = next((c.text for c in completions if env.verify(task, c.text).correct), None)
        if correct is not None:
            counts["verified_samples"] += 1
            examples.append(ChatExample(list(task.messages), correct, task.tools, env_name))
        elif task.solution:
            counts["reference_solutions"] += 1
            examples.append(ChatExample(list(task.messages), task.solution, task.tools, env_name))
        else:
            counts["skipped"] += 1
    return examples, counts


def check_rollout_tools(plugins: Any, environments: list[str]) -> None:
    """``rl.python_tool`` needs an environment with rollout tools (asked of its class, not its name)."""
    offering = [name for name in plugins.names("environment")
                if plugins.get("environment", name).offers_rollout_tools()]
    for name in environments:
        if not plugins.get("environment", name).offers_rollout_tools():
            raise ConfigError("rl.python_tool", True, f"only with an environment that offers rollout tools: "
                                                      f"rl.environments=[{' or '.join(offering) or 'none registered'}]",
                              detail=f"environment '{name}' has no rollout tools")


class RLStage(Stage):
    """GRPO with verifiable rewards, the repetition penalty and a tool-call format reward."""

    name = "rl"
    options_class = RLStageConfig
    config_keys = ("init_from",)
    data_parallel = True  # GRPOTrainer splits the rollouts across processes and gathers the rewards

    def check(self, cfg: Any, plugins: Any) -> None:
        check_plugin_names(plugins, "environment", self.options.environments, "rl.environments")
        if self.options.python_tool:
            check_rollout_tools(plugins, self.options.environments)
        plugins.check_refs("reward", self.options.rewards, "rl.rewards")
        check_init_from(OmegaConf.select(cfg, "init_from", default=None), "init_from")

    def run(self, ctx: StageContext) -> Artifact:
        options: RLStageConfig = self.options
        source = model_input(ctx)
        environments = build_environments(ctx, options.environments, options.seed, options.difficulty)
        tasks = {task_key(name, t): (name, t) for name, env in environments.items()
                 for t in env.tasks("train", options.prompts_per_environment)}
        events_path = ctx.out_dir / "cold_start.json"
        events = read_events(events_path)
        console = Console(stderr=True)

        def detected(step: int, flagged: list[str], signal: dict) -> None:
            message = "; ".join(f"missing SFT data for {env}" for env in flagged)
            action = "recovering" if options.cold_start == "auto" else "reported"
            console.print(f"[yellow]rl: {message}[/yellow] (step {step}: {json.dumps(signal)})")
            ctx.log_metrics(phase="cold_start", step=step, missing=flagged, signal=signal, action=action)
            events.append(ColdStartEvent(step=step, environments=flagged, signal=signal,
                                         action="reported", message=message))
            write_events(events_path, events)

        check = options.cold_start != "off"
        model_dir, info = self._grpo(ctx, source, ctx.out_dir / "phase_0", options.max_steps, tasks, environments,
                                     check=check, detected=detected)
        steps_done = info["steps"]
        flagged = info.get("flagged", [])
        if flagged and options.cold_start == "auto":
            if events and events[-1].action == "recovered":  # a re-run after the recovery finished
                model_dir = Path(events[-1].recovery["sft_model"])
            else:
                model_dir = self._recover(ctx, model_dir, flagged, environments, events, events_path)
            remaining = options.max_steps - steps_done
            if remaining > 0:
                model_dir, info = self._grpo(ctx, model_dir, ctx.out_dir / "phase_1", remaining, tasks, environments,
                                             check=False, detected=detected)
                steps_done += info["steps"]
        return model_artifact(model_dir, steps=steps_done, cold_start=[e.__dict__ for e in events],
                              temperature=options.temperature)

    def _recover(self, ctx: StageContext, model_dir: Path, flagged: list[str], environments: dict[str, Environment],
                 events: list[ColdStartEvent], events_path: Path) -> Path:
        """Builds RL-like SFT samples for the flagged environments and re-runs SFT from ``model_dir``."""
        options: RLStageConfig = self.options
        examples, counts = [], {}
        for env_name in flagged:
            found, counts[env_name] = recovery_examples(model_dir, env_name, environments[env_name], options)
            examples.extend(found)
        if not examples:
            ctx.log_metrics(phase="cold_start", event="no_recovery_data", per_environment=counts)
            return model_dir
        sft_options = SFTStageConfig(environments=flagged, max_steps=options.cold_start_sft_steps, batch_size=4,
                                     learning_rate=options.cold_start_sft_learning_rate, seed=options.seed,
                                     precision=options.precision,
                                     gradient_checkpointing=options.gradient_checkpointing,
                                     max_length=options.cold_start_sft_max_length,
                                     save_steps=options.cold_start_sft_steps)
        sft_model, facts = train_sft(ctx, model_dir, examples, sft_options, ctx.out_dir / "cold_start_sft",
                                     phase="cold-start sft")
        event = events[-1]
        event.action = "recovered"
        event.recovery = {"per_environment": counts, "sft_model": str(sft_model), **facts}
        write_events(events_path, events)
        ctx.log_metrics(phase="cold_start_recovered", per_environment=counts, **facts)
        return sft_model

    def _grpo(self, ctx: StageContext, model_dir: Path, work: Path, steps: int, tasks: dict[str, tuple[str, Task]],
              environments: dict[str, Environment], check: bool, detected: Any) -> tuple[Path, dict[str, Any]]:
        """One GRPO phase from ``model_dir``; writes ``work/model`` and ``work/result.json``."""
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        options: RLStageConfig = self.options
        final, result_path = work / "model", work / "result.json"
        if is_finished_model_dir(final) and result_path.is_file():
            return final, json.loads(result_path.read_text())
        if distributed.is_main():
            work.mkdir(parents=True, exist_ok=True)
        model, tokenizer = load_model_and_tokenizer(model_dir)
        tokenizer.padding_side = "left"
        tracker = SignalTracker(options.num_generations)
        # Rewards that verify tasks report each score to the tracker (the cold-start signal).
        runtime = RewardRuntime(environments=environments, tasks=tasks, tokenizer=tokenizer,
                                on_score=tracker.on_score)
        reward_funcs = [ctx.plugins.build_ref("reward", ref, f"rl.rewards[{i}]", runtime=runtime)
                        for i, ref in enumerate(options.rewards)]
        weights = [float(ref.weight) for ref in options.rewards]
        rows = {"prompt": [], "task_key": [], "tools": []}
        tools: list = []
        if options.python_tool:
            from .rl_tools import attach_response_template

            tools = [tool for env in environments.values() for tool in env.rollout_tools()]
            attach_response_template(tokenizer)
        for key, (_, task) in tasks.items():
            # With a tool, TRL renders chat prompts itself (with the tool's schema); otherwise each
            # prompt is rendered here so it keeps its own task's tool list.
            rows["prompt"].append(list(task.messages) if tools else
                                  strip_added_bos(tokenizer, prompt_text(tokenizer, task)))
            rows["task_key"].append(key)
            rows["tools"].append(json.dumps(task.tools) if task.tools else "")
        checkpoints = work / "checkpoints"
        args = GRPOConfig(
            **common_training_arguments(checkpoints, max_steps=steps,
                                        batch_size=options.prompts_per_step * options.num_generations,
                                        learning_rate=options.learning_rate, save_steps=options.save_steps,
                                        seed=options.seed, precision=options.precision,
                                        gradient_checkpointing=options.gradient_checkpointing),
            num_generations=options.num_generations,
            temperature=options.temperature,
            max_completion_length=options.max_new_tokens,
            beta=options.beta,
            reward_weights=weights,
            remove_unused_columns=False,
            max_tool_calling_iterations=options.max_tool_calls if tools else None,
        )
        cold = ColdStartCallback(tracker, options.cold_start_check_steps, options.cold_start_flat_share,
                                 options.cold_start_max_reward, stop_on_detection=options.cold_start == "auto",
                                 on_detect=detected)
        callbacks = [StageCallback(ctx, work.name), *([cold] if check else [])]
        trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=Dataset.from_dict(rows),
                              processing_class=tokenizer, callbacks=callbacks,
                              tools=tools or None)
        train_with_resume(trainer, checkpoints, ctx, work.name)
        tracker.sync()  # every process's verifier scores, so the signal below is the whole run's
        ctx.log_metrics(phase=work.name, event="signal", signal=tracker.snapshot())
        save_model_dir(trainer.model, tokenizer, final)
        info = {"steps": trainer.state.global_step, "flagged": cold.flagged if check else [],
                "signal": tracker.snapshot()}
        write_text_atomic(result_path, json.dumps(info, indent=2))
        return final, info
