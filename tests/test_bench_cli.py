"""`edgesmith bench`: the benchmark registry and a miniature real run of `bench=model_speed`."""

from __future__ import annotations

import json
import math

import pytest

from edgesmith.core.cli import main
from edgesmith.plugins.benchmarks.model_speed import speedup_bounds
from edgesmith.plugins.benchmarks.model_speed_worker import roofline_copies

# An LFM2 layout in miniature (the tiny preset, shrunk): every model is still built, saved,
# loaded in its own subprocess and timed; only the sizes shrink so the run takes seconds.
MINIATURE = [
    "model=tiny", "model.vocab_size=128", "model.hidden_size=32", "model.intermediate_size=64",
    "model.layers=[{op: short_conv, conv_length: 3}, {op: gqa}, {op: short_conv, conv_length: 3}]",
    "model_speed.dtypes=[float32]", "model_speed.prefill_lengths=[8]", "model_speed.decode_contexts=[8]",
    "model_speed.decode_tokens=2", "model_speed.repeats=1", "model_speed.threads=1",
    "model_speed.rollout_prompts=2", "model_speed.rollout_samples=2", "model_speed.rollout_new_tokens=3",
    "model_speed.rollout_prompt_min=3", "model_speed.rollout_prompt_max=6",
]


def test_unknown_benchmark_lists_registered_ones(tmp_path, capsys):
    assert main(["bench", "bench=warp", f"hydra.run.dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "unknown benchmark 'warp' (config key bench); registered benchmarks:" in err
    assert "model_speed" in err.split("registered benchmarks:")[1]


def test_bad_option_is_named_before_any_work(tmp_path, capsys):
    assert main(["bench", "bench=model_speed", "model_speed.dtypes=[float16]", f"hydra.run.dir={tmp_path}"]) == 1
    assert "invalid config value model_speed.dtypes=['float16']" in capsys.readouterr().err
    assert not (tmp_path / "model_speed.json").exists()
    assert main(["bench", "bench=model_speed", "model_speed.prefill_passes=0", f"hydra.run.dir={tmp_path}"]) == 1
    assert "model_speed.prefill_passes=0" in capsys.readouterr().err
    # a section named like no benchmark (a typo) is refused too, listing what is accepted
    assert main(["bench", "+modelspeed.repeats=1", f"hydra.run.dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "invalid config value modelspeed={'repeats': 1}: accepted options of bench: model, " in err
    assert "model_speed" in err.split("accepted")[1]


def test_a_typo_in_a_benchmark_option_names_the_full_key(tmp_path, capsys):
    assert main(["bench", "bench=model_speed", "+model_speed.repeatz=1", f"hydra.run.dir={tmp_path}"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert ("invalid config value model_speed.repeatz=1: accepted options of model_speed: clock, decode_contexts, "
            in err) and "repeats" in err.split("accepted")[1]
    assert main(["bench", "bench=search", "+search.rank.candidatez=1", f"hydra.run.dir={tmp_path}"]) == 1
    assert ("invalid config value search.rank.candidatez=1: accepted options of search.rank: candidates, "
            in " ".join(capsys.readouterr().err.split()))
    assert not (tmp_path / "model_speed.json").exists()


def _compose_bench(overrides):
    from hydra import compose, initialize_config_module

    from edgesmith.core.cli import register_stage_schemas
    from edgesmith.core.plugin_manager import get_plugin_manager

    register_stage_schemas(get_plugin_manager())
    with initialize_config_module("edgesmith.conf", version_base=None):
        return compose("bench", overrides=overrides)


def test_benchmark_defaults_are_written_once_in_their_options_dataclass():
    """conf/bench.yaml writes no benchmark option: each section is its dataclass's defaults, so
    `NAME.option=value` overrides them, and documented `+`/`++` overrides keep working."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    from edgesmith.core.command import section_defaults
    from edgesmith.core.plugin_manager import get_plugin_manager

    assert set(OmegaConf.load(str(files("edgesmith.conf") / "bench.yaml"))) == {"defaults"}
    cfg, plugins = _compose_bench([]), get_plugin_manager()
    for name in ("model_speed", "search", "kernels"):
        section = {k: v for k, v in OmegaConf.to_container(cfg[name]).items() if k != "backend"}
        # kernels.backend is conf/base.yaml's
        assert section == section_defaults(plugins.get("benchmark", name).options_class, skip=("backend",))
    cfg = _compose_bench(["model_speed.repeats=1", "kernels.heads=8", "search.rank.candidates=0"])
    assert cfg.model_speed.repeats == 1 and cfg.kernels.heads == 8 and cfg.search.rank.candidates == 0
    assert cfg.kernels.backend == "auto" and cfg.model_speed.repeats == 1
    # mappings are not pre-filled: a given one replaces the default instead of merging into it
    assert "methods" not in cfg.search
    cfg = _compose_bench(["bench=proxy", "+proxy.candidates=6", "++search.methods={a: {profiler: local_cpu}}"])
    assert cfg.proxy == {"candidates": 6} and list(cfg.search.methods) == ["a"]


def test_layout_is_the_model_preset_checked_like_every_command(tmp_path, capsys):
    """The layout comes from the model group: its dims checks and LFM2's limits name model.* keys."""
    assert main(["bench", "bench=model_speed", "model.num_attention_heads=5", f"hydra.run.dir={tmp_path}"]) == 1
    assert ("invalid config value model.num_attention_heads=5: accepted a divisor of model.hidden_size=1024"
            in " ".join(capsys.readouterr().err.split()))
    assert main(["bench", "bench=model_speed", "model=tiny", "model.layers=[{op: swa}, {op: gqa}]",
                 f"hydra.run.dir={tmp_path}"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "cannot export to LFM2 format" in err and "layer 0 is swa" in err
    assert main(["bench", "bench=model_speed", "model=tiny", "model_speed.decode_contexts=[4096]",
                 f"hydra.run.dir={tmp_path}"]) == 1
    assert ("invalid config value model.max_position_embeddings=2048: accepted at least the longest context "
            "plus model_speed.decode_tokens (4128)" in " ".join(capsys.readouterr().err.split()))
    assert not (tmp_path / "model_speed.json").exists()


@pytest.mark.slow
def test_model_benchmark_miniature_run(tmp_path, capsys):
    assert main(["bench", "bench=model_speed", *MINIATURE, f"hydra.run.dir={tmp_path}"]) == 0
    report = json.loads((tmp_path / "model_speed.json").read_text())
    results = report["results"]["float32"]
    assert sorted(results) == ["edgesmith", "lfm2", "llama"]
    for model in results.values():
        assert model["prefill_tok_s"]["8"] > 0 and model["decode_tok_s"]["8"] > 0
        assert model["peak_rss_mb"] > 0
    # edgesmith carries LFM2's exact weights; the Llama is sized to the same parameter count.
    params = report["parameters"]
    assert params["edgesmith"] == params["lfm2"]
    assert abs(params["llama"] - params["lfm2"]) / params["lfm2"] < 0.02
    ratios = report["ratios"]["float32"]
    for name in ("edgesmith/lfm2", "edgesmith/llama"):
        assert set(ratios[name]) == {"prefill tok/s @8", "decode tok/s @8", "peak RSS MB"}
        expected = results["edgesmith"]["decode_tok_s"]["8"] / results[name.split("/")[1]]["decode_tok_s"]["8"]
        assert math.isclose(ratios[name]["decode tok/s @8"], expected)
    # the roofline: GB/s per dtype and path, and each decode cell as a fraction of it
    roofline = report["roofline"]
    assert set(roofline["best_gb_s"]) == {"float32", "bfloat16", "int8", "int8_dynamic"} and roofline["fp32_gb_s"] > 0
    # ... streamed over as many weights as a decode step reads (the nearest whole number of copies)
    distinct = sum(n * k for n, k in roofline["shapes"]) * 4
    assert roofline["copies"] >= 1 and abs(roofline["copies"] * distinct - 4 * params["lfm2"]) <= distinct / 2
    cell = report["roofline_fractions"]["float32"]["edgesmith"]["cells"]["8"]
    assert math.isclose(cell["of_fp32_bandwidth"] * cell["roofline_tok_s"], results["edgesmith"]["decode_tok_s"]["8"])
    assert report["speedup_bounds"] == {"float32": 1.0}  # fp32 against itself; other dtypes where measured
    # rollouts: both engines timed, greedy outputs compared row by row
    rollouts = report["rollouts"]
    assert rollouts["edgesmith"]["tok_s"] > 0 and rollouts["lfm2"]["tok_s"] > 0
    assert math.isclose(rollouts["ratio"], rollouts["edgesmith"]["tok_s"] / rollouts["lfm2"]["tok_s"])
    assert rollouts["greedy_rows"] == 2 and 0 <= rollouts["greedy_identical_rows"] <= 2
    assert (tmp_path / "model_speed.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "edgesmith/lfm2" in out and "decode tok/s @8" in out and "mat-vec roofline" in out
    assert not list(tmp_path.glob("model_speed_*"))  # the temporary checkpoints are gone


@pytest.mark.slow
def test_int8_is_measured_for_edgesmith_only(tmp_path):
    overrides = [o for o in MINIATURE if not o.startswith("model_speed.dtypes")]
    assert main(["bench", "bench=model_speed", *overrides, "model_speed.dtypes=[float32,int8,int8_dynamic]",
                 "model_speed.models=[edgesmith,lfm2]", "model_speed.rollout=false", f"hydra.run.dir={tmp_path}"]) == 0
    report = json.loads((tmp_path / "model_speed.json").read_text())
    fp32 = report["results"]["float32"]["edgesmith"]
    for dtype in ("int8", "int8_dynamic"):
        assert sorted(report["results"][dtype]) == ["edgesmith"]
        int8 = report["results"][dtype]["edgesmith"]
        # int8 weights (+ scales and norms); int8_dynamic's packed weights are counted though not buffers
        assert fp32["decode_bytes"] / 4 < int8["decode_bytes"] < fp32["decode_bytes"] / 2
        speedup = report["ratios"][dtype]["edgesmith/edgesmith float32"]["decode tok/s @8"]
        assert math.isclose(speedup, int8["decode_tok_s"]["8"] / fp32["decode_tok_s"]["8"])
    assert report["rollouts"] == {}


def test_the_roofline_streams_as_many_weights_as_a_decode_step():
    # LFM2-350M: 354.5M parameters read per step; its distinct matrices hold 80.7M (161 MB in
    # bf16, which a 480 MiB last-level cache would hold), so the probe repeats them 4 times.
    spec = {"hidden_size": 1024, "intermediate_size": 4608, "vocab_size": 65536,
            "working_set_bytes": 4 * 354_483_968}
    assert roofline_copies(spec) == 4
    assert roofline_copies({**spec, "working_set_bytes": 0}) == 1


def test_speedup_bound_is_the_ratio_of_rooflines():
    # fp32 streams 30 GB/s of 4-byte weights, bf16 24 GB/s of 2-byte ones: at best 1.6x fp32
    roofline = {"fp32_gb_s": 30.0, "best_gb_s": {"float32": 30.0, "bfloat16": 24.0}}
    fractions = {"float32": {"edgesmith": {"decode_bytes": 4_000}}, "bfloat16": {"edgesmith": {"decode_bytes": 2_000}},
                 "int8": {"lfm2": {"decode_bytes": 1_000}}}
    bounds = speedup_bounds(roofline, fractions)
    assert bounds.keys() == {"float32", "bfloat16"} and math.isclose(bounds["bfloat16"], 1.6)
    assert speedup_bounds(roofline, {"bfloat16": fractions["bfloat16"]}) == {}  # no fp32 cell to compare with
