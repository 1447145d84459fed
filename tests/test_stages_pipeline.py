"""The post-training stages in a pipeline: artifacts, inputs, init_from, resumption."""

from __future__ import annotations

import json

import pytest
import torch

from edgesmith.core.errors import StageError
from edgesmith.core.pipeline import run_pipeline
from edgesmith.plugins.stages import model_io, stage_callback
from stages_support import base_model, registered_test_plugins, run_config

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def manager():
    with registered_test_plugins() as registered:
        yield registered


def _is_model_dir(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import edgesmith.core.modeling  # noqa: F401  (registers "edgesmith" with the Auto classes)
    AutoTokenizer.from_pretrained(path)
    return AutoModelForCausalLM.from_pretrained(path)


@pytest.mark.slow
def test_every_stage_produces_a_model_artifact(tmp_path, manager):
    cfg = run_config(tmp_path, ["pretrain", "sft", "dpo", "rl"])
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    assert list(artifacts) == ["pretrain", "sft", "dpo", "rl"]
    for name, artifact in artifacts.items():
        assert artifact.kind == "model", name
        model = _is_model_dir(artifact.path)
        assert model.config.vocab_size == 300
        assert (tmp_path / "run" / name / "metrics.jsonl").is_file()
    # each stage started from its predecessor's model
    assert artifacts["sft"].metadata["source"] == artifacts["pretrain"].path
    # the pretrain tokenizer was trained with the architecture's vocab size and travels along
    from transformers import AutoTokenizer

    assert len(AutoTokenizer.from_pretrained(artifacts["rl"].path)) <= 300
    pairs = (tmp_path / "run" / "dpo" / "round_0" / "pairs.jsonl").read_text().splitlines()
    assert all({"chosen_score", "rejected_score", "candidates"} <= set(json.loads(p)) for p in pairs)


def test_wrong_kind_of_input_is_a_clear_error(tmp_path, manager):
    cfg = run_config(tmp_path, ["study_maker", "sft"])
    with pytest.raises(StageError) as info:
        run_pipeline(cfg, tmp_path / "run", manager)
    message = str(info.value)
    assert "sft" in message and "'model'" in message and "study_maker gave 'study'" in message


def test_missing_input_names_init_from(tmp_path, manager):
    with pytest.raises(StageError, match="init_from"):
        run_pipeline(run_config(tmp_path, ["dpo"]), tmp_path / "run", manager)


@pytest.mark.slow
def test_init_from_any_transformers_causal_lm(tmp_path, manager, tmp_path_factory):
    """sft starts from a Llama checkpoint (not edgesmith's model) given as init_from."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(base_model(tmp_path_factory))
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                         pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id))
    llama.save_pretrained(tmp_path / "llama")
    tokenizer.save_pretrained(tmp_path / "llama")
    cfg = run_config(tmp_path, ["sft"], init_from=str(tmp_path / "llama"))
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    model = _is_model_dir(artifacts["sft"].path)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not torch.equal(model.model.embed_tokens.weight, llama.model.embed_tokens.weight)  # it trained


@pytest.mark.slow
def test_interrupted_stage_resumes_from_its_checkpoint(tmp_path, manager, tmp_path_factory, monkeypatch):
    cfg = run_config(tmp_path, ["sft"], init_from=str(base_model(tmp_path_factory)),
                     sft={"max_steps": 4, "save_steps": 2})

    class Interrupted(Exception):
        pass

    def stop_after_first_save(self, args, state, control, **kwargs):
        raise Interrupted(f"killed after saving step {state.global_step}")

    monkeypatch.setattr(stage_callback.StageCallback, "on_save", stop_after_first_save, raising=False)
    with pytest.raises(StageError, match="killed after saving step 2"):
        run_pipeline(cfg, tmp_path / "run", manager)
    assert (tmp_path / "run" / "sft" / "checkpoints" / "checkpoint-2").is_dir()
    assert not (tmp_path / "run" / "sft" / "model").exists()
    monkeypatch.undo()

    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    records = [json.loads(line) for line in (tmp_path / "run" / "sft" / "metrics.jsonl").read_text().splitlines()]
    resumes = [r for r in records if r.get("event") == "resume"]
    assert len(resumes) == 1 and resumes[0]["resumed_from"].endswith("checkpoint-2")
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == [1, 2, 3, 4]  # steps 1-2 before the interruption, 3-4 after: none repeated
    assert model_io.is_finished_model_dir(artifacts["sft"].path)


@pytest.mark.slow
def test_report_shows_every_stage_and_reuses_the_eval_stage(tmp_path, manager, tmp_path_factory):
    cfg = run_config(tmp_path, ["sft", "dpo", "eval", "report"], init_from=str(base_model(tmp_path_factory)),
                     eval={"envs": ["letters"], "n_prompts": 2, "samples": 1, "max_new_tokens": 8})
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    report_dir = tmp_path / "run" / "report"
    text = (report_dir / "report.md").read_text()
    assert "| sft | letters | greedy | 2 |" in text and "| dpo | letters | sampled | 2 |" in text
    assert "## Chosen architecture" in text and "short_conv gqa" in text
    assert "dpo round 0" in text
    assert (report_dir / "report.png").stat().st_size > 1000
    rows = artifacts["report"].metadata["rows"]
    assert {(r["stage"], r["mode"]) for r in rows} == {(s, m) for s in ("sft", "dpo") for m in ("greedy", "sampled")}
    assert all(0 <= r["loop_rate_ci95"][0] <= r["loop_rate"] <= r["loop_rate_ci95"][1] for r in rows)
    # the eval stage already measured dpo's model: the report took its results instead of re-running
    assert (report_dir / "sft" / "results.json").is_file() and not (report_dir / "dpo").exists()
    # ... and its completions: the paired change sft -> dpo is over both prompts
    changes = json.loads((report_dir / "report.json").read_text())["changes"]
    assert {(c["metric"], c["from"], c["to"], c["n"]) for c in changes} == {
        ("accuracy", "sft", "dpo", 2), ("loop_rate", "sft", "dpo", 2)}


def test_hydra_overrides_reach_the_stage_options(tmp_path):
    import subprocess
    import sys

    import yaml

    out = subprocess.run([sys.executable, "-m", "edgesmith.core.cli", "--cfg", "job", "pipeline.stages=[sft,dpo]",
                          f"init_from={tmp_path}", "dpo.rounds=3", "rl.temperature=1.0", "rl.cold_start=off"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    assert cfg["pipeline"]["stages"] == ["sft", "dpo"] and cfg["init_from"] == str(tmp_path)
    assert cfg["dpo"]["rounds"] == 3 and cfg["dpo"]["loss_type"] == "sigmoid_norm"
    assert cfg["rl"]["temperature"] == 1.0 and cfg["rl"]["cold_start"] == "off"


def test_bad_stage_options_are_rejected_before_any_work(tmp_path, manager):
    from edgesmith.core.errors import ConfigError
    from edgesmith.core.pipeline import plan_stages

    for section, key, accepted in (({"aggregation": "median"}, "dpo.aggregation", "rank_average"),
                                   ({"loss_type": "dpo++"}, "dpo.loss_type", "sigmoid_norm"),
                                   ({"rounds": 0}, "dpo.rounds", ">= 1")):
        with pytest.raises(ConfigError, match=accepted) as info:
            plan_stages(run_config(tmp_path, ["dpo"], dpo=section), manager)
        assert info.value.key == key
    with pytest.raises(ConfigError, match="rl.cold_start"):
        plan_stages(run_config(tmp_path, ["rl"], rl={"cold_start": "sometimes"}), manager)
    with pytest.raises(ConfigError, match="sft.environments: letters") as info:
        plan_stages(run_config(tmp_path, ["sft"], sft={"environments": ["letters"],
                                                       "environment_tasks": {"toolcall": 10}}), manager)
    assert info.value.key == "sft.environment_tasks.toolcall"


@pytest.mark.slow
def test_sft_draws_the_per_environment_task_counts(tmp_path, manager, tmp_path_factory):
    cfg = run_config(tmp_path, ["sft"], init_from=str(base_model(tmp_path_factory)),
                     sft={"environments": ["letters", "never"], "tasks_per_environment": 3,
                          "environment_tasks": {"never": 5}, "max_steps": 1})
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    assert artifacts["sft"].metadata["examples_per_environment"] == {"letters": 3, "never": 5}


@pytest.mark.slow
def test_pretrain_imports_an_lfm2_checkpoint_instead_of_training(tmp_path, manager, tmp_path_factory):
    from transformers import AutoTokenizer, Lfm2Config, Lfm2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(base_model(tmp_path_factory))
    torch.manual_seed(0)
    lfm2 = Lfm2ForCausalLM(Lfm2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                                      full_attn_idxs=[1])).eval()
    lfm2.save_pretrained(tmp_path / "lfm2")
    tokenizer.save_pretrained(tmp_path / "lfm2")
    cfg = run_config(tmp_path, ["pretrain", "sft"], init_from=str(tmp_path / "lfm2"))
    artifacts = run_pipeline(cfg, tmp_path / "run", manager)
    imported = _is_model_dir(artifacts["pretrain"].path)
    assert type(imported).__name__ == "EdgeForCausalLM"
    assert [layer["op"] for layer in imported.config.layers] == ["short_conv", "gqa"]
    ids = torch.tensor([tokenizer("Write letters 3.")["input_ids"]])
    with torch.no_grad():  # the converted model computes what the LFM2 checkpoint computes
        assert torch.allclose(imported(ids).logits, lfm2(ids).logits, atol=1e-4)
    assert not [r for r in (tmp_path / "run" / "pretrain" / "metrics.jsonl").read_text().splitlines()
                if '"loss"' in r]  # imported, not trained
    assert artifacts["sft"].kind == "model"
