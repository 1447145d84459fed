"""The chosen architecture and why: budgets, the nearest fallback, the reason and rows the
report shows, repeated candidates, and the main job's preset end to end at a small scale."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf

import edgesmith.conf
from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.pipeline import run_pipeline
from edgesmith.core.options import build_options
from edgesmith.search.choice import choose, describe_choice
from edgesmith.search.config import SearchConfig, load_preset
from edgesmith.search.duplicates import MAX_CONSECUTIVE
from edgesmith.search.space import SearchSpace
from edgesmith.search.study import run_search

CONF = Path(edgesmith.conf.__file__).parent / "search"


def config(**choose) -> SearchConfig:
    return build_options(SearchConfig, {"objectives": ["proxy", "decode_ms", "peak_rss_mb"], "choose": choose},
                         key="search")


def study_of(measured: list[tuple[float, float, float]]) -> optuna.Study:
    """A study holding finished trials with these (proxy, decode_ms, peak_rss_mb) results."""
    study = optuna.create_study(directions=["minimize"] * 3)
    study.set_user_attr("objectives", ["proxy", "decode_ms", "peak_rss_mb"])
    for i, (proxy, decode, peak) in enumerate(measured):
        mc = {"vocab_size": 512, "hidden_size": 64 * (i + 1), "num_attention_heads": 4, "layers": [{"op": "gqa"}]}
        study.add_trial(optuna.trial.create_trial(
            values=[proxy, decode, peak], params={}, distributions={},
            user_attrs={"model_config": mc, "pattern": "gqa", "feasible": True, "proxy": proxy,
                        "estimate": {"params": 1000 * (i + 1)},
                        "profile": {"decode_ms_per_token": decode, "peak_rss_mb": peak, "prefill_ms": 1.0}}))
    return study


MEASURED = [(2.0, 1.0, 10.0), (1.5, 2.0, 20.0), (1.2, 4.0, 30.0), (1.9, 3.0, 25.0)]  # trial 3 is dominated


def test_best_quality_within_the_budget_and_why():
    study = study_of(MEASURED)
    cfg = config(rule="best_quality", decode_ms=3.0, peak_rss_mb=25)
    chosen = choose(study, cfg)
    assert chosen.number == 1  # trial 2 is better but over the decode budget
    choice = describe_choice(study, cfg, chosen, "bits per byte")
    assert choice["rule"] == "best_quality" and choice["budgets"] == {"decode_ms": 3.0, "peak_rss_mb": 25}
    assert choice["within_budget"] is True
    assert choice["reason"].startswith("best proxy bits per byte (1.5) among 3 feasible measured candidates "
                                       "within decode <= 3 ms/token and peak memory <= 25 MB (1 over budget excluded)")
    assert choice["row"]["number"] == 1 and choice["row"]["decode_ms"] == 2.0 and choice["row"]["proxy"] == 1.5
    assert sorted(r["number"] for r in choice["pareto"]) == [0, 1, 2]
    json.dumps(choice)  # goes into the artifact's metadata as is
    assert choose(study, config(rule="fastest")).number == 0
    assert choose(study, config(rule="smallest", peak_rss_mb=5)) is None


def test_nearest_fallback_when_nothing_meets_the_budget():
    study = study_of(MEASURED)
    cfg = config(decode_ms=0.5, peak_rss_mb=25, fallback="nearest")
    chosen = choose(study, cfg)
    assert chosen.number == 0  # decode 1.0 = 2x the budget, the least excess
    choice = describe_choice(study, cfg, chosen)
    assert choice["within_budget"] is False
    assert choice["reason"].startswith("none of 4 feasible measured candidates met decode <= 0.5 ms/token and "
                                       "peak memory <= 25 MB, so the nearest (2.00x its budget) was taken")
    with pytest.raises(Exception, match=r"search.choose.fallback='closest'.*none, nearest"):
        config(fallback="closest")


def test_a_repeated_candidate_reuses_its_results_and_an_exhausted_space_stops(tmp_path):
    section = OmegaConf.to_container(load_preset(CONF / "tiny.yaml"))
    section.update(objectives=["proxy"], plots=False, n_trials=3, proxy={"name": "zero_cost", "options": {}})
    section["constraints"]["peak_memory_mb"] = None
    section["space"].update(num_layers=[2, 2], hidden_size=[64], ffn_ratio=[2.0], num_attention_heads=[2],
                            num_key_value_heads=[1], vocab_size=[320], tie_word_embeddings=[True],
                            num_attention=[1, 1], placements=["end"],
                            operators={"short_conv": {"conv_length": [3]}, "gqa": {}})
    result = run_search(build_options(SearchConfig, section, key="search"), tmp_path)  # one candidate in all
    study = optuna.load_study(study_name="edgesmith-tiny", storage=f"sqlite:///{tmp_path}/study.db")
    first, *rest = study.trials
    assert len(rest) == MAX_CONSECUTIVE and all(t.user_attrs["duplicate_of"] == 0 for t in rest)
    assert all(t.values == first.values and t.user_attrs["proxy"] == first.user_attrs["proxy"] for t in rest)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert result.chosen["trial"] == 0 and [r["number"] for r in summary["chosen"]["choice"]["pareto"]] == [0]


def test_main_preset_space():
    cfg = build_options(SearchConfig, load_preset(CONF / "main.yaml"), key="search")
    assert cfg.proxy.name == "short_train" and cfg.proxy.options["tokenizer"] == "bpe"
    space = SearchSpace(cfg.space)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        trial = study.ask()
        mc = space.sample(trial)
        study.tell(trial, 0.0)
        n_attn = sum(layer["op"] == "gqa" for layer in mc["layers"])
        assert 1 <= n_attn <= 2 and mc["tie_word_embeddings"] and mc["max_position_embeddings"] == 2048
        assert 32 <= mc["hidden_size"] // mc["num_attention_heads"] <= 64
        EdgeConfig(**mc).resolve_operators()


def test_main_preset_through_the_stage_at_a_small_scale(tmp_path):
    section = OmegaConf.to_container(load_preset(CONF / "main.yaml"))
    section.update(n_trials=2, plots=False, corpus_documents=60, timeout_s=None)
    section["proxy"]["options"].update(tokens=512, seq_len=32, batch_size=4, eval_every=100, val_documents=6)
    section["profiler"]["options"].update(repeats=2, warmup=0, decode_context=16, decode_tokens=2, prefill_tokens=8)
    section["space"].update(num_layers=[2, 3], hidden_size=[64, 128], num_attention_heads=[2], vocab_size=[300, 400])
    section["constraints"]["max_embedding_share"] = 0.9
    cfg = OmegaConf.create({"pipeline": {"stages": ["search"]}, "search": section})
    artifact = run_pipeline(cfg, tmp_path)["search"]
    choice = artifact.metadata["choice"]
    assert choice["proxy_unit"] == "bits per byte" and "best proxy bits per byte" in choice["reason"]
    row = choice["row"]
    assert 0 < row["proxy"] < 12 and row["decode_ms"] > 0 and 0 < row["peak_rss_mb"] < row["peak_rss_total_mb"]
    assert EdgeConfig.from_pretrained(artifact.path).vocab_size == row["vocab_size"]
