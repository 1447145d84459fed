"""Shared fixtures: a test-only stage plugin and a way to put it into the global registry."""

from __future__ import annotations

import pytest

from edgesmith.core import plugin_manager as pm_module


@pytest.fixture
def test_stages_registered():
    """Registers the test-only stages (tests/plugins_for_tests/stages.py) in the global manager."""
    from plugins_for_tests import stages

    manager = pm_module.get_plugin_manager()
    manager.register(stages, name="tests:stages", provider="edgesmith tests (plugins_for_tests.stages)")
    try:
        yield manager
    finally:
        manager.unregister("tests:stages")
