"""The console script: command words, Hydra behaviour, and errors before any work."""

from __future__ import annotations

import yaml

from edgesmith.core.cli import main


def run(tmp_path, *args):
    return main(["run", "pipeline.stages=[produce,count]", f"hydra.run.dir={tmp_path}", *args])


def test_plugins_command_prints_a_table(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "kind" in out and "provided by" in out


def test_unknown_command_lists_accepted_ones(capsys):
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "unknown command 'frobnicate'" in err and "run, plugins" in err


def test_run_writes_config_and_outputs_in_run_dir(tmp_path, test_stages_registered):
    assert run(tmp_path, "produce.content=override") == 0
    composed = yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())
    assert composed["produce"]["content"] == "override"
    assert (tmp_path / "produce" / "data.txt").read_text() == "override"
    assert (tmp_path / "count" / "_complete.json").exists()


def test_bare_overrides_mean_run_and_plus_adds_keys(tmp_path, test_stages_registered):
    code = main(["pipeline.stages=[produce]", f"hydra.run.dir={tmp_path}", "+notes=hello"])
    assert code == 0
    assert yaml.safe_load((tmp_path / ".hydra" / "config.yaml").read_text())["notes"] == "hello"


def test_multirun_sweeps(tmp_path, test_stages_registered):
    code = main(["run", "--multirun", "pipeline.stages=[produce]", "produce.content=a,b",
                 f"hydra.sweep.dir={tmp_path}"])
    assert code == 0
    assert sorted((tmp_path / str(i) / "produce" / "data.txt").read_text() for i in (0, 1)) == ["a", "b"]


def test_cfg_job_prints_without_running(tmp_path, capsys, test_stages_registered):
    assert run(tmp_path, "--cfg", "job") == 0
    out = capsys.readouterr().out
    assert "pipeline:" in out and "produce" in out
    assert not (tmp_path / "produce").exists()


def test_help_shows_config_groups(capsys):
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "model:" in out and "pipeline:" in out


def test_negative_size_rejected_before_work(tmp_path, capsys, test_stages_registered):
    assert run(tmp_path, "model.hidden_size=-8") == 1
    assert "invalid config value model.hidden_size=-8: accepted a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "produce").exists()


def test_heads_must_divide_width(tmp_path, capsys, test_stages_registered):
    assert run(tmp_path, "model.num_attention_heads=5") == 1
    err = capsys.readouterr().err
    assert "model.num_attention_heads=5" in err and "a divisor of model.hidden_size=64" in err


def test_unknown_operator_lists_registered_ones(tmp_path, capsys, test_stages_registered):
    assert run(tmp_path, "model.layers=[{op: warp_drive}]") == 1
    err = capsys.readouterr().err
    assert "unknown operator 'warp_drive' (config key model.layers[0].op); registered operators:" in err


def test_unknown_config_choice_is_hydra_error_listing_options(tmp_path, capsys, test_stages_registered):
    assert run(tmp_path, "model=enormous") == 1
    err = capsys.readouterr().err
    assert "Could not find 'model/enormous'" in err and "tiny" in err


def test_bad_stage_option_type_names_the_key(tmp_path, capsys, test_stages_registered):
    assert run(tmp_path, "count.steps=lots") == 1
    assert "count.steps" in capsys.readouterr().err
    assert not (tmp_path / "produce").exists()


def test_errors_keep_bracketed_accepted_values(capsys):
    # rich markup would swallow "[min, max]" if the message were not escaped
    assert main(["run", "search.space.num_attention=[3]"]) != 0
    err = capsys.readouterr().err
    assert "accepted [min, max] with 0 <= min <= max" in err


def test_preset_full_overrides_the_main_job_schedule(tmp_path, capsys):
    assert main(["run", "preset=full", f"hydra.run.dir={tmp_path}", "--cfg", "job"]) == 0
    composed = yaml.safe_load(capsys.readouterr().out)
    # base11's schedule, all in fp32
    assert (composed["pretrain"]["max_steps"], composed["sft"]["max_steps"]) == (600, 900)
    assert (composed["pretrain"]["precision"], composed["sft"]["precision"]) == ("fp32", "fp32")
    assert main(["run", f"hydra.run.dir={tmp_path}", "--cfg", "job"]) == 0
    default = yaml.safe_load(capsys.readouterr().out)
    assert default["pretrain"]["max_steps"] < 600 and default["sft"]["max_steps"] < 900
    # the default pretrains in fp32 (bf16 cost the tool calls) and runs SFT in bf16 where the CPU has it
    assert (default["pretrain"]["precision"], default["sft"]["precision"]) == ("fp32", "auto")
    assert "preset" not in default
    assert main(["run", "preset=huge", f"hydra.run.dir={tmp_path}", "--cfg", "job"]) != 0
    assert "full" in capsys.readouterr().err  # the accepted presets are named
