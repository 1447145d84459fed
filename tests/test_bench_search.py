"""`edgesmith bench bench=search` in miniature: three methods side by side and rank agreement."""

from __future__ import annotations

import json
import statistics

import pytest

from edgesmith.core.cli import main

pytestmark = pytest.mark.slow  # a miniature benchmark: profiles in subprocesses

QUICK = "threads:1,prefill_tokens:8,decode_context:8,decode_tokens:2,warmup:0,repeats:3,min_repeats:2,max_cv:0.5"
# The candidate is the model preset, as in every command: the tiny one, shrunk.
TINY_CANDIDATE = ["model=tiny", "model.vocab_size=320", "model.intermediate_size=128",
                  "model.layers=[{op:short_conv},{op:gqa}]"]


def test_search_benchmark_miniature_run(tmp_path, capsys):
    args = ["bench", "bench=search", "search.runs=2", *TINY_CANDIDATE,
            f"++search.methods={{today:{{profiler:local_cpu,options:{{{QUICK},schedule:rounds,weights_init:model,"
            f"max_rounds:1}}}},local_cpu:{{profiler:local_cpu,options:{{{QUICK}}}}},"
            f"llama_cpp:{{profiler:llama_cpp,options:{{{QUICK},quant:q4_0}}}}}}",
            "search.rank.candidates=3", "search.rank.preset=tiny",
            "++search.rank.space={operators:{short_conv:{conv_length:[3]},gqa:{}},attention_operators:[gqa],"
            "num_attention_heads:[4],num_key_value_heads:[2]}",
            f"hydra.run.dir={tmp_path}"]
    assert main(args) == 0
    report = json.loads((tmp_path / "search_profile.json").read_text())
    methods = report["summary"]["methods"]
    assert list(methods) == ["today", "local_cpu", "llama_cpp"]
    assert report["candidate"]["vocab_size"] == 320 and len(report["candidate"]["layers"]) == 2
    for name, s in methods.items():
        assert len(report["runs"][name]) == 2 and s["seconds_per_profile"] > 0
        assert s["decode_cv_across_profiles"] >= 0 and s["decode_ms_per_token"] > 0
        fastest = [r["decode_stats"]["min"] for r in report["runs"][name]]
        assert s["decode_cv_across_profiles_fastest"] == pytest.approx(
            statistics.pstdev(fastest) / statistics.fmean(fastest))
    assert methods["today"]["time_ratio_to_today"] == 1.0
    assert {r["schedule"] for r in report["runs"]["today"]} == {"rounds"}
    assert {r["quant"] for r in report["runs"]["llama_cpp"]} == {"q4_0"}
    rank = report["summary"]["rank"]
    assert rank["candidates"] == 3 and rank["methods"] == ["local_cpu", "llama_cpp"]
    assert -1.0 <= rank["spearman_decode_ms_per_token"] <= 1.0
    assert len({json.dumps(r["model_config"], sort_keys=True) for r in report["ranked"]}) == 3
    assert (tmp_path / "search_profile.png").stat().st_size > 10_000
    out = " ".join(capsys.readouterr().out.split())  # rich wraps the tables' cells
    assert "today" in out and "Spearman" in out and "rank agreement" in out
