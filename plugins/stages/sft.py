"""The ``sft`` stage: TRL's SFTTrainer on chat-formatted environment data, assistant-only loss.

Rows are tokenized here with the tokenizer's chat template
(``return_assistant_tokens_mask=True``) and handed to SFTTrainer already tokenized:
chat messages and tool schemas differ from task to task, and an Arrow table would unify
them into one schema (filling absent keys with nulls that the template would render).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from edgesmith.core.environment import Task
from edgesmith.core.errors import StageError
from edgesmith.core.stage import Artifact, Stage, StageContext

from .sft_config import SFTStageConfig
from .model_artifact import model_artifact, model_input
from .model_files import check_init_from
from .model_io import is_finished_model_dir, load_model_and_tokenizer, save_model_dir
from .resume import train_with_resume
from .stage_callback import StageCallback
from .stage_plugins import build_environments, check_plugin_names
from .trainer_arguments import common_training_arguments


@dataclass
class ChatExample:
    """One supervised conversation: prompt messages, the assistant's answer, the tools offered."""

    messages: list[dict[str, Any]]
    completion: str
    tools: list[dict[str, Any]] | None = None
    environment: str = ""


def examples_from_tasks(env_name: str, tasks: list[Task]) -> list[ChatExample]:
    """Reference solutions as SFT examples (tasks without a solution are skipped)."""
    return [ChatExample(list(t.messages), t.solution, t.tools, env_name) for t in tasks if t.solution]


def tokenize_example(tokenizer: Any, example: ChatExample, max_length: int) -> dict[str, list[int]] | None:
    """``input_ids`` and ``assistant_masks`` of the conversation; None if no answer token fits."""
    answer = example.completion
    eos = tokenizer.eos_token or ""
    if eos and answer.endswith(eos):  # the template closes the turn itself
        answer = answer[: -len(eos)]
    messages = [*example.messages, {"role": "assistant", "content": answer}]
    out = tokenizer.apply_chat_template(messages, tools=example.tools, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True)
    ids, mask = list(out["input_ids"])[:max_length], list(out["assistant_masks"])[:max_length]
    if 1 not in mask:
        return None
    return {"input_ids": ids, "assistant_masks": mask}


def train_sft(ctx: StageContext, model_dir: Path, examples: list[ChatExample], options: SFTStageConfig,
              work_dir: Path, phase: str = "sft") -> tuple[Path, dict[str, Any]]:
    """Fine-tunes the model in ``model_dir`` on ``examples``; writes ``work_dir/model``.

    Checkpoints go to ``work_dir/checkpoints`` and an interrupted run resumes there.
    """
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    final = work_dir / "model"
    if is_finished_model_dir(final):
        return final, {"resumed": True}
    model, tokenizer = load_model_and_tokenizer(model_dir)
    if not tokenizer.chat_template or "generation" not in tokenizer.chat_template:
        raise StageError(ctx.name, f"the tokenizer in {model_dir} has no chat template with {{% generation %}} "
                                   "markers, needed for the assistant-only loss (edgesmith tokenizers carry one)")
    rows = [r for r in (tokenize_example(tokenizer, e, options.max_length) for e in examples) if r is not None]
    if len(rows) < len(examples):
        ctx.log_metrics(phase=phase, event="skipped_long_examples", skipped=len(examples) - len(rows),
                        max_length=options.max_length)
    if not rows:
        raise StageError(ctx.name, "no SFT example has an assistant answer within sft.max_length tokens")
    checkpoints = work_dir / "checkpoints"
    args = SFTConfig(
        **common_training_arguments(checkpoints, max_steps=options.max_steps, batch_size=options.batch_size,
                                    learning_rate=options.learning_rate, save_steps=options.save_steps,
                                    seed=options.seed, precision=options.precision,
                                    gradient_checkpointing=options.gradient_checkpointing,
                                    warmup_ratio=options.warmup_ratio),
        max_length=options.max_length,
        packing=False,
        remove_unused_columns=False,
        # Chats range from ~100 to ~400 tokens: batching similar lengths wastes far less on padding.
        train_sampling_strategy="group_by_length",
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, callbacks=[StageCallback(ctx, phase)])
    result = train_with_resume(trainer, checkpoints, ctx, phase)
    save_model_dir(trainer.model, tokenizer, final)
    return final, {"train_loss": result.training_loss, "examples": len(rows)}


class SFTStage(Stage):
    """Supervised fine-tuning on the environments' reference solutions."""

    name = "sft"
    options_class = SFTStageConfig
    config_keys = ("init_from",)
    data_parallel = True

    def check(self, cfg: Any, plugins: Any) -> None:
        check_plugin_names(plugins, "environment", self.options.environments, "sft.environments")
        check_init_from(OmegaConf.select(cfg, "init_from", default=None), "init_from")

    def run(self, ctx: StageContext) -> Artifact:
        options: SFTStageConfig = self.options
        source = model_input(ctx)
        environments = build_environments(ctx, options.environments, options.seed, options.difficulty)
        examples: list[ChatExample] = []
        per_env = {}
        for name, env in environments.items():
            found = examples_from_tasks(name, env.tasks("train", options.tasks_for(name)))
            per_env[name] = len(found)
            examples.extend(found)
        if not examples:
            raise StageError(ctx.name, f"the environments {options.environments} gave no reference solutions "
                                       "to train on")
        ctx.log_metrics(phase="data", examples_per_environment=per_env)
        final, facts = train_sft(ctx, source, examples, options, ctx.out_dir)
        ctx.log_metrics(phase="done", **facts)
        return model_artifact(final, source=str(source), examples_per_environment=per_env, **facts)
