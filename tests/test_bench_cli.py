"""`edgesmith bench`: the benchmark registry and a miniature real run of `bench=model`."""

from __future__ import annotations

import json
import math

from edgesmith.core.cli import main

# The LFM2 layout in miniature: every model is still built, saved, loaded in its own
# subprocess and timed; only the sizes shrink so the run takes seconds.
MINIATURE = [
    "model.dtypes=[float32]", "model.prefill_lengths=[8]", "model.decode_contexts=[8]",
    "model.decode_tokens=2", "model.repeats=1", "model.threads=1", "model.vocab_size=128",
    "model.hidden_size=32", "model.intermediate_size=64", "model.num_layers=3",
    "model.attention_layers=[1]", "model.num_attention_heads=4", "model.num_key_value_heads=2",
]


def test_unknown_benchmark_lists_registered_ones(tmp_path, capsys):
    assert main(["bench", "bench=warp", f"hydra.run.dir={tmp_path}"]) == 1
    err = capsys.readouterr().err
    assert "unknown benchmark 'warp' (config key bench); registered benchmarks:" in err
    assert "model" in err.split("registered benchmarks:")[1]


def test_bad_option_is_named_before_any_work(tmp_path, capsys):
    assert main(["bench", "bench=model", "model.dtypes=[float16]", f"hydra.run.dir={tmp_path}"]) == 1
    assert "invalid config value model.dtypes=['float16']" in capsys.readouterr().err
    assert not (tmp_path / "model_speed.json").exists()


def test_model_benchmark_miniature_run(tmp_path, capsys):
    assert main(["bench", "bench=model", *MINIATURE, f"hydra.run.dir={tmp_path}"]) == 0
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
    assert (tmp_path / "model_speed.png").stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "edgesmith/lfm2" in out and "decode tok/s @8" in out
    assert not list(tmp_path.glob("model_speed_*"))  # the temporary checkpoints are gone
