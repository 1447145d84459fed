"""The llama_cpp farm command of examples/search_farm/README.md, composed as written.

Running it would profile LFM2-350M-size candidates (minutes each), so the test stops where
a worker would start measuring: the command's overrides compose, the search options
validate, and the profiler, proxy and space it names build.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from edgesmith.core.errors import ConfigError
from edgesmith.core.options import build_options
from edgesmith.core.plugin_manager import get_plugin_manager
from edgesmith.search.config import SearchConfig
from edgesmith.search.space import SearchSpace
from edgesmith.search.study import build_proxy

FARM_README = Path(__file__).resolve().parents[1] / "examples" / "search_farm" / "README.md"


def documented_llama_cpp_command() -> list[str]:
    """The arguments after `edgesmith` of the llama_cpp section's worker command."""
    section = FARM_README.read_text().split("## llama_cpp profiles on a farm", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    joined = re.sub(r"\\\n\s*", " ", block)
    command = next(line for line in joined.splitlines() if "edgesmith search" in line)
    words = shlex.split(command, comments=True)
    return words[next(i for i, w in enumerate(words) if w.endswith("edgesmith")) + 1:]


def test_the_documented_llama_cpp_worker_command_builds(tmp_path):
    args = documented_llama_cpp_command()
    assert args[0] == "search" and "search.profiler.name=llama_cpp" in args
    storage = next(a for a in args if a.startswith("search.storage="))
    overrides = [f"search.storage=sqlite:///{tmp_path}/farm.db" if a == storage else a for a in args[1:]]
    with initialize_config_module(config_module="edgesmith.conf", version_base=None):
        cfg = compose(config_name="search_job", overrides=overrides)
    options = build_options(SearchConfig, OmegaConf.select(cfg, "search"), key="search")
    plugins = get_plugin_manager()
    SearchSpace(options.space, plugins)
    profiler = plugins.build("profiler", options.profiler.name, options.profiler.options,
                             key="search.profiler.options", name_key="search.profiler.name")
    build_proxy(plugins, options.proxy, "search.proxy", {})
    assert options.proxy.name == "zero_cost" and set(options.space.operators) == {"short_conv", "gqa"}
    assert profiler.fingerprint()["quant"] == "q4_k_m"


def test_switching_a_plugin_without_its_options_says_how_to_drop_them():
    with initialize_config_module(config_module="edgesmith.conf", version_base=None):
        cfg = compose(config_name="search_job", overrides=["search=lfm2_350m", "search.proxy.name=zero_cost"])
    options = build_options(SearchConfig, OmegaConf.select(cfg, "search"), key="search")
    with pytest.raises(ConfigError, match=r"search\.proxy\.options\.\w+=.*options of another quality_proxy\? "
                                          r"After search\.proxy\.name=zero_cost .*'~search\.proxy\.options'"):
        build_proxy(get_plugin_manager(), options.proxy, "search.proxy", {})
