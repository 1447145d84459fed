"""The profilers' timing schedule: interleaved short repeats that stop once steady."""

from __future__ import annotations

import itertools

import pytest

from edgesmith.core.errors import ConfigError
from edgesmith.search.profilers.local_cpu import LocalCPUProfiler
from edgesmith.search.profilers.timing import in_rounds, interleaved


def recorder(log: list[str], name: str, values):
    values = itertools.cycle(values)

    def run() -> float:
        log.append(name)
        return next(values)

    return run


def test_interleaved_alternates_and_stops_once_steady():
    log: list[str] = []
    timed = interleaved(recorder(log, "p", [10.0]), recorder(log, "d", [2.0, 2.02]), warmup=1, min_repeats=3,
                        repeats=20, max_cv=0.05, budget_s=None)
    assert log == ["p", "d"] * 4  # one warm-up pair, then three timed pairs: steady, stopped
    assert timed["decode"]["n"] == 3 and timed["decode"]["stopped"] == "steady"
    assert timed["decode"]["median"] == 2.02 and timed["prefill"]["cv"] == 0.0  # the warm-up took a 2.0


def test_interleaved_runs_to_repeats_while_noisy_and_reports_the_median():
    log: list[str] = []
    timed = interleaved(recorder(log, "p", [10.0]), recorder(log, "d", [1.0, 3.0, 2.0]), warmup=0,
                        min_repeats=3, repeats=9, max_cv=0.05, budget_s=None)
    assert timed["decode"]["n"] == 9 and timed["decode"]["stopped"] == "repeats"
    assert timed["decode"]["median"] == 2.0 and timed["decode"]["cv"] > 0.3


def test_interleaved_stops_at_the_time_budget():
    timed = interleaved(lambda: 1.0, recorder([], "d", [1.0, 5.0]), warmup=0, min_repeats=3, repeats=50,
                        max_cv=0.01, budget_s=1e-9)
    assert timed["decode"]["n"] == 2 and timed["decode"]["stopped"] == "budget"


def test_rounds_keep_the_steadiest_block():
    timed = in_rounds(lambda: 1.0, recorder([], "d", [1.0, 3.0, 1.0, 3.0, 2.0, 2.0, 2.0, 2.0]), warmup=0,
                      repeats=4, max_cv=0.05, max_rounds=2)
    assert timed["decode"]["rounds"] == 2 and timed["decode"]["median"] == 2.0 and timed["decode"]["cv"] == 0.0


@pytest.mark.parametrize("options, key", [({"schedule": "blocks"}, "schedule"), ({"budget_s": 0}, "budget_s"),
                                          ({"min_repeats": 0}, "min_repeats"),
                                          ({"weights_init": "zeros"}, "weights_init")])
def test_bad_schedule_options_name_the_key(options, key):
    with pytest.raises(ConfigError, match=rf"search\.profiler\.options\.{key}="):
        LocalCPUProfiler(options)


def test_local_cpu_states_what_it_measured():
    result = LocalCPUProfiler({"threads": 1, "prefill_tokens": 8, "decode_context": 8, "decode_tokens": 2,
                               "repeats": 3, "min_repeats": 2, "max_cv": 0.9, "timeout_s": 300}).profile(
        {"vocab_size": 128, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 4,
         "num_key_value_heads": 2, "layers": [{"op": "short_conv"}, {"op": "gqa"}]})
    assert (result["threads"], result["dtype"], result["schedule"], result["weights_init"]) == \
        (1, "float32", "interleaved", "fill")
    assert (result["prefill_tokens"], result["decode_context"], result["decode_tokens"]) == (8, 8, 2)
    assert 2 <= result["decode_stats"]["n"] <= 3 and result["decode_ms_per_token"] > 0


def test_random_weights_are_finite_varied_and_seeded():
    import torch

    from edgesmith.search.profilers.weights import BLOCK, fill_with_block, random_candidate

    config = {"hidden_size": 64, "vocab_size": 300, "intermediate_size": 128, "num_attention_heads": 4,
              "num_key_value_heads": 2, "layers": [{"op": "short_conv"}, {"op": "gqa"}]}
    a, b = random_candidate(config, torch.float32, 0), random_candidate(config, torch.float32, 0)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.isfinite(p).all() and torch.equal(p, q), name  # same seed, same weights
        if p.dim() >= 2:
            assert p.std() > 0.01 and p.abs().max() < 1.0, name  # N(0, 0.02)-like, not constant
        else:
            assert torch.equal(p, torch.ones_like(p)), name
    # a tensor longer than the block gets the block end to end, the last copy cut short
    flat, block = torch.zeros(2 * BLOCK + 5), torch.arange(BLOCK, dtype=torch.float32)
    fill_with_block(flat, block)
    assert torch.equal(flat[BLOCK:2 * BLOCK], block) and torch.equal(flat[-5:], block[:5])
