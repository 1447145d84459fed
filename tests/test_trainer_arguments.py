"""The TRL/transformers arguments every training stage shares: gradient checkpointing off unless asked."""

from __future__ import annotations

import json

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.core.modeling import EdgeForCausalLM
from edgesmith.core.options import build_options
from edgesmith.core.pipeline import run_pipeline
from edgesmith.plugins.stages.dpo_config import DPOStageConfig
from edgesmith.plugins.stages.pretrain_config import PretrainConfig
from edgesmith.plugins.stages.rl_config import RLStageConfig
from edgesmith.plugins.stages.sft_config import SFTStageConfig
from edgesmith.plugins.stages.trainer_arguments import common_training_arguments
from stages_support import registered_test_plugins, run_config

STAGE_CONFIGS = [(PretrainConfig, "pretrain"), (SFTStageConfig, "sft"), (DPOStageConfig, "dpo"),
                 (RLStageConfig, "rl")]


def test_trl_configs_get_gradient_checkpointing_only_when_asked(tmp_path):
    from trl import DPOConfig, GRPOConfig, SFTConfig

    settings = dict(max_steps=1, batch_size=2, learning_rate=1e-3, save_steps=1, seed=0, precision="fp32")
    for config_class in (SFTConfig, DPOConfig, GRPOConfig):
        # TRL's own default recomputes every forward in the backward pass: why the stages override it
        assert config_class(output_dir=str(tmp_path), bf16=False).gradient_checkpointing is True
        extra = {"num_generations": 2} if config_class is GRPOConfig else {}
        off = config_class(**common_training_arguments(tmp_path, **settings), **extra)
        on = config_class(**common_training_arguments(tmp_path, gradient_checkpointing=True, **settings), **extra)
        assert off.gradient_checkpointing is False and on.gradient_checkpointing is True


@pytest.mark.parametrize("config_class, key", STAGE_CONFIGS)
def test_every_training_stage_takes_a_gradient_checkpointing_flag(config_class, key):
    assert config_class().gradient_checkpointing is False
    assert build_options(config_class, {"gradient_checkpointing": True}, key).gradient_checkpointing is True
    with pytest.raises(ConfigError) as info:
        build_options(config_class, {"gradient_checkpointing": "yes"}, key)
    assert f"{key}.gradient_checkpointing" in str(info.value) and "true or false" in str(info.value)


def _pretrain_losses(tmp_path, name, monkeypatch, **pretrain):
    enabled: list[bool] = []
    original = EdgeForCausalLM.gradient_checkpointing_enable

    def spy(self, *args, **kwargs):  # records the trainer's call and does the real work
        enabled.append(True)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EdgeForCausalLM, "gradient_checkpointing_enable", spy)
    (tmp_path / name).mkdir()
    cfg = run_config(tmp_path / name, ["pretrain"], pretrain=pretrain)
    with registered_test_plugins() as manager:
        run_pipeline(cfg, tmp_path / name / "run", manager)
    rows = [json.loads(line) for line in (tmp_path / name / "run" / "pretrain" / "metrics.jsonl").open()]
    return [r["loss"] for r in rows if r.get("phase") == "pretrain" and "loss" in r], bool(enabled)


def test_checkpointing_recomputes_the_same_numbers_and_is_off_by_default(tmp_path, monkeypatch):
    plain, plain_enabled = _pretrain_losses(tmp_path, "plain", monkeypatch)
    checkpointed, checkpointed_enabled = _pretrain_losses(tmp_path, "checkpointed", monkeypatch,
                                                          gradient_checkpointing=True)
    assert not plain_enabled and checkpointed_enabled
    assert len(plain) == 4 and checkpointed == pytest.approx(plain, rel=1e-5)
