"""RL with verifiable rewards (TRL GRPO) and the cold-start recovery."""

from __future__ import annotations

import json

import pytest
import torch

from edgesmith.core.pipeline import run_pipeline
from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
from stages_support import LettersEnvironment, base_model, registered_test_plugins, run_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def manager():
    with registered_test_plugins() as registered:
        yield registered


def mean_reward(model_dir, n_tasks=8, samples=4) -> float:
    from edgesmith.plugins.evaluation.rollout import generate_completions

    model, tokenizer = load_model_and_tokenizer(model_dir)
    env = LettersEnvironment(seed=0)
    tasks = env.tasks("eval", n_tasks)
    outs = generate_completions(model, tokenizer, tasks, n_samples=samples, temperature=1.0, max_new_tokens=12,
                                seed=123)
    rewards = [env.verify(t, c.text).reward for t, cs in zip(tasks, outs) for c in cs]
    return sum(rewards) / len(rewards)


@pytest.mark.slow
def test_grpo_raises_the_mean_reward_on_a_learnable_environment(tmp_path, tmp_path_factory, manager):
    source = base_model(tmp_path_factory)
    cfg = run_config(tmp_path, ["rl"], init_from=str(source),
                     rl={"max_steps": 12, "prompts_per_step": 4, "num_generations": 4, "learning_rate": 0.1,
                         "prompts_per_environment": 16, "save_steps": 100, "cold_start": "off",
                         "rewards": [{"name": "verifier", "weight": 1.0}]})
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    before, after = mean_reward(source), mean_reward(artifacts["rl"].path)
    assert after > before + 0.25, (before, after)
    logged = [json.loads(l) for l in (tmp_path / "run" / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert any("rewards/verifier/mean" in r for r in logged)


@pytest.mark.slow
def test_cold_start_detects_missing_signal_and_reruns_sft(tmp_path, tmp_path_factory, manager):
    cfg = run_config(tmp_path, ["rl"], init_from=str(base_model(tmp_path_factory)),
                     rl={"environments": ["never"], "max_steps": 3, "cold_start": "auto",
                         "cold_start_check_steps": 1, "cold_start_tasks": 4, "cold_start_samples": 2,
                         "cold_start_sft_steps": 2, "cold_start_sft_max_length": 128})
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    stage_dir = tmp_path / "run" / "rl"
    events = json.loads((stage_dir / "cold_start.json").read_text())
    assert len(events) == 1
    event = events[0]
    assert event["environments"] == ["never"] and event["message"] == "missing SFT data for never"
    assert event["signal"]["never"]["flat_share"] == 1.0 and event["action"] == "recovered"
    # nothing sampled was right, so the reference solutions were the SFT data
    assert event["recovery"]["per_environment"]["never"]["reference_solutions"] == 4
    assert (stage_dir / "cold_start_sft" / "model" / "_done").is_file()
    # RL resumed from the re-trained model for the remaining steps
    assert artifacts["rl"].path.endswith("phase_1/model")
    assert artifacts["rl"].metadata["steps"] == 3
    assert artifacts["rl"].metadata["cold_start"][0]["action"] == "recovered"


@pytest.mark.slow
def test_cold_start_report_only_keeps_training(tmp_path, tmp_path_factory, manager):
    cfg = run_config(tmp_path, ["rl"], init_from=str(base_model(tmp_path_factory)),
                     # 4 samples of 24 tokens per prompt: an untrained model writes some 'a' in some of them
                     rl={"environments": ["never", "letters"], "max_steps": 2, "cold_start": "report",
                         "cold_start_check_steps": 1, "prompts_per_step": 2, "num_generations": 4,
                         "max_new_tokens": 24})
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    events = json.loads((tmp_path / "run" / "rl" / "cold_start.json").read_text())
    assert events and events[0]["action"] == "reported" and "never" in events[0]["environments"]
    assert "letters" not in events[0]["environments"]
    assert artifacts["rl"].path.endswith("phase_0/model") and artifacts["rl"].metadata["steps"] == 2
    assert not (tmp_path / "run" / "rl" / "cold_start_sft").exists()


@pytest.mark.slow
def test_the_python_sandbox_is_a_grpo_tool(tmp_path, tmp_path_factory, manager):
    from transformers import AutoTokenizer

    from edgesmith.plugins.stages.rl_tools import attach_response_template

    env = manager.build("environment", "python", key="rl.environments[0]", seed=0)
    [run_python] = env.rollout_tools()  # the capability is the environment's, not its name's
    assert manager.build("environment", "reasoning", key="rl.environments[0]").rollout_tools() == []
    assert json.loads(run_python("print(6 * 7)"))["stdout"].strip() == "42"
    # TRL's tool loop parses the policy's pythonic calls through the tokenizer's response template
    tokenizer = attach_response_template(AutoTokenizer.from_pretrained(base_model(tmp_path_factory)))
    task = env.tasks("train", 1)[0]
    prompt = tokenizer.apply_chat_template(task.messages, tools=[run_python], add_generation_prompt=True,
                                           tokenize=False)
    parsed = tokenizer.parse_response('<|tool_call_start|>[run_python(code="print(2 + 2)")]<|tool_call_end|>'
                                      "<|im_end|>", prefix=prompt)
    assert parsed["tool_calls"][0]["function"] == {"name": "run_python", "arguments": {"code": "print(2 + 2)"}}

    cfg = run_config(tmp_path, ["rl"], init_from=str(base_model(tmp_path_factory)),
                     rl={"environments": ["python"], "python_tool": True, "max_steps": 1, "cold_start": "off"})
    run_pipeline(cfg, tmp_path / "run", manager)
    logged = [json.loads(l) for l in (tmp_path / "run" / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert any("tools/call_frequency" in r for r in logged)  # GRPO ran with the tool attached


def test_python_tool_needs_the_python_environment_alone():
    from edgesmith.core.errors import ConfigError
    from edgesmith.plugins.stages.rl_config import RLStageConfig

    with pytest.raises(ConfigError, match="rl.environments=\\[python\\]"):
        RLStageConfig(environments=["python", "toolcall"], python_tool=True)


def test_a_kl_penalty_builds_grpo_reference_model(tmp_path, tmp_path_factory, manager):
    # rl.beta > 0: TRL loads the reference model itself, from the policy's directory
    cfg = run_config(tmp_path, ["rl"], init_from=str(base_model(tmp_path_factory)),
                     rl={"environments": ["letters"], "max_steps": 1, "cold_start": "off", "beta": 0.1,
                         "prompts_per_step": 2, "num_generations": 2, "max_new_tokens": 8})
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    assert artifacts["rl"].metadata["steps"] == 1
    state = json.loads(next((tmp_path / "run" / "rl").rglob("trainer_state.json")).read_text())
    assert any("kl" in entry for entry in state["log_history"])  # the KL term was computed
