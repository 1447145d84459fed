"""Plugin discovery through real entry-point metadata, duplicates, unknown names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgesmith.core.errors import PluginError
from edgesmith.core.hookspecs import hookimpl
from edgesmith.core.plugin_manager import PluginManager

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_SRC = REPO / "examples" / "edgesmith_example_plugin" / "src"


def write_dist_info(root: Path, dist: str, entry_points: dict[str, str]) -> Path:
    """A minimal installed-distribution record, as pip would leave it in site-packages."""
    info = root / f"{dist.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1.0\n")
    lines = ["[edgesmith]"] + [f"{name} = {target}" for name, target in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return root


def test_builtin_plugins_come_from_entry_points():
    manager = PluginManager()
    providers = set(manager._providers.values())
    assert any(p.startswith("edgesmith (edgesmith.plugins.operators)") for p in providers)
    assert "edgesmith:stages" in manager._providers


def test_third_party_plugin_discovered_through_entry_point_metadata(tmp_path, monkeypatch):
    write_dist_info(tmp_path, "edgesmith-example-plugin", {"example": "edgesmith_example_plugin.hooks"})
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager()
    op = manager.registry("operator")["causal_mean"]
    env = manager.registry("environment")["echo"]
    assert op.provider == "edgesmith-example-plugin (edgesmith_example_plugin.hooks)"
    assert env.implementation.__name__ == "EchoEnvironment"


def test_third_party_plugin_options_get_the_same_contract(tmp_path, monkeypatch):
    from edgesmith.core.configuration import EdgeConfig
    from edgesmith.core.errors import ConfigError

    write_dist_info(tmp_path, "edgesmith-example-plugin", {"example": "edgesmith_example_plugin.hooks"})
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = PluginManager()
    env = manager.build("environment", "echo", {"vocabulary": ["ping", "pong"]}, key="eval.env_options.echo",
                        seed=1, difficulty=3)
    assert {w for t in env.tasks("train", 5) for w in t.reference.split()} <= {"ping", "pong"}
    with pytest.raises(ConfigError, match=r"eval.env_options.echo.vocabluary=\['ping'\]: accepted options of "
                                          r"eval.env_options.echo: vocabulary$"):
        manager.build("environment", "echo", {"vocabluary": ["ping"]}, key="eval.env_options.echo")
    with pytest.raises(ConfigError, match=r"eval.env_options.echo.vocabulary='ping'"):
        manager.build("environment", "echo", {"vocabulary": "ping"}, key="eval.env_options.echo")
    # the package's own value check gets the full key too
    with pytest.raises(ConfigError, match=r"eval.env_options.echo.vocabulary=\['ping'\]: accepted at least two"):
        manager.build("environment", "echo", {"vocabulary": ["ping"]}, key="eval.env_options.echo")
    with pytest.raises(ConfigError, match=r"model.layers\[1\].gat=False: accepted options of model.layers\[1\]: "
                                          r"gate$"):
        EdgeConfig(layers=[{"op": "gqa"}, {"op": "causal_mean", "gat": False}]).resolve_operators(manager)
    with pytest.raises(ConfigError, match=r"model.layers\[1\].gate='no': accepted true or false"):
        EdgeConfig(layers=[{"op": "gqa"}, {"op": "causal_mean", "gate": "no"}]).resolve_operators(manager)


def test_example_plugin_listed_by_cli_when_installed(tmp_path):
    write_dist_info(tmp_path, "edgesmith-example-plugin", {"example": "edgesmith_example_plugin.hooks"})
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(EXAMPLE_SRC)]), COLUMNS="200")
    out = subprocess.run([sys.executable, "-m", "edgesmith.core.cli", "plugins"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [line for line in out.stdout.splitlines() if "causal_mean" in line or "echo" in line]
    assert len(rows) == 2 and all("edgesmith-example-plugin" in row for row in rows)


def test_duplicate_name_names_both_providers(tmp_path, monkeypatch):
    write_dist_info(tmp_path / "a", "edgesmith-example-plugin", {"example": "edgesmith_example_plugin.hooks"})
    monkeypatch.syspath_prepend(str(EXAMPLE_SRC))
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    manager = PluginManager()

    class Clash:
        @hookimpl
        def edgesmith_operators(self):
            return {"causal_mean": object}

    manager.register(Clash(), name="clash", provider="clash-package (clash.hooks)")
    with pytest.raises(PluginError) as err:
        manager.registry("operator")
    message = str(err.value)
    assert "operator 'causal_mean' is registered twice" in message
    assert "edgesmith-example-plugin (edgesmith_example_plugin.hooks)" in message
    assert "clash-package (clash.hooks)" in message


def test_unknown_name_lists_registered_names():
    manager = PluginManager(load_entry_points=False)

    class Ops:
        @hookimpl
        def edgesmith_operators(self):
            return {"alpha": object, "beta": object}

    manager.register(Ops(), name="ops")
    with pytest.raises(PluginError, match=r"unknown operator 'gamma' \(config key model.layers\[0\].op\); "
                                          r"registered operators: alpha, beta"):
        manager.get("operator", "gamma", key="model.layers[0].op")


def test_broken_plugin_names_its_distribution(tmp_path, monkeypatch):
    write_dist_info(tmp_path, "broken-plugin", {"broken": "no_such_module_xyz"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="from distribution 'broken-plugin'"):
        PluginManager()


def test_hook_returning_non_mapping_is_rejected():
    manager = PluginManager(load_entry_points=False)

    class Bad:
        @hookimpl
        def edgesmith_judges(self):
            return ["not", "a", "mapping"]

    manager.register(Bad(), name="bad")
    with pytest.raises(PluginError, match="accepted: a mapping of names to implementations"):
        manager.registry("judge")
