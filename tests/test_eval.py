"""`edgesmith eval` end to end on tiny models the tests build: files, numbers, interval, CLI, stage."""

from __future__ import annotations

import json
import math

import pytest
import torch

from edgesmith.plugins.evaluation.evaluate import evaluate, wilson_interval
from edgesmith.plugins.evaluation.options import EvalOptions
from edgesmith.plugins.evaluation.rollout import generate_completions
from edgesmith.plugins.loops import detect_loop

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from tiny_chat_models import constant_model, random_model, train_test_tokenizer

    root = tmp_path_factory.mktemp("eval_models")
    tokenizer = train_test_tokenizer(root / "tokenizer")
    random_model(root / "random", tokenizer)
    constant_model(root / "looping", tokenizer, tokenizer.convert_tokens_to_ids("a"))
    constant_model(root / "stopping", tokenizer, tokenizer.eos_token_id)
    return root, tokenizer


def test_wilson_interval_by_hand():
    # 3 of 10: p = 0.3, z^2 = 3.8415; centre 0.35550, half-width 0.24772
    low, high = wilson_interval(3, 10)
    assert low == pytest.approx(0.10779, abs=1e-4) and high == pytest.approx(0.60322, abs=1e-4)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high == pytest.approx(3.8415 / (20 + 3.8415), abs=1e-4)


def test_eval_end_to_end_on_a_random_model(models, tmp_path):
    root, _ = models
    options = EvalOptions(envs=["toolcall", "reasoning"], n_prompts=3, samples=2, temperature=1.0,
                          max_new_tokens=40, batch_size=4)
    results = evaluate(options, root / "random", out_dir=tmp_path)
    for name in ("results.json", "report.md", "report.png", "completions.jsonl"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "results.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "completions.jsonl").read_text().splitlines()]
    assert len(records) == 2 * (3 * 1 + 3 * 2)
    markdown = (tmp_path / "report.md").read_text()
    for env in ("toolcall", "reasoning"):
        for mode, n in (("greedy", 3), ("sampled", 6)):
            m = saved["environments"][env][mode]
            mine = [r for r in records if r["env"] == env and r["mode"] == mode]
            assert m["n"] == n == len(mine)
            loops = sum(r["looping"] for r in mine)
            assert m["loops"] == loops and m["loop_rate"] == loops / n
            # the interval, computed here by hand from Wilson's formula
            z, p = 1.959963984540054, loops / n
            centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
            assert m["loop_rate_ci95"] == pytest.approx([max(0, centre - half), min(1, centre + half)])
            assert m["accuracy"] == sum(r["correct"] for r in mine) / n
            assert m["mean_length"] == pytest.approx(sum(r["n_tokens"] for r in mine) / n)
            assert m["tokens_per_s"] > 0
            assert f"| {env} | {mode} | {n} |" in markdown
            for r in mine:  # each record's verdict is the detector's
                assert r["n_tokens"] <= 40
    assert results["environments"] == saved["environments"]


def test_a_model_that_repeats_one_token_loops_every_time(models, tmp_path):
    root, _ = models
    options = EvalOptions(envs=["reasoning"], n_prompts=4, samples=2, max_new_tokens=48, batch_size=8)
    results = evaluate(options, root / "looping", out_dir=tmp_path)
    for mode, n in (("greedy", 4), ("sampled", 8)):
        m = results["environments"]["reasoning"][mode]
        assert m["loops"] == n and m["loop_rate"] == 1.0 and m["finished_rate"] == 0.0
        assert m["loop_rate_ci95"][0] == pytest.approx(n / (n + 1.959963984540054 ** 2))
        assert m["loop_rate_ci95"][1] == 1.0 and m["mean_length"] == 48
    # with the guard on, the loops are cut short and still counted
    guarded = evaluate(EvalOptions(envs=["reasoning"], n_prompts=4, samples=0, max_new_tokens=200, loop_guard=True),
                       root / "looping")["environments"]["reasoning"]["greedy"]
    assert guarded["loops"] == 4 and guarded["mean_length"] < 100


def test_a_model_that_stops_at_once_never_loops(models, tmp_path):
    root, _ = models
    options = EvalOptions(envs=["toolcall"], n_prompts=4, samples=0, max_new_tokens=32)
    m = evaluate(options, root / "stopping", out_dir=tmp_path)["environments"]["toolcall"]["greedy"]
    assert m["loops"] == 0 and m["finished_rate"] == 1.0 and m["mean_length"] == 1.0
    low, high = m["loop_rate_ci95"]
    assert low == 0.0 and high == pytest.approx(1.959963984540054 ** 2 / (4 + 1.959963984540054 ** 2))


def test_rollout_records_finish_budget_and_guard(models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from edgesmith.core.plugin_manager import get_plugin_manager

    root, _ = models
    tokenizer = AutoTokenizer.from_pretrained(root / "looping")
    model = AutoModelForCausalLM.from_pretrained(root / "looping")
    tasks = get_plugin_manager().get("environment", "reasoning")().tasks("eval", 3)
    plain = generate_completions(model, tokenizer, tasks, max_new_tokens=120, batch_size=2)
    assert [len(c) for c in plain] == [1, 1, 1]
    c = plain[0][0]
    assert not c.finished and c.n_tokens == 120 and c.stop_reason == "budget" and c.text == "a" * 120
    assert detect_loop(c.token_ids, c.finished).looping
    guarded = generate_completions(model, tokenizer, tasks, max_new_tokens=120, batch_size=2, loop_guard=True)
    for (g,) in guarded:
        assert g.stop_reason.startswith("loop guard") and not g.finished and g.n_tokens < 120
    sampled = generate_completions(model, tokenizer, tasks[:1], n_samples=3, temperature=0.7, max_new_tokens=8)
    assert len(sampled[0]) == 3

    stop_tok = AutoTokenizer.from_pretrained(root / "stopping")
    stop_model = AutoModelForCausalLM.from_pretrained(root / "stopping")
    (done,), = generate_completions(stop_model, stop_tok, tasks[:1], max_new_tokens=10)
    assert done.finished and done.stop_reason == "eos" and done.text == ""
    assert done.token_ids == [stop_tok.eos_token_id]


def test_cli_eval_writes_the_report_into_the_run_dir(models, tmp_path, capsys):
    from edgesmith.core.cli import main

    root, _ = models
    code = main(["eval", f"model_path={root / 'random'}", "envs=[extraction]", "n_prompts=2", "samples=0",
                 "max_new_tokens=8", f"hydra.run.dir={tmp_path}"])
    assert code == 0
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["environments"]["extraction"]["greedy"]["n"] == 2
    assert (tmp_path / "report.png").exists()
    assert "| extraction | greedy | 2 |" in capsys.readouterr().out


def test_eval_stage_runs_after_a_model_stage(models, tmp_path):
    from omegaconf import OmegaConf

    from edgesmith.core.pipeline import run_pipeline

    root, _ = models
    cfg = OmegaConf.create({"pipeline": {"stages": ["eval"]}, "init_from": str(root / "looping"),
                            "eval": {"envs": ["reasoning"], "n_prompts": 2, "samples": 0, "max_new_tokens": 40}})
    artifacts = run_pipeline(cfg, tmp_path)
    report = artifacts["eval"]
    assert report.kind == "report"
    assert report.metadata["summary"]["reasoning"]["greedy"]["loop_rate"] == 1.0
    assert (tmp_path / "eval" / "report.md").exists() and (tmp_path / "eval" / "metrics.jsonl").exists()


def test_eval_works_for_an_edgesmith_model(models, tmp_path):
    from importlib.resources import files

    from omegaconf import OmegaConf

    from edgesmith.core.modeling import EdgeForCausalLM
    from edgesmith.core.validation import model_config_from_cfg

    root, tokenizer = models
    config = model_config_from_cfg(OmegaConf.load(str(files("edgesmith.conf") / "model" / "tiny.yaml")))
    config.vocab_size = len(tokenizer)
    config.eos_token_id, config.pad_token_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    torch.manual_seed(0)
    EdgeForCausalLM(config).save_pretrained(tmp_path / "edge")
    tokenizer.save_pretrained(tmp_path / "edge")
    results = evaluate(EvalOptions(envs=["toolcall"], n_prompts=2, samples=0, max_new_tokens=8), tmp_path / "edge")
    m = results["environments"]["toolcall"]["greedy"]
    assert m["n"] == 2 and 1 <= m["mean_length"] <= 8


def test_int8_eval_runs_the_quantized_model(models, tmp_path):
    """quant=int8 loads the checkpoint with int8 weight-only linear layers; a model that loops
    in float32 by a wide margin loops the same way in int8."""
    from edgesmith.core.errors import ConfigError
    from edgesmith.core.linear import Int8Linear
    from edgesmith.plugins.evaluation.evaluate import load_model

    root, _ = models
    model, _ = load_model(root / "looping", quant="int8")
    assert isinstance(model.lm_head, Int8Linear) and not any(
        isinstance(m, torch.nn.Linear) for m in model.modules())
    options = EvalOptions(envs=["reasoning"], n_prompts=3, samples=0, max_new_tokens=48, quant="int8")
    m = evaluate(options, root / "looping")["environments"]["reasoning"]["greedy"]
    assert m["loops"] == 3 and m["mean_length"] == 48
    with pytest.raises(ConfigError, match=r"invalid config value quant='int4': accepted null"):
        EvalOptions(quant="int4")


@pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines, reason="needs fbgemm (x86)")
def test_int8_dynamic_eval_runs_the_quantized_model(models):
    """quant=int8_dynamic loads the checkpoint in float32 with fbgemm's int8 layers; the looping
    model still loops on every prompt."""
    from edgesmith.core.linear import Int8DynamicLinear
    from edgesmith.plugins.evaluation.evaluate import load_model

    root, _ = models
    model, _ = load_model(root / "looping", quant="int8_dynamic")
    assert isinstance(model.lm_head, Int8DynamicLinear) and model.model.embed_tokens.weight.dtype == torch.float32
    assert not any(isinstance(m, torch.nn.Linear) for m in model.modules())
    options = EvalOptions(envs=["reasoning"], n_prompts=3, samples=0, max_new_tokens=48, quant="int8_dynamic")
    m = evaluate(options, root / "looping")["environments"]["reasoning"]["greedy"]
    assert m["loops"] == 3 and m["mean_length"] == 48
