"""The one options contract: build_options, PluginRef, and PluginManager.build for every kind."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from edgesmith.core.command import command_options, section_defaults
from edgesmith.core.errors import ConfigError, PluginError
from edgesmith.core.hookspecs import KINDS, hookimpl
from edgesmith.core.options import PluginRef, build_options, check_keys
from edgesmith.core.plugin_manager import PluginManager, get_plugin_manager
from edgesmith.core.reward import Reward, RewardRuntime
from edgesmith.search.config import SearchConfig


@dataclass
class Inner:
    depth: int = 2
    label: str = "x"


@dataclass
class Sample:
    count: int = 1
    ratio: float = 0.5
    flag: bool = False
    weights: dict[str, float] = field(default_factory=lambda: {"a": 1.0, "b": 2.0})
    inner: Inner = field(default_factory=Inner)

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ConfigError("count", self.count, "an integer >= 1")


def test_unknown_keys_name_the_full_key_and_every_accepted_one():
    with pytest.raises(ConfigError) as info:
        build_options(Sample, {"cuont": 3}, "dpo.judges[1].options")
    assert str(info.value) == ("invalid config value dpo.judges[1].options.cuont=3: accepted options of "
                               "dpo.judges[1].options: count, flag, inner, ratio, weights")
    assert info.value.key == "dpo.judges[1].options.cuont"
    with pytest.raises(ConfigError, match=r"^invalid config value n_promts=3: accepted options of eval: model_path, "
                                          r"count, flag"):
        check_keys(Sample, {"n_promts": 3}, key="", label="eval", also=("model_path",))


def test_types_are_checked_and_value_checks_get_the_full_key():
    with pytest.raises(ConfigError, match=r"^invalid config value k.count='many': accepted a value of the declared"):
        build_options(Sample, {"count": "many"}, "k")
    # OmegaConf would read "yes" as true: a flag must be a bool
    with pytest.raises(ConfigError, match=r"^invalid config value k.flag='yes': accepted true or false$"):
        build_options(Sample, {"flag": "yes"}, "k")
    with pytest.raises(ConfigError, match=r"^invalid config value k.count=0: accepted an integer >= 1$"):
        build_options(Sample, {"count": 0}, "k")
    with pytest.raises(ConfigError, match=r"^invalid config value k.inner.depth='deep'"):
        build_options(Sample, {"inner": {"depth": "deep"}}, "k")
    with pytest.raises(ConfigError, match=r"^invalid config value k=\[1\]: accepted a mapping of Sample options$"):
        build_options(Sample, [1], "k")


def test_nested_options_and_a_commands_top_level_options_name_the_key_as_typed():
    # a typo inside a nested options dataclass lists that dataclass's keys, not "a value of the declared type"
    with pytest.raises(ConfigError, match=r"^invalid config value k.inner.detph=3: accepted options of k.inner: "
                                          r"depth, label$"):
        build_options(Sample, {"inner": {"detph": 3}}, "k")
    # a command's options are top-level keys (`edgesmith convert threads=...`): no section to prefix
    with pytest.raises(ConfigError, match=r"^invalid config value count=0: accepted an integer >= 1$"):
        build_options(Sample, {"count": 0}, "")
    with pytest.raises(ConfigError, match=r"^invalid config value inner.depth='deep'"):
        build_options(Sample, {"inner": {"depth": "deep"}}, "")
    assert build_options(Sample, {"inner": {"label": "y"}}, "").inner == Inner(2, "y")


def test_a_given_mapping_replaces_a_dict_default_and_nested_dataclasses_merge():
    built = build_options(Sample, {"weights": {"c": 3}, "inner": {"label": "y"}, "ratio": 1}, "k")
    assert built == Sample(ratio=1.0, weights={"c": 3.0}, inner=Inner(depth=2, label="y"))
    assert build_options(Sample, None, "k") == Sample()
    assert build_options(Sample, built, "k") is built  # already built: passed through


def test_an_options_class_omegaconf_cannot_hold_is_the_plugins_error():
    @dataclass
    class Broken:
        records: tuple[str, ...] | list[str] = ("a",)

    with pytest.raises(PluginError, match=r"Broken \(the options of env.x\) is not a valid options dataclass"):
        build_options(Broken, {}, "env.x")


@dataclass
class ScaleOptions:
    factor: float = 2.0


class ScaledReward(Reward):
    """A reward as a third party writes it: typed options, run-time objects from the runtime."""

    name = "scaled"
    options_class = ScaleOptions

    def __call__(self, prompts, completions, **kwargs):
        return [self.options.factor * len(self.runtime.tasks) for _ in completions]


class _Hooks:
    @hookimpl
    def edgesmith_rewards(self):
        return {"scaled": ScaledReward}


def test_the_manager_builds_with_validated_options_and_separate_runtime():
    manager = PluginManager(load_entry_points=False)
    manager.register(_Hooks(), name="test-rewards")
    runtime = RewardRuntime(tasks={"t": ("env", None)})
    reward = manager.build_ref("reward", {"name": "scaled", "weight": 0.5, "options": {"factor": 3}},
                               "rl.rewards[2]", runtime=runtime)
    assert reward.options == ScaleOptions(3.0) and reward.runtime is runtime
    assert reward(prompts=["p"], completions=["c"]) == [3.0]
    with pytest.raises(ConfigError, match=r"rl.rewards\[2\].options.facter=3: accepted options of "
                                          r"rl.rewards\[2\].options: factor$"):
        manager.build_ref("reward", PluginRef("scaled", 1.0, {"facter": 3}), "rl.rewards[2]", runtime=runtime)
    with pytest.raises(PluginError, match=r"unknown reward 'scaler' \(config key rl.rewards\[0\].name\); "
                                          r"registered rewards: scaled"):
        manager.check_refs("reward", ["scaler"], "rl.rewards")
    with pytest.raises(ConfigError, match=r"rl.rewards=\[\]: accepted a non-empty list of rewards from: scaled"):
        manager.check_refs("reward", [], "rl.rewards")


def test_every_registered_plugin_declares_options_the_contract_can_build():
    """Operators, stages, environments, judges, rewards, profilers, proxies, formats, benchmarks
    and commands: all built through the same options contract."""
    manager = get_plugin_manager()
    for kind in KINDS:
        for reg in manager.registry(kind).values():
            options_class = reg.implementation.options_class
            with pytest.raises(ConfigError, match=r"k.no_such_option=1: accepted options of k: "):
                build_options(options_class, {"no_such_option": 1}, "k")
    # the search command's options are the `search` group's section, as the search stage's
    search_command, search_stage = manager.get("command", "search"), manager.get("stage", "search")
    assert search_command.options_class is search_stage.options_class is SearchConfig
    assert search_command.options_group == search_stage.options_group == "search"


def test_a_commands_group_options_name_the_full_key_and_the_top_level_accepts_only_the_group():
    cfg = {"seed": 0, "run_name": "r", "search": {"n_trials": 2}}
    options, _ = command_options(cfg, SearchConfig, "search", group="search")
    assert options.n_trials == 2 and options.sampler == SearchConfig().sampler
    with pytest.raises(ConfigError, match=r"^invalid config value search.n_trails=2: accepted options of search: "
                                          r"choose, constraints, "):
        command_options({"search": {"n_trails": 2}}, SearchConfig, "search", group="search")
    with pytest.raises(ConfigError, match=r"^invalid config value search.n_trials='x': accepted a value of the "
                                          r"declared type"):
        command_options({"search": {"n_trials": "x"}}, SearchConfig, "search", group="search")
    with pytest.raises(ConfigError, match=r"^invalid config value n_trials=2: accepted options of search: search$"):
        command_options({"search": {}, "n_trials": 2}, SearchConfig, "search", group="search")


def test_section_defaults_are_the_dataclass_values_without_mappings_or_skipped_keys():
    assert section_defaults(Sample) == {"count": 1, "ratio": 0.5, "flag": False, "inner": {"depth": 2, "label": "x"}}
    assert section_defaults(Sample, skip=("count", "inner")) == {"ratio": 0.5, "flag": False}

    @dataclass
    class Required:
        count: int

    assert section_defaults(Required) is None
