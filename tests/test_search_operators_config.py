"""`search.space.operators` is what is searched: nothing merged in from defaults, the configured
order kept, and `{}` / null meaning every registered operator, third-party ones included."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from edgesmith.core.plugin_manager import PluginManager, get_plugin_manager, reset_plugin_manager
from edgesmith.core.options import build_options
from edgesmith.search.config import SearchConfig, load_preset
from edgesmith.search.space import SearchSpace
from edgesmith.search.study import run_search

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SRC = REPO / "examples" / "edgesmith_example_plugin" / "src"


@pytest.fixture
def with_example_plugin(tmp_path, monkeypatch):
    """The example package installed (its `causal_mean` found through entry points), in the
    process-wide plugin manager the models and proxies build operators with."""
    info = tmp_path / "edgesmith_example_plugin-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgesmith-example-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[edgesmith]\nexample = edgesmith_example_plugin.hooks\n")
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugin_manager()
    manager = get_plugin_manager()
    assert "causal_mean" in manager.names("operator")
    yield manager
    reset_plugin_manager()  # the next user rebuilds it without the example package


def searched(section: dict, plugins: PluginManager, n: int = 12) -> tuple[list[str], set[str]]:
    """The space's operators (in order) and the operators of ``n`` sampled candidates."""
    cfg = build_options(SearchConfig, section, key="search")
    space = SearchSpace(cfg.space, plugins)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    used = set()
    for _ in range(n):
        trial = study.ask()
        used |= {layer["op"] for layer in space.sample(trial)["layers"]}
        study.tell(trial, 0.0)
    return list(space.operators), used


def test_exactly_the_configured_operators_in_their_order(with_example_plugin):
    ops, used = searched({"space": {"operators": {"causal_mean": {"gate": [True, False]}, "gqa": {}},
                                    "num_layers": [3, 4]}}, with_example_plugin)
    assert ops == ["causal_mean", "gqa"]  # was [short_conv, gqa, causal_mean]: merged into the default
    assert used == {"causal_mean", "gqa"}
    ops, used = searched({"space": {"operators": {"short_conv": {}}, "num_attention": [0, 0]}}, with_example_plugin)
    assert ops == ["short_conv"] and used == {"short_conv"}  # gqa can be left out


@pytest.mark.parametrize("operators", [{}, None])
def test_empty_or_null_means_every_registered_operator(with_example_plugin, operators):
    ops, used = searched({"space": {"operators": operators, "layout": "free", "num_layers": [4, 4]}},
                         with_example_plugin, n=20)
    assert set(ops) == set(with_example_plugin.names("operator")) and "causal_mean" in ops
    assert "causal_mean" in used


def test_the_command_line_can_replace_a_presets_operators():
    # Hydra merges a mapping given as key=value into the preset's; deleting first replaces it.
    with initialize_config_module(config_module="edgesmith.conf", version_base=None):
        cfg = compose(config_name="search_job", overrides=[
            "search=tiny", "~search.space.operators", "+search.space.operators={gqa:{},short_conv:{conv_length:[4]}}"])
    options = build_options(SearchConfig, OmegaConf.select(cfg, "search"), key="search")
    assert options.space.operators == {"gqa": {}, "short_conv": {"conv_length": [4]}}


def test_a_study_over_a_third_party_operator(tmp_path, with_example_plugin):
    section = OmegaConf.to_container(load_preset(REPO / "conf" / "search" / "tiny.yaml"))
    section.update(objectives=["proxy"], plots=False, n_trials=3, proxy={"name": "zero_cost", "options": {}})
    section["constraints"]["peak_memory_mb"] = None
    section["space"]["operators"] = {"causal_mean": {}, "gqa": {}}
    section["space"]["attention_operators"] = ["gqa"]
    cfg = build_options(SearchConfig, section, key="search")
    run_search(cfg, tmp_path, with_example_plugin)
    study = optuna.load_study(study_name="edgesmith-tiny", storage=f"sqlite:///{tmp_path}/study.db")
    ops = {layer["op"] for t in study.trials for layer in t.user_attrs["model_config"]["layers"]}
    assert ops == {"causal_mean", "gqa"}
