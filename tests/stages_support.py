"""Test-only environments and helpers for the post-training stage tests (tiny, CPU, seconds).

``letters``: a trivially learnable environment (reward = share of the completion's
characters that are the letter 'a'), dense enough for GRPO to move in a few steps.
``never``: an environment with no learning signal for an untrained model (only the exact
reference solution scores), for the cold-start path and the all-ties error.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from edgesmith.core.environment import Environment, Task, Verification
from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.stage import Artifact, Stage

EOS = "<|im_end|>"


def _answer(completion: str) -> str:
    return completion.split(EOS)[0]


class LettersEnvironment(Environment):
    """Reward = share of the answer's characters that are 'a' (the reference solution is all 'a')."""

    name = "letters"

    def tasks(self, split, n):
        offset = 0 if split == "train" else 10_000
        return [Task(id=f"letters-{split}-{i}", messages=[{"role": "user", "content": f"Write letters {offset + i}."}],
                     reference="a", solution="a a a a") for i in range(n)]

    def verify(self, task, completion):
        text = _answer(completion)
        share = sum(ch == "a" for ch in text) / len(text) if text else 0.0
        return Verification(share, share > 0.5, {})


class NeverEnvironment(Environment):
    """Only the exact reference answer scores 1; an untrained model never writes it."""

    name = "never"

    def tasks(self, split, n):
        offset = 0 if split == "train" else 10_000
        return [Task(id=f"never-{split}-{i}", messages=[{"role": "user", "content": f"Say the code {offset + i}."}],
                     reference="zebra-quartz-7", solution="zebra-quartz-7") for i in range(n)]

    def verify(self, task, completion):
        ok = _answer(completion).strip() == task.reference
        return Verification(1.0 if ok else 0.0, ok, {})


class StudyStage(Stage):
    """Leaves an artifact of a kind no post-training stage accepts."""

    name = "study_maker"

    def run(self, ctx):
        (ctx.out_dir / "study.db").write_text("")
        return Artifact("study", str(ctx.out_dir / "study.db"))


class _Plugins:
    @hookimpl
    def edgesmith_environments(self):
        return {"letters": LettersEnvironment, "never": NeverEnvironment}

    @hookimpl
    def edgesmith_stages(self):
        return {"study_maker": StudyStage}


PLUGINS = _Plugins()

TINY_MODEL = {"vocab_size": 300, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
              "num_key_value_heads": 1, "max_position_embeddings": 512,
              "layers": [{"op": "short_conv"}, {"op": "gqa"}]}


def write_corpus(path: Path) -> Path:
    """A small text dataset: chat-like lines with plenty of 'a's and the prompts' words."""
    docs = [f"<|im_start|>user\nWrite letters {i}.<|im_end|>\n<|im_start|>assistant\na a a a<|im_end|>\n"
            f"Say the code {i}. The cat sat on a mat {i} times." for i in range(60)]
    path.write_text("\n\n".join(docs))
    return path


def run_config(tmp_path: Path, stages: list[str], **sections: Any):
    """A composed-like run config with tiny settings for every stage; ``sections`` override them."""
    corpus = write_corpus(tmp_path / "corpus.txt")
    cfg = {
        "seed": 0,
        "init_from": None,
        "model": dict(TINY_MODEL),
        "pipeline": {"stages": stages},
        "pretrain": {"dataset": str(corpus), "max_steps": 4, "seq_len": 64, "batch_size": 4, "save_steps": 2},
        "sft": {"environments": ["letters"], "tasks_per_environment": 16, "max_steps": 4, "batch_size": 4,
                "save_steps": 2, "max_length": 128},
        "dpo": {"environments": ["letters"], "prompts_per_environment": 4, "rounds": 1, "samples": 3,
                "max_new_tokens": 12, "batch_size": 2, "max_length": 128},
        "rl": {"environments": ["letters"], "prompts_per_environment": 4, "max_steps": 2, "num_generations": 2,
               "max_new_tokens": 12, "save_steps": 1},
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return OmegaConf.create(cfg)


_BASE: dict[str, Path] = {}


@contextmanager
def registered_test_plugins():
    """The test environments/stage in the process-wide plugin manager, removed afterwards."""
    from edgesmith.core.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    manager.register(PLUGINS, name="tests:h7", provider="edgesmith tests (stages_support)")
    try:
        yield manager
    finally:
        manager.unregister("tests:h7")


def base_model(tmp_path_factory) -> Path:
    """A tiny edgesmith model + tokenizer pretrained for 4 steps (made once per test session)."""
    if "dir" not in _BASE:
        from edgesmith.core.pipeline import run_pipeline

        root = tmp_path_factory.mktemp("base")
        artifacts = run_pipeline(run_config(root, ["pretrain"]), root / "run")
        _BASE["dir"] = Path(artifacts["pretrain"].path)
    return _BASE["dir"]
