"""Search space, analytic cost model, proxies and storage URLs (no study run, fast)."""

from __future__ import annotations

import types

import optuna
import pytest
import torch
from omegaconf import OmegaConf

from edgesmith.core.configuration import EdgeConfig
from edgesmith.core.errors import ConfigError
from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.modeling import EdgeForCausalLM
from edgesmith.core.plugin_manager import PluginManager
from edgesmith.core.options import build_options
from edgesmith.search.config import SearchConfig, SpaceConfig
from edgesmith.search.cost import estimate_cost
from edgesmith.core.profiler import TrialPruned
from edgesmith.search.proxies.short_train import ShortTrainProxy
from edgesmith.search.proxies.zero_cost import ZeroCostProxy
from edgesmith.search.space import SearchSpace, attention_positions
from edgesmith.search.storage import resolve_storage


def _sample(space: SearchSpace, n: int, seed: int = 0) -> list[dict]:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(space.sample(trial))
        study.tell(trial, 0.0)
    return out


def test_pattern_layout_samples_valid_configs_with_attention_where_placed():
    cfg = SpaceConfig(num_layers=[4, 6], operators={"short_conv": {"conv_length": [2, 3]}, "gqa": {},
                                                      "swa": {"window": [8]}, "gated_deltanet": {}},
                      num_attention=[1, 3], placements=["spread", "end", "start"])
    for mc in _sample(SearchSpace(cfg), 12):
        config = EdgeConfig(**mc)
        config.resolve_operators()  # every op and option accepted by the registry
        ops = [layer["op"] for layer in mc["layers"]]
        n_attn = sum(op in ("gqa", "swa") for op in ops)
        assert 1 <= n_attn <= 3 and 4 <= len(ops) <= 6
        assert len({op for op in ops if op in ("gqa", "swa")}) <= 1  # one attention op per candidate
        assert mc["num_attention_heads"] % mc["num_key_value_heads"] == 0


def test_free_layout_and_a_third_party_operator_from_the_registry():
    from edgesmith.plugins.operators.short_conv import ShortConv

    plugin = types.SimpleNamespace(edgesmith_operators=hookimpl(lambda: {"my_conv": ShortConv}))
    manager = PluginManager()  # built-ins through entry points, like any installed package
    manager.register(plugin, name="thirdparty")
    cfg = SpaceConfig(layout="free", num_layers=[3, 3], operators={"my_conv": {"conv_length": [4]}, "gqa": {}})
    configs = _sample(SearchSpace(cfg, manager), 10, seed=1)
    assert any(layer["op"] == "my_conv" for mc in configs for layer in mc["layers"])
    assert all(layer.get("conv_length") == 4 for mc in configs for layer in mc["layers"] if layer["op"] == "my_conv")
    EdgeConfig(**configs[0]).resolve_operators(manager)


def test_space_errors_name_the_key_and_accepted_values():
    with pytest.raises(ConfigError, match=r"search.space.operators.short_conv.kernel.*conv_length"):
        SearchSpace(SpaceConfig(operators={"short_conv": {"kernel": [3]}, "gqa": {}}))
    with pytest.raises(Exception, match=r"unknown operator 'nope'.*short_conv"):
        SearchSpace(SpaceConfig(operators={"nope": {}, "gqa": {}}))
    section = OmegaConf.create({"space": {"hidden_size": [60], "num_attention_heads": [8]}})
    with pytest.raises(ConfigError, match=r"search.space.hidden_size.*divisible"):
        build_options(SearchConfig, section, key="search")
    with pytest.raises(ConfigError, match=r"search.sampler.*nsga2"):
        build_options(SearchConfig, OmegaConf.create({"sampler": "annealing"}), key="search")


def test_search_command_options_name_the_full_key(tmp_path, capsys):
    """`edgesmith search`: its options are the `search` group's section (SearchConfig, as the stage's);
    a typo there or at the top level is an error naming the key, before any study starts."""
    from edgesmith.core.cli import main

    assert main(["search", "+search.n_trails=3", f"hydra.run.dir={tmp_path}"]) == 1
    assert ("invalid config value search.n_trails=3: accepted options of search: choose, constraints, "
            in " ".join(capsys.readouterr().err.split()))
    assert main(["search", "search=main", "search.n_trials=many", f"hydra.run.dir={tmp_path}"]) == 1
    assert "invalid config value search.n_trials='many': accepted a value of the declared type" in \
        " ".join(capsys.readouterr().err.split())
    assert main(["search", "+n_trials=3", f"hydra.run.dir={tmp_path}"]) == 1
    assert "invalid config value n_trials=3: accepted options of search: search" in capsys.readouterr().err
    assert not (tmp_path / "study.db").exists()
    # the defaults are SearchConfig's and the preset's: none is stored as a command's `search_options`
    from hydra.core.config_store import ConfigStore

    assert "search_options.yaml" not in ConfigStore.instance().repo and "eval_options.yaml" in ConfigStore.instance().repo


def test_attention_positions():
    assert attention_positions(16, 6, "spread") == sorted(set(attention_positions(16, 6, "spread")))
    assert len(attention_positions(16, 6, "spread")) == 6 and attention_positions(16, 6, "spread")[-1] == 15
    assert attention_positions(5, 2, "end") == [3, 4]
    assert attention_positions(5, 2, "start") == [0, 1]


@pytest.mark.parametrize("layers", [
    [{"op": "short_conv", "conv_length": 3}, {"op": "gqa"}, {"op": "swa", "window": 8}],
    [{"op": "gated_deltanet"}, {"op": "linear_attn"}, {"op": "short_conv"}],
])
@pytest.mark.parametrize("tied", [True, False])
def test_analytic_params_match_the_built_model(layers, tied):
    mc = {"vocab_size": 300, "hidden_size": 64, "intermediate_size": 160, "num_attention_heads": 4,
          "num_key_value_heads": 2, "tie_word_embeddings": tied, "layers": layers}
    est = estimate_cost(mc, context_length=32, dtype_bytes=4)
    model = EdgeForCausalLM(EdgeConfig(**mc))
    assert est.params == sum(p.numel() for p in model.parameters())
    assert est.embedding_params == 300 * 64 * (1 if tied else 2)
    assert est.weight_bytes == est.params * 4 and est.state_bytes > 0


def test_zero_cost_prefers_more_non_embedding_parameters():
    small = {"vocab_size": 512, "hidden_size": 64, "num_attention_heads": 4, "layers": [{"op": "gqa"}]}
    big = {**small, "layers": [{"op": "gqa"}] * 3}
    proxy = ZeroCostProxy()
    assert proxy.evaluate(big) < proxy.evaluate(small) < 0
    assert proxy.evaluate(small) == pytest.approx(-estimate_cost(small).non_embedding_params / 1e6)


def test_short_train_learns_reports_and_prunes():
    torch.manual_seed(0)
    texts = [f"the {w} sat on the mat number {i % 7}." for i, w in enumerate(["cat", "dog", "bird"] * 60)]
    proxy = ShortTrainProxy({"width": 32, "tokens": 6144, "seq_len": 32, "batch_size": 8, "eval_every": 8,
                             "val_documents": 10, "lr": 1e-2}, texts=texts)
    mc = {"vocab_size": 4096, "hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 4,
          "layers": [{"op": "short_conv", "conv_length": 3}, {"op": "gqa"}]}
    seen: list[tuple[int, float]] = []
    final = proxy.evaluate(mc, report=lambda v, s: seen.append((s, v)) or False)
    assert [s for s, _ in seen] == [8, 16]  # the last eval is the result, not a report
    assert final < seen[0][1] < 8.0  # learns: below the uniform byte entropy of 8 bits per byte
    with pytest.raises(TrialPruned, match="step 8"):
        proxy.evaluate(mc, report=lambda v, s: True)


def test_malformed_storage_urls_are_rejected_clearly(tmp_path):
    for bad in ("not a url", "sqlite://", "nosuchdb://host/x", "grpc://host-without-port", "journal://relative"):
        with pytest.raises(ConfigError) as info:
            resolve_storage(bad, tmp_path)
        assert "search.storage" in str(info.value) and "sqlite:///PATH" in str(info.value)
    assert resolve_storage(None, tmp_path).url == f"sqlite:///{(tmp_path / 'study.db').resolve()}"
    assert resolve_storage(f"journal://{tmp_path}/j.log", tmp_path).kind == "journal"
    # gRPC is refused (not supported), naming the storages that are accepted
    with pytest.raises(ConfigError) as info:
        resolve_storage("grpc://localhost:13000", tmp_path)
    message = str(info.value)
    assert "gRPC storage proxy is not supported" in message
    assert all(form in message for form in ("sqlite:///PATH", "journal:///PATH", "postgresql://"))
    assert "grpc://HOST:PORT" not in message
    journal = resolve_storage(f"journal://{tmp_path}/k.log", tmp_path)
    assert not journal.retries_dead_trials and "NOT retried" in journal.retry_note
    sqlite = resolve_storage(None, tmp_path)
    assert sqlite.retries_dead_trials and "is retried" in sqlite.retry_note
