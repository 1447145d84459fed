"""Hook specifications: one per extension point.

Every hook returns a mapping ``name -> implementation``. The name is what users type in
configs (``model.layers[0].op=short_conv``, ``pipeline.stages=[sft,dpo]``). Built-in
plugins implement these hooks exactly as third-party packages do, and are found through
the ``edgesmith`` entry-point group.
"""

from __future__ import annotations

from collections.abc import Mapping

import pluggy

PROJECT = "edgesmith"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def edgesmith_operators() -> Mapping[str, type]:
    """Token mixers: subclasses of :class:`edgesmith.core.operator.TokenMixer`."""


@hookspec
def edgesmith_stages() -> Mapping[str, type]:
    """Pipeline stages: subclasses of :class:`edgesmith.core.stage.Stage`."""


@hookspec
def edgesmith_environments() -> Mapping[str, type]:
    """Task environments: subclasses of :class:`edgesmith.core.environment.Environment`."""


@hookspec
def edgesmith_judges() -> Mapping[str, type]:
    """Judges for a jury: subclasses of :class:`edgesmith.core.judge.Judge`."""


@hookspec
def edgesmith_rewards() -> Mapping[str, type]:
    """RL reward functions: subclasses of :class:`edgesmith.core.reward.Reward`."""


@hookspec
def edgesmith_profilers() -> Mapping[str, type]:
    """Hardware profilers: subclasses of :class:`edgesmith.core.profiler.Profiler`."""


@hookspec
def edgesmith_quality_proxies() -> Mapping[str, type]:
    """Search quality proxies: subclasses of :class:`edgesmith.core.profiler.QualityProxy`."""


@hookspec
def edgesmith_toolcall_formats() -> Mapping[str, type]:
    """Tool-call formats: subclasses of :class:`edgesmith.core.toolcall.ToolCallFormat`."""


@hookspec
def edgesmith_benchmarks() -> Mapping[str, object]:
    """Benchmarks for ``edgesmith bench bench=NAME``: :class:`edgesmith.core.command.Benchmark` objects."""


@hookspec
def edgesmith_commands() -> Mapping[str, object]:
    """Command words of the console script: :class:`edgesmith.core.command.Command` objects."""


#: kind name (as shown by ``edgesmith plugins``) -> hook name
KINDS: dict[str, str] = {
    "operator": "edgesmith_operators",
    "stage": "edgesmith_stages",
    "environment": "edgesmith_environments",
    "judge": "edgesmith_judges",
    "reward": "edgesmith_rewards",
    "profiler": "edgesmith_profilers",
    "quality_proxy": "edgesmith_quality_proxies",
    "toolcall_format": "edgesmith_toolcall_formats",
    "benchmark": "edgesmith_benchmarks",
    "command": "edgesmith_commands",
}
