"""The ``pretrain`` stage: language-model training of the chosen architecture (or an import).

The architecture comes from the latest ``model_config`` artifact (the search's choice),
else from ``cfg.model``. The tokenizer is trained on the same corpus with the
architecture's vocabulary size and saved with every checkpoint, so each checkpoint
directory is a complete ``from_pretrained`` model. Training is TRL's SFTTrainer on plain
text packed into blocks of ``seq_len`` tokens (causal LM loss on every token).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from omegaconf import OmegaConf

import edgesmith.core.modeling  # noqa: F401  (registers "edgesmith" with the Auto classes)
from edgesmith.core.errors import ConfigError, DataError, StageError
from edgesmith.core.jsonl import line_error, read_jsonl, read_text_lines
from edgesmith.core.stage import Artifact, Stage, StageContext

from .pretrain_config import PretrainConfig
from .model_artifact import model_artifact
from .model_files import check_init_from, check_model_dir
from .model_io import is_finished_model_dir, load_model_and_tokenizer, save_model_dir
from .resume import train_with_resume
from .stage_callback import StageCallback
from .trainer_arguments import common_training_arguments


DATASET_ACCEPTED = ("a .txt/.md file of UTF-8 text (documents separated by blank lines), a .jsonl file (one JSON "
                    "object per line with a string field named by pretrain.text_field) or a directory of .txt files")


def _jsonl_documents(path: Path, text_field: str) -> Iterator[str]:
    accepted = f"one JSON object per line with a string field '{text_field}' (pretrain.text_field)"
    for number, row in read_jsonl(path, accepted):
        if not isinstance(row, dict) or not isinstance(row.get(text_field), str):
            raise line_error(path, number, f"expected a JSON object with a string field '{text_field}'", accepted)
        yield row[text_field]


def _text_documents(path: Path) -> Iterator[str]:
    block: list[str] = []
    for _, line in read_text_lines(path, DATASET_ACCEPTED):
        if line.strip():
            block.append(line)
        elif block:
            yield "".join(block).strip()
            block = []
    if block:
        yield "".join(block).strip()


def iter_text_dataset(path: str | Path, text_field: str = "text") -> Iterator[str]:
    """Documents of a user's text dataset (.txt, .jsonl or a directory of .txt files), streamed."""
    path = Path(str(path)).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.txt"))
        if not files:
            raise DataError(f"{path}: holds no .txt files (pretrain.dataset); accepted: {DATASET_ACCEPTED}")
        for file in files:
            yield from iter_text_dataset(file, text_field)
        return
    if not path.is_file():
        raise DataError(f"{path}: does not exist (pretrain.dataset); accepted: {DATASET_ACCEPTED}")
    if path.suffix == ".jsonl":
        yield from _jsonl_documents(path, text_field)
    elif path.suffix in (".txt", ".md", ""):
        yield from _text_documents(path)
    else:
        raise DataError(f"{path}: unknown file type '{path.suffix}' (pretrain.dataset); accepted: {DATASET_ACCEPTED}")


def read_text_dataset(path: str | Path, text_field: str = "text") -> list[str]:
    """Documents of a user's text dataset (.txt, .jsonl or a directory of .txt files)."""
    return list(iter_text_dataset(path, text_field))


def corpus_texts(options: PretrainConfig, seed: int) -> list[str]:
    """The documents to train on: the user's dataset or the built-in world's corpus."""
    if options.dataset:
        docs = read_text_dataset(options.dataset, options.text_field)
    else:
        from edgesmith.plugins.world.corpus import build_corpus

        docs = [d if isinstance(d, str) else getattr(d, "text", str(d))
                for d in build_corpus(options.n_documents, seed, environments=list(options.environments),
                                      chat_fraction=options.chat_fraction, difficulty=options.difficulty)]
    if not docs:
        raise StageError("pretrain", "the training corpus is empty")
    return docs


def architecture_config(ctx: StageContext) -> Any:
    """The chosen architecture: the latest model_config artifact, else ``cfg.model``."""
    from transformers import AutoConfig

    artifact = ctx.latest("model_config")
    if artifact is not None:
        return AutoConfig.from_pretrained(artifact.path)
    if ctx.artifacts:
        have = ", ".join(f"{n} gave '{a.kind}'" for n, a in ctx.artifacts.items())
        raise StageError(ctx.name, f"reads a 'model_config' artifact (from search) or cfg.model; got: {have}")
    section = OmegaConf.select(ctx.config, "model", default=None)
    if section is None:
        raise StageError(ctx.name, "no architecture: run search before pretrain, or set model=<preset>")
    from edgesmith.core.validation import model_config_from_cfg

    return model_config_from_cfg(section)


def train_tokenizer_for(texts: list[str], vocab_size: int, save_dir: Path) -> Any:
    """The corpus tokenizer (reused from ``save_dir`` when an interrupted run made it already)."""
    from transformers import AutoTokenizer

    from edgesmith.core import distributed

    # Under a multi-process launch the main process trains and saves it; the others load it.
    if distributed.from_main((save_dir / "tokenizer.json").is_file()) or not distributed.is_main():
        distributed.wait_for_everyone()
        return AutoTokenizer.from_pretrained(str(save_dir))
    from edgesmith.plugins.world.tokenizer import train_tokenizer

    # Saved beside and renamed: a kill during the save never leaves a half tokenizer to reuse.
    partial = save_dir.with_name(save_dir.name + ".partial")
    for stale in (partial, save_dir):  # leftovers of a killed save (no tokenizer.json in save_dir)
        if stale.exists():
            shutil.rmtree(stale)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, save_dir=str(partial))
    os.replace(partial, save_dir)
    distributed.wait_for_everyone()
    return tokenizer


def import_checkpoint(source: Path, destination: Path, ctx: StageContext, options: PretrainConfig) -> Path:
    """Brings an existing checkpoint in as the stage's model (LFM2 through the converter)."""
    model_type = json.loads((source / "config.json").read_text()).get("model_type")
    if model_type == "lfm2":
        from edgesmith.plugins.interop.lfm2 import import_lfm2

        from edgesmith.core import distributed

        converted = destination.with_name("imported_lfm2")
        if distributed.is_main():  # one process converts; the others read its result
            import_lfm2(str(source), str(converted), overwrite=True)
        distributed.wait_for_everyone()
        source = converted
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(str(source), dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(ctx.name, f"cannot load init_from='{source}' as a causal LM "
                                   f"(accepted: edgesmith, LFM2 or any transformers causal LM directory): {exc}") from exc
    if (source / "tokenizer.json").is_file() or (source / "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    else:
        # A checkpoint without a tokenizer gets one trained on the corpus with its vocab size.
        tokenizer = train_tokenizer_for(corpus_texts(options, options.seed), model.config.vocab_size,
                                        destination.with_name("tokenizer"))
    return save_model_dir(model, tokenizer, destination)


class PretrainStage(Stage):
    """Pretrains the chosen architecture on the corpus (or imports ``init_from``)."""

    name = "pretrain"
    options_class = PretrainConfig
    config_keys = ("model", "init_from")
    data_parallel = True

    def check(self, cfg: Any, plugins: Any) -> None:
        """The start model or the architecture, and the dataset (every line), before any stage runs."""
        options: PretrainConfig = self.options
        top = OmegaConf.select(cfg, "init_from", default=None)
        check_init_from(options.init_from, "pretrain.init_from")
        check_init_from(top, "init_from")
        if options.dataset:
            for _ in iter_text_dataset(options.dataset, options.text_field):
                pass  # streamed: a bad line is a DataError naming file and line now, not after earlier stages
        stages = list(OmegaConf.select(cfg, "pipeline.stages", default=None) or [])
        searched = "search" in stages[: stages.index(self.name)] if self.name in stages else False
        section = OmegaConf.select(cfg, "model", default=None)
        if options.init_from or top or searched or section is None:
            return
        from edgesmith.core.validation import model_config_from_cfg
        from edgesmith.plugins.world.tokenizer import minimum_vocab_size

        config = model_config_from_cfg(section)
        config.resolve_operators(plugins)
        minimum = minimum_vocab_size()
        if config.vocab_size < minimum:
            raise ConfigError("model.vocab_size", config.vocab_size,
                              f"an integer >= {minimum}: the tokenizer pretrain trains needs 256 byte symbols and "
                              "the special tokens")

    def run(self, ctx: StageContext) -> Artifact:
        options: PretrainConfig = self.options
        final = ctx.out_dir / "model"
        if is_finished_model_dir(final):
            return model_artifact(final, resumed=True)
        source = options.init_from or OmegaConf.select(ctx.config, "init_from", default=None)
        if source:
            imported = import_checkpoint(check_model_dir(source, "init_from", ctx.name), final, ctx, options)
            ctx.log_metrics(phase="import", source=str(source))
            if not options.train_after_init:
                return model_artifact(imported, init_from=str(source))
            model, tokenizer = load_model_and_tokenizer(imported)
            texts = corpus_texts(options, options.seed)
        else:
            config = architecture_config(ctx)
            texts = corpus_texts(options, options.seed)
            tokenizer = train_tokenizer_for(texts, config.vocab_size, ctx.out_dir / "tokenizer")
            if len(tokenizer) > config.vocab_size:
                raise StageError(ctx.name, f"the tokenizer has {len(tokenizer)} tokens but the architecture's "
                                           f"vocab_size is {config.vocab_size}")
            for attr in ("pad_token_id", "bos_token_id", "eos_token_id"):
                value = getattr(tokenizer, attr, None)
                if value is not None:
                    setattr(config, attr, value)
            from transformers import AutoModelForCausalLM, set_seed

            set_seed(options.seed)
            model = AutoModelForCausalLM.from_config(config)
            if options.copy_warmup_steps:
                model = self._copy_warmup(ctx, model, tokenizer)
        result = self._train(ctx, model, tokenizer, texts)
        save_model_dir(model, tokenizer, final)
        n_params = sum(p.numel() for p in model.parameters())
        ctx.log_metrics(phase="done", parameters=n_params, train_loss=result.training_loss)
        return model_artifact(final, parameters=n_params, vocab_size=model.config.vocab_size,
                              train_loss=result.training_loss, documents=len(texts), init_from=source)

    def _copy_warmup(self, ctx: StageContext, model: Any, tokenizer: Any) -> Any:
        """The copy curriculum (:mod:`.copy_warmup`) on a fresh model; its result is kept for resume."""
        from .copy_warmup import CopyWarmup, run_copy_warmup

        options: PretrainConfig = self.options
        work = ctx.out_dir / "copy_warmup"
        if is_finished_model_dir(work / "model"):
            return load_model_and_tokenizer(work / "model")[0]
        warmup = CopyWarmup(sequences=options.copy_warmup_steps * options.copy_warmup_batch_size,
                            seq_len=options.copy_warmup_seq_len)
        facts = run_copy_warmup(ctx, model, tokenizer, warmup, steps=options.copy_warmup_steps,
                                batch_size=options.copy_warmup_batch_size,
                                learning_rate=options.copy_warmup_learning_rate, seed=options.seed, work_dir=work,
                                target_loss=options.copy_warmup_target_loss, precision=options.precision,
                                gradient_checkpointing=options.gradient_checkpointing)
        save_model_dir(model, tokenizer, work / "model")
        ctx.log_metrics(phase="copy_warmup_done", **facts)
        return model

    def _train(self, ctx: StageContext, model: Any, tokenizer: Any, texts: list[str]) -> Any:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        options: PretrainConfig = self.options
        checkpoints = ctx.out_dir / "checkpoints"
        args = SFTConfig(
            **common_training_arguments(checkpoints, max_steps=options.max_steps, batch_size=options.batch_size,
                                        learning_rate=options.learning_rate, save_steps=options.save_steps,
                                        seed=options.seed, precision=options.precision,
                                        gradient_checkpointing=options.gradient_checkpointing,
                                        warmup_ratio=options.warmup_ratio),
            dataset_text_field="text",
            max_length=options.seq_len,
            packing=True,
            # Classic LM pretraining: contiguous blocks of seq_len tokens in a [batch, seq_len] tensor (the
            # padding-free [1, batch*seq_len] layout of best-fit packing is several times slower on CPU).
            packing_strategy="wrapped",
            padding_free=False,
        )
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_dict({"text": texts}),
                             processing_class=tokenizer, callbacks=[StageCallback(ctx, "pretrain")])
        return train_with_resume(trainer, checkpoints, ctx, "pretrain")
