"""The ``llama_cpp`` profiler: tiny candidates exported to GGUF, quantized, timed in llama.cpp."""

from __future__ import annotations

import optuna
import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.core.plugin_manager import get_plugin_manager
from edgesmith.core.profiler import CandidateNotMeasurable
from edgesmith.search.profilers.llama_cpp import LlamaCppProfiler
from edgesmith.search.profilers.local_cpu import LocalCPUProfiler

QUICK = dict(threads=1, prefill_tokens=16, decode_context=16, decode_tokens=4, warmup=1, repeats=4,
             min_repeats=2, max_cv=0.5, timeout_s=300)


def candidate(*ops: str, hidden: int = 64, vocab: int = 320) -> dict:
    layers = [{"op": "short_conv", "conv_length": 3} if op == "conv" else {"op": op} for op in ops]
    return {"vocab_size": vocab, "hidden_size": hidden, "intermediate_size": 2 * hidden,
            "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True,
            "max_position_embeddings": 256, "layers": layers}


def test_registered_and_profiles_a_candidate_with_local_cpu_fields():
    assert get_plugin_manager().get("profiler", "llama_cpp", key="search.profiler.name") is LlamaCppProfiler
    profiler = LlamaCppProfiler({**QUICK, "quant": "q8_0"})
    result = profiler.profile(candidate("conv", "gqa", "conv"))
    local = LocalCPUProfiler(QUICK).profile(candidate("conv", "gqa", "conv"))
    assert set(local) - {"dtype", "weights_init"} <= set(result)  # every local_cpu field, and more
    assert result["profiler"] == "llama_cpp" and result["quant"] == "q8_0"
    assert result["decode_ms_per_token"] > 0 and result["prefill_ms"] > 0 and result["peak_rss_mb"] > 0
    assert result["threads"] == 1 and result["decode_context"] == 16 and result["prefill_tokens"] == 16
    assert result["decode_stats"]["n"] >= 2 and result["decode_stats"]["stopped"] in ("steady", "repeats")
    assert result["gguf_bytes"] > 0 and "lfm2" in result["model_desc"].lower()
    assert result["fingerprint"]["quant"] == "q8_0"
    assert result["fingerprint"]["runtime"].startswith("llama-cpp-python ")


def test_a_candidate_llama_cpp_cannot_run_is_not_measurable_or_falls_back():
    profiler = LlamaCppProfiler(QUICK)
    unrunnable = candidate("conv", "swa", "gated_deltanet")
    reason = profiler.why_not_measurable(unrunnable)
    assert "layer 1 is swa" in reason and "layer 2 is gated_deltanet" in reason
    with pytest.raises(CandidateNotMeasurable, match="layer 2 is gated_deltanet"):
        profiler.profile(unrunnable)
    fallback = LlamaCppProfiler({**QUICK, "fallback": "local_cpu"})
    assert fallback.why_not_measurable(unrunnable) is None
    result = fallback.profile(unrunnable)
    assert result["profiler"] == "local_cpu" and "layer 1 is swa" in result["fallback_reason"]
    assert result["decode_ms_per_token"] > 0


@pytest.mark.parametrize("options, key", [({"quant": "q3"}, "quant"), ({"fallback": "torch"}, "fallback"),
                                          ({"schedule": "random"}, "schedule")])
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError, match=rf"search\.profiler\.options\.{key}="):
        LlamaCppProfiler(options)


def llama_search(tmp_path, quant: str, n_trials: int, **overrides):
    from edgesmith.core.options import build_options
    from edgesmith.search.config import SearchConfig

    section = {
        "study_name": "llama", "n_trials": n_trials, "seed": 0, "max_infeasible": 20, "plots": False,
        "sampler": "random", "sampler_options": {}, "objectives": ["proxy", "decode_ms"],
        "storage": f"sqlite:///{tmp_path}/study.db",
        "space": {"num_layers": [2, 3], "hidden_size": [64], "num_attention_heads": [4], "ffn_ratio": [2.0],
                  "num_key_value_heads": [2], "vocab_size": [320], "layout": "free",
                  "operators": {"short_conv": {"conv_length": [3]}, "gqa": {}, "swa": {"window": [16]}},
                  "max_position_embeddings": 256},
        "constraints": {"max_params": 2_000_000, "max_embedding_share": 0.9},
        "profiler": {"name": "llama_cpp", "options": {**QUICK, "quant": quant}},
        "proxy": {"name": "zero_cost", "options": {}},
        **overrides,
    }
    return build_options(SearchConfig, section, key="search")


def test_study_records_why_a_candidate_is_infeasible_and_refuses_another_quant(tmp_path):
    """A search with llama_cpp: swa candidates are infeasible with the reason, others measured;
    a worker measuring another quant type does not join the study unless told to."""
    from edgesmith.search.study import FingerprintMismatchError, run_search

    run_search(llama_search(tmp_path, "q4_0", 3), tmp_path / "a", write_outputs=False)
    study = optuna.load_study(study_name="llama", storage=f"sqlite:///{tmp_path}/study.db")
    trials = study.get_trials(deepcopy=False)
    swa = [t for t in trials if any(l["op"] == "swa" for l in t.user_attrs.get("model_config", {}).get("layers", []))]
    assert swa, "the random sampler proposed no swa candidate"
    for t in swa:
        assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["feasible"] is False
        assert any("not runnable by llama.cpp" in v and "is swa" in v for v in t.user_attrs["violations"])
        assert "proxy" not in t.user_attrs  # refused before the quality proxy was spent on it
    measured = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(measured) == 3 and all(t.user_attrs["profile"]["quant"] == "q4_0" for t in measured)
    assert study.user_attrs["target_fingerprint"]["quant"] == "q4_0"

    with pytest.raises(FingerprintMismatchError, match=r"quant: study target 'q4_0', this worker 'q8_0'"):
        run_search(llama_search(tmp_path, "q8_0", 4), tmp_path / "b", write_outputs=False)
    joined = run_search(llama_search(tmp_path, "q8_0", 4, workers={"check_fingerprint": False}),
                        tmp_path / "c", write_outputs=False)
    assert len(joined.trials_run_here) >= 1


def test_two_llama_cpp_workers_share_one_study(tmp_path):
    """The farm recipe on one machine: two worker processes, one journal storage, llama_cpp."""
    import os
    import subprocess
    import sys

    storage = f"journal://{tmp_path}/farm.log"
    args = ["search", "search=tiny", f"search.storage={storage}", "search.study_name=farm-llama",
            "search.n_trials=4", "search.objectives=[proxy,decode_ms]", "search.plots=false",
            "search.profiler.name=llama_cpp",
            "~search.profiler.options", "+search.profiler.options={threads:1,quant:q8_0,prefill_tokens:16,decode_context:16,"
            "decode_tokens:4,repeats:3,min_repeats:2,max_cv:0.5,timeout_s:300}",
            "~search.space.operators", "+search.space.operators={short_conv:{conv_length:[3]},gqa:{}}",
            "search.space.attention_operators=[gqa]", "search.space.num_key_value_heads=[2]",
            "search.space.num_attention_heads=[4]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # The worker as `edgesmith search` runs it, then which training libraries it loaded: a
    # measuring machine needs none of them (zero_cost proxy: nothing is trained).
    worker = ("import sys; from edgesmith.core.cli import main; rc = main(sys.argv[1:]); "
              "print('TRAINING LIBRARIES', sorted(m for m in ('trl', 'datasets', 'peft') if m in sys.modules)); "
              "sys.exit(rc)")
    procs = [subprocess.Popen([sys.executable, "-c", worker, *args, f"hydra.run.dir={tmp_path}/w{i}"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), "\n".join(o[-3000:] for o in outs)
    for out in outs:  # each worker says at start-up which runtime it measures with (rich wraps lines)
        said = " ".join(out.split())
        assert "profiler llama_cpp on" in said and "quant: q8_0" in said and "runtime: llama-cpp-python" in said
        assert "TRAINING LIBRARIES []" in out
    study = optuna.load_study(study_name="farm-llama", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(f"{tmp_path}/farm.log")))
    done = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4
    assert {t.user_attrs["profile"]["profiler"] for t in done} == {"llama_cpp"}
    assert len({t.user_attrs["worker"] for t in done}) == 2  # both workers measured


def test_search_space_norm_eps_lets_gated_deltanet_candidates_run_as_qwen3next():
    from edgesmith.search.config import SpaceConfig
    from edgesmith.search.space import SearchSpace

    def sampled(norm_eps):
        space = SearchSpace(SpaceConfig(num_layers=[4, 4], hidden_size=[64], num_attention_heads=[4],
                                        num_key_value_heads=[2], vocab_size=[320], num_attention=[1, 1],
                                        operators={"gated_deltanet": {}, "gqa": {}}, attention_operators=["gqa"],
                                        placements=["end"], norm_eps=norm_eps))
        return space.sample(optuna.create_study().ask())

    profiler = LlamaCppProfiler(QUICK)
    default = sampled(None)
    assert "norm_eps" not in default  # candidates of existing studies keep their keys
    assert "model.norm_eps=1e-06" in profiler.why_not_measurable(default)
    runnable = sampled(1e-6)
    assert profiler.why_not_measurable(runnable) is None
    result = profiler.profile(runnable)  # exported, quantized and timed in llama.cpp
    assert "qwen3next" in result["model_desc"].lower() and result["decode_ms_per_token"] > 0
    with pytest.raises(ConfigError, match=r"search\.space\.norm_eps=0"):
        sampled(0)
