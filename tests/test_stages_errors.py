"""Bad input is reported before the first stage runs, in one line naming the key or the file (and line)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from edgesmith.core.errors import ConfigError, DataError, PluginError
from edgesmith.core.pipeline import plan_stages, run_pipeline
from edgesmith.plugins.stages.model_io import load_model_and_tokenizer
from stages_support import base_model, registered_test_plugins, run_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def manager():
    with registered_test_plugins() as registered:
        yield registered


def _rejected_before_any_work(tmp_path, manager, cfg, error, *needles):
    """run_pipeline raises ``error`` mentioning every needle, and no stage wrote anything."""
    with pytest.raises(error) as info:
        run_pipeline(cfg, tmp_path / "run", manager)
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert "\n" not in message
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    return info.value


@pytest.mark.parametrize("stage,section,key", [
    ("sft", {"environments": ["nosuchenv"]}, "sft.environments[0]"),
    ("dpo", {"judges": [{"name": "nosuchjudge"}]}, "dpo.judges[0].name"),
    ("dpo", {"environments": ["letters", "nosuchenv"]}, "dpo.environments[1]"),
    ("rl", {"rewards": [{"name": "nosuchreward"}]}, "rl.rewards[0].name"),
    ("eval", {"envs": ["nosuchenv"]}, "eval.envs[0]"),
])
def test_unknown_plugin_names_of_late_stages_stop_the_run_before_pretrain(tmp_path, manager, stage, section, key):
    cfg = run_config(tmp_path, ["pretrain", "sft", "dpo", "rl", "eval"], **{stage: section})
    error = _rejected_before_any_work(tmp_path, manager, cfg, PluginError, key, "registered")
    assert "letters" in str(error) or "verifier" in str(error)  # the accepted names are listed


@pytest.mark.parametrize("stage,section,key,accepted", [
    ("dpo", {"judges": [{"name": "verifier"}, {"name": "loop", "options": {"ngram_sise": 3}}]},
     "dpo.judges[1].options.ngram_sise=3", "ngram_size"),
    ("rl", {"rewards": [{"name": "repetition", "options": {"max_penalty": 2.0}}]},
     "rl.rewards[0].options.max_penalty=2.0", "a number <= 0"),
    ("dpo", {"branch_chosen": "all"}, "dpo.branch_chosen='all'", "step, rest"),
    # the tool comes from the environment's interface (rollout_tools), not from its name
    ("rl", {"environments": ["letters"], "python_tool": True}, "rl.python_tool=True", "rl.environments=[python]"),
])
def test_bad_options_of_a_late_stages_plugins_stop_the_run_before_pretrain(tmp_path, manager, stage, section, key,
                                                                           accepted):
    cfg = run_config(tmp_path, ["pretrain", "sft", "dpo", "rl"], **{stage: section})
    error = _rejected_before_any_work(tmp_path, manager, cfg, ConfigError, key, accepted)
    assert error.key == key.split("=")[0]


def test_vocab_size_below_the_tokenizer_minimum(tmp_path, manager):
    from edgesmith.plugins.world.tokenizer import minimum_vocab_size

    model = {**run_config(tmp_path, [])["model"], "vocab_size": minimum_vocab_size() - 1}
    error = _rejected_before_any_work(tmp_path, manager, run_config(tmp_path, ["pretrain", "sft"], model=model),
                                      ConfigError, f">= {minimum_vocab_size()}")
    assert error.key == "model.vocab_size"


def test_missing_dataset(tmp_path, manager):
    cfg = run_config(tmp_path, ["pretrain", "sft"], pretrain={"dataset": str(tmp_path / "nope.jsonl")})
    _rejected_before_any_work(tmp_path, manager, cfg, DataError, str(tmp_path / "nope.jsonl"), "does not exist",
                              "accepted")


def test_broken_jsonl_line_and_non_utf8_text_name_file_and_line(tmp_path, manager):
    rows = tmp_path / "data.jsonl"
    rows.write_text(json.dumps({"text": "one"}) + "\n\n" + '{"text": "two"\n' + json.dumps({"text": "x"}) + "\n")
    cfg = run_config(tmp_path, ["pretrain"], pretrain={"dataset": str(rows)})
    _rejected_before_any_work(tmp_path, manager, cfg, DataError, f"{rows}, line 3:", "not valid JSON", "text_field")
    wrong_field = tmp_path / "field.jsonl"
    wrong_field.write_text(json.dumps({"body": "one"}) + "\n")
    cfg = run_config(tmp_path, ["pretrain"], pretrain={"dataset": str(wrong_field)})
    _rejected_before_any_work(tmp_path, manager, cfg, DataError, f"{wrong_field}, line 1:", "'text'")
    text = tmp_path / "docs.txt"
    text.write_bytes(b"first document\n\nsecond \xff\xfe line\n")
    cfg = run_config(tmp_path, ["pretrain"], pretrain={"dataset": str(text)})
    _rejected_before_any_work(tmp_path, manager, cfg, DataError, f"{text}, line 3:", "not UTF-8", "byte 0xff",
                              "column 8")


def test_model_field_types_name_the_key_and_seed_must_be_an_integer(tmp_path, manager):
    model = {**run_config(tmp_path, [])["model"], "hidden_size": "abc"}
    with pytest.raises(ConfigError) as info:
        plan_stages(run_config(tmp_path, ["pretrain"], model=model), manager)
    assert info.value.key == "model.hidden_size"
    model = {**run_config(tmp_path, [])["model"], "hiden_size": 64}
    with pytest.raises(ConfigError) as info:
        plan_stages(run_config(tmp_path, ["pretrain"], model=model), manager)
    assert info.value.key == "model.hiden_size" and "hidden_size" in info.value.accepted
    with pytest.raises(ConfigError) as info:
        plan_stages(run_config(tmp_path, ["sft"], seed="abc"), manager)
    assert info.value.key == "seed"


def test_options_of_a_shared_options_class_are_named_with_their_section(tmp_path, manager):
    with pytest.raises(ConfigError) as info:
        plan_stages(run_config(tmp_path, ["eval"], eval={"n_prompts": 0}), manager)
    assert info.value.key == "eval.n_prompts"


def _cut(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garbage(path):
    path.write_bytes(b"\x00\x01not a tensor file" * 100)


def _bad_model_type(path):
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, "model_type": "edgesmith_v9"}))


def _broken_json(path):
    path.write_text(path.read_text()[:40])


@pytest.mark.parametrize("file,damage,expect", [
    ("model.safetensors", _cut, "not a whole safetensors file"),
    ("model.safetensors", _garbage, "not a"),
    ("config.json", _bad_model_type, "model_type 'edgesmith_v9'"),
    ("config.json", _broken_json, "not valid JSON"),
], ids=["cut-weights", "garbage-weights", "bad-model-type", "broken-config"])
def test_a_damaged_model_directory_is_one_line_naming_the_file(tmp_path, tmp_path_factory, manager, file, damage,
                                                               expect):
    model = tmp_path / "model"
    shutil.copytree(base_model(tmp_path_factory), model)
    damage(model / file)
    # before any work: init_from is checked up front
    error = _rejected_before_any_work(tmp_path, manager, run_config(tmp_path, ["sft"], init_from=str(model)),
                                      ConfigError, str(model / file), expect)
    assert error.key == "init_from" and "save_pretrained" in str(error)
    # and when a stage loads it (an artifact damaged after it was written)
    with pytest.raises(DataError) as info:
        load_model_and_tokenizer(model)
    assert str(model / file) in str(info.value) and expect in str(info.value) and "\n" not in str(info.value)


def test_the_command_line_prints_one_line_naming_the_key(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edgesmith.core.cli", "model.hidden_size=abc",
                          "pipeline.stages=[pretrain]", f"hydra.run.dir={tmp_path / 'run'}"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1", "COLUMNS": "400"})
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines == ["error: invalid config value model.hidden_size='abc': accepted a positive integer"], out.stderr
