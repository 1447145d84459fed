"""The local_cpu profiler's peak memory is the candidate's own: what the search process holds
does not show up in it, and a bigger candidate peaks higher."""

from __future__ import annotations

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.search.cost import estimate_cost
from edgesmith.search.profilers.local_cpu import LocalCPUProfiler

QUICK = dict(threads=1, dtype="float32", prefill_tokens=16, decode_context=16, decode_tokens=2,
             warmup=0, repeats=2, max_cv=1.0, max_rounds=1, timeout_s=300)
TINY = {"vocab_size": 320, "hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2,
        "num_key_value_heads": 1, "layers": [{"op": "short_conv"}, {"op": "gqa"}]}
# ~17.6M parameters: ~67 MB of float32 weights.
BIG = {**TINY, "vocab_size": 8192, "hidden_size": 512, "intermediate_size": 1536, "num_attention_heads": 8,
       "layers": [{"op": "short_conv"}, {"op": "gqa"}] * 2}


@pytest.fixture(scope="module")
def tiny_profile():
    return LocalCPUProfiler(QUICK).profile(TINY)


def test_memory_held_by_the_search_process_does_not_count(tiny_profile):
    held = bytearray(b"\x01") * (1 << 30)  # 1 GiB, every page written (resident)
    try:
        with_held = LocalCPUProfiler(QUICK).profile(TINY)
    finally:
        del held
    assert tiny_profile["peak_rss_method"] == "clear_refs"
    # ru_maxrss (inherited over fork and exec) reported ~1 GiB more here.
    assert abs(with_held["peak_rss_mb"] - tiny_profile["peak_rss_mb"]) < 8
    assert with_held["peak_rss_total_mb"] < with_held["baseline_rss_mb"] + 64
    assert with_held["peak_rss_total_mb"] == pytest.approx(with_held["baseline_rss_mb"] + with_held["peak_rss_mb"])


def test_a_bigger_candidate_reports_a_bigger_peak(tiny_profile):
    big = LocalCPUProfiler({**QUICK, "clock": "cpu"}).profile(BIG)
    weights_mb = estimate_cost(BIG, dtype_bytes=4).weight_bytes / 2**20
    assert tiny_profile["peak_rss_mb"] < 16
    assert big["peak_rss_mb"] > tiny_profile["peak_rss_mb"] + 50
    assert weights_mb <= big["peak_rss_mb"] < 2 * weights_mb  # the weights, plus activations and caches
    assert big["clock"] == "cpu" and big["decode_ms_per_token"] > 0


def test_cpu_clock_needs_one_thread():
    with pytest.raises(ConfigError, match=r"search.profiler.options.clock='cpu'.*threads=1"):
        LocalCPUProfiler({**QUICK, "threads": 2, "clock": "cpu"})
    with pytest.raises(ConfigError, match=r"search.profiler.options.clock='gpu'.*wall or cpu"):
        LocalCPUProfiler({**QUICK, "clock": "gpu"})
