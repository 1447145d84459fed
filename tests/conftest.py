"""Shared fixtures: a test-only stage plugin and a way to put it into the global registry."""

from __future__ import annotations

import os

import pytest
import torch

# Triton decides at decoration time whether a kernel is compiled or interpreted, so the
# interpreter must be on before any test module imports edgesmith's kernels. On a machine
# with a GPU the kernels compile as usual.
if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"

from edgesmith.core import plugin_manager as pm_module


@pytest.fixture
def one_thread():
    """Tiny shapes: extra threads only add contention on the shared CI cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
