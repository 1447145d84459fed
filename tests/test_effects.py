"""The direction of the pipeline's effects at test scale, with real training throughout.

A loop-prone checkpoint is built by real SFT: in the ``chant`` environment the right answer
ends after three words, but most training answers chant on past the training length, so
greedy decoding runs to the budget. On-policy DPO with the default jury (verifier, loop
judge, length) then prefers the sampled answers that end: the greedy loop rate must fall.
"""

from __future__ import annotations

import pytest
import torch

from edgesmith.core.environment import Correction, Environment, Task, Verification
from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.pipeline import run_pipeline
from stages_support import EOS, base_model, run_config

pytestmark = pytest.mark.slow  # DPO end to end on a loop-prone checkpoint

ANSWER = "la la la."


class ChantEnvironment(Environment):
    """'Chant N.': the answer is three words and a full stop; 3 of 4 training answers never end."""

    name = "chant"

    def tasks(self, split, n):
        offset = 0 if split == "train" else 10_000
        return [Task(id=f"chant-{split}-{i}", messages=[{"role": "user", "content": f"Chant {offset + i}."}],
                     reference=ANSWER, solution="la " * 60 if split == "train" and i % 4 else ANSWER)
                for i in range(n)]

    def verify(self, task, completion):
        ok = completion.split(EOS)[0].strip() == ANSWER
        return Verification(1.0 if ok else 0.0, ok, {})


class ExpertChantEnvironment(ChantEnvironment):
    """``chant`` with an expert: a chant is right up to where it parts from the answer."""

    name = "chant_expert"

    def correct(self, task, completion, ended=True):
        text = completion.split(EOS)[0]
        keep = next((i for i, (a, b) in enumerate(zip(text, ANSWER)) if a != b), min(len(text), len(ANSWER)))
        if text == ANSWER or (not ended and ANSWER.startswith(text)):
            return None
        return Correction(keep=keep, continuation=ANSWER[keep:])


class _Chant:
    @hookimpl
    def edgesmith_environments(self):
        return {"chant": ChantEnvironment, "chant_expert": ExpertChantEnvironment}


@pytest.fixture
def chant_registered():
    from edgesmith.core.plugin_manager import get_plugin_manager

    manager = get_plugin_manager()
    manager.register(_Chant(), name="tests:chant", provider="edgesmith tests (test_effects)")
    try:
        yield manager
    finally:
        manager.unregister("tests:chant")


def greedy_loop_rate(model_dir, n=24, environment=ChantEnvironment):
    from edgesmith.plugins.evaluation.rollout import generate_completions
    from edgesmith.plugins.loops.detector import detect_loop
    from edgesmith.plugins.stages.model_io import load_model_and_tokenizer

    model, tokenizer = load_model_and_tokenizer(model_dir)
    tasks = environment().tasks("eval", n)
    completions = generate_completions(model, tokenizer, tasks, temperature=0.0, max_new_tokens=64)
    return sum(detect_loop(list(c.token_ids), c.finished).looping for (c,) in completions) / n


def test_dpo_lowers_the_greedy_loop_rate_of_a_loop_prone_checkpoint(tmp_path, tmp_path_factory, chant_registered,
                                                                     one_thread):
    torch.manual_seed(0)
    cfg = run_config(tmp_path, ["sft", "dpo"], init_from=str(base_model(tmp_path_factory)),
                     sft={"environments": ["chant"], "tasks_per_environment": 64, "max_steps": 200,
                          "batch_size": 8, "max_length": 48, "learning_rate": 5e-3, "save_steps": 200},
                     dpo={"environments": ["chant"], "prompts_per_environment": 24, "rounds": 2, "samples": 6,
                          "temperature": 1.0, "max_new_tokens": 64, "batch_size": 8, "max_length": 96,
                          "learning_rate": 2e-3, "save_steps": 50})
    artifacts = run_pipeline(cfg, tmp_path / "run", chant_registered)
    after_sft = greedy_loop_rate(artifacts["sft"].path)
    after_dpo = greedy_loop_rate(artifacts["dpo"].path)
    assert after_sft >= 0.5, "the SFT checkpoint should loop on most prompts (3 of 4 training answers never end)"
    assert after_dpo <= after_sft - 0.25, (after_sft, after_dpo)


def test_dpo_on_the_experts_corrections_alone_lowers_the_greedy_loop_rate(tmp_path, tmp_path_factory,
                                                                        chant_registered, one_thread):
    """No whole-completion pairs: only the expert's next token (the full stop after three
    words) against the chant's (another word), at the point where each candidate goes wrong."""
    torch.manual_seed(0)
    cfg = run_config(tmp_path, ["sft", "dpo"], init_from=str(base_model(tmp_path_factory)),
                     sft={"environments": ["chant_expert"], "tasks_per_environment": 64, "max_steps": 200,
                          "batch_size": 8, "max_length": 48, "learning_rate": 5e-3, "save_steps": 200},
                     dpo={"environments": ["chant_expert"], "prompts_per_environment": 24, "rounds": 1,
                          "samples": 4, "temperature": 1.0, "max_new_tokens": 64, "batch_size": 8,
                          "max_length": 96, "learning_rate": 2e-3, "save_steps": 50, "rejected": "none",
                          "corrections": "decision", "epochs": 3})
    artifacts = run_pipeline(cfg, tmp_path / "run", chant_registered)
    pairs = [line for line in (tmp_path / "run" / "dpo" / "round_0" / "pairs.jsonl").read_text().splitlines() if line]
    assert pairs and all('"correction": true' in line for line in pairs)
    after_sft = greedy_loop_rate(artifacts["sft"].path, environment=ExpertChantEnvironment)
    after_dpo = greedy_loop_rate(artifacts["dpo"].path, environment=ExpertChantEnvironment)
    assert after_sft >= 0.5, "the SFT checkpoint should loop on most prompts (3 of 4 training answers never end)"
    assert after_dpo <= after_sft - 0.25, (after_sft, after_dpo)
