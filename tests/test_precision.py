"""The training stages' ``precision`` option and the ``train_speed`` benchmark that measures it."""

from __future__ import annotations

import json

import pytest
import torch

from edgesmith.core.errors import ConfigError
from edgesmith.core.pipeline import run_pipeline
from edgesmith.plugins.benchmarks.train_speed import TrainSpeedOptions, measure, run_train_speed
from edgesmith.plugins.stages.dpo_config import DPOStageConfig
from edgesmith.plugins.stages.precision import native_bf16, trains_in_bf16
from edgesmith.plugins.stages.pretrain_config import PretrainConfig
from edgesmith.plugins.stages.rl_config import RLStageConfig
from edgesmith.plugins.stages.sft_config import SFTStageConfig
from edgesmith.plugins.stages.trainer_arguments import common_training_arguments
from stages_support import TINY_MODEL, registered_test_plugins, run_config


@pytest.mark.parametrize("config_class, key", [(PretrainConfig, "pretrain"), (SFTStageConfig, "sft"),
                                               (DPOStageConfig, "dpo"), (RLStageConfig, "rl")])
def test_every_training_stage_refuses_an_unknown_precision(config_class, key):
    with pytest.raises(ConfigError) as info:
        config_class(precision="fp16")
    message = str(info.value)
    assert f"{key}.precision='fp16'" in message and "fp32 | bf16 | auto" in message
    assert config_class().precision == "fp32"  # the same numbers on every machine unless asked


def test_auto_follows_the_hardware_and_reaches_the_trainer(tmp_path):
    assert trains_in_bf16("bf16") and not trains_in_bf16("fp32")
    assert trains_in_bf16("auto") == native_bf16()
    settings = dict(max_steps=1, batch_size=1, learning_rate=1e-3, save_steps=1, seed=0)
    assert common_training_arguments(tmp_path, precision="bf16", **settings)["bf16"] is True
    assert common_training_arguments(tmp_path, precision="fp32", **settings)["bf16"] is False


def test_bf16_stages_train_and_keep_fp32_checkpoints(tmp_path):
    from edgesmith.plugins.stages.model_io import load_model_and_tokenizer

    bf16 = {"precision": "bf16"}
    cfg = run_config(tmp_path, ["pretrain", "sft"], pretrain=bf16, sft=bf16)
    with registered_test_plugins() as manager:
        artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    model, _ = load_model_and_tokenizer(artifacts["sft"].path)
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    losses = [json.loads(line).get("loss") for line in (tmp_path / "run" / "pretrain" / "metrics.jsonl").open()]
    losses = [x for x in losses if x is not None]
    assert losses and all(x == x and x < 20 for x in losses)  # finite: autocast did not break the loss


def test_train_speed_times_both_precisions_from_the_same_weights(tmp_path):
    from transformers import AutoConfig

    import edgesmith.core.modeling  # noqa: F401

    config = AutoConfig.for_model("edgesmith", **TINY_MODEL)
    config.save_pretrained(tmp_path / "model")
    opts = TrainSpeedOptions(model_dir=str(tmp_path / "model"), batch_size=2, seq_len=16, steps=2, repeats=2,
                             threads=1)
    report = run_train_speed(opts, None, tmp_path / "bench")
    result = report["results"]
    assert set(result["fp32"]) >= {"step_s", "tokens_per_s", "final_loss", "repeats_s"}
    assert len(result["fp32"]["repeats_s"]) == 2 and result["bf16_speedup"] > 0
    # the same weights and batches: bf16 autocast ends near fp32's loss after 3 steps
    assert abs(result["bf16_loss_delta"]) < 0.1
    assert (tmp_path / "bench" / "train_speed.png").stat().st_size > 0
    assert json.loads((tmp_path / "bench" / "train_speed.json").read_text())["results"]["parameters"] > 0
    # one precision alone: nothing to compare
    alone = measure(TrainSpeedOptions(batch_size=2, seq_len=16, steps=1, repeats=2, threads=1,
                                      precisions=["fp32"]), config)
    assert "bf16_speedup" not in alone


def test_train_speed_options_name_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="train_speed.precisions"):
        TrainSpeedOptions(precisions=["fp16"])
    with pytest.raises(ConfigError, match="train_speed.model_dir"):
        TrainSpeedOptions(model_dir=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="train_speed.steps"):
        TrainSpeedOptions(steps=0)
