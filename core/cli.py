"""The ``edgesmith`` console script: a command word, then Hydra overrides.

``edgesmith [run] [overrides]`` runs the pipeline; ``edgesmith plugins`` lists plugins;
other command words (search, eval, convert, bench, and any a plugin adds) come from the
``edgesmith_commands`` hook. Every Hydra command keeps standard Hydra behaviour:
``key=value``, ``+key=value``, ``--multirun``, ``--cfg job``, ``--help``, and a run
directory holding the composed config and the outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from . import distributed
from .command import BENCHMARK_CONFIG, Command, base_config, section_defaults
from .errors import EdgesmithError
from .plugin_manager import PluginManager, get_plugin_manager

BUILTIN_WORDS = ("run", "plugins")


def _run_command(cfg: Any, run_dir: Path) -> Any:
    from .pipeline import run_pipeline
    from .validation import validate_run_config

    plugins = get_plugin_manager()
    validate_run_config(cfg, plugins)
    return run_pipeline(cfg, run_dir, plugins)


RUN = Command("run", "run the pipeline of stages (the default command)", _run_command)


def plugins_table(plugins: PluginManager) -> Table:
    table = Table(title="edgesmith plugins")
    for column in ("kind", "name", "provided by"):
        table.add_column(column)
    for reg in plugins.all_registrations():
        table.add_row(reg.kind, reg.name, reg.provider)
    return table


def register_stage_schemas(plugins: PluginManager) -> None:
    """Stores every registered stage's options dataclass so ``<stage>.<key>=v`` overrides work,
    every command's options defaults as ``<command>_options``, and every benchmark's as
    ``benchmark_<name>`` (placed at the section ``<name>``)."""
    from hydra.core.config_store import ConfigStore

    import dataclasses

    from omegaconf import DictConfig, OmegaConf

    node = {}
    for name, reg in plugins.registry("stage").items():
        options_class = getattr(reg.implementation, "options_class", None)
        # A stage whose section is a config group's choice gets its values (and checks) there.
        if options_class is not None and getattr(reg.implementation, "options_group", None) is None:
            schema = OmegaConf.structured(options_class)
            if "seed" in {f.name for f in dataclasses.fields(options_class)}:
                schema.seed = "${seed}"  # the top-level seed is every stage's default (`sft.seed=N` still wins)
            node[name] = schema
    ConfigStore.instance().store(name="stage_options", node=node)
    for name, reg in plugins.registry("command").items():
        options_class = getattr(reg.implementation, "options_class", None)
        # A command whose options are a config group's choice (search) gets its values there.
        if options_class is not None and getattr(reg.implementation, "options_group", None) is None:
            # Plain values, not a typed schema: the command's YAML adds keys of its own (model_path)
            # beside these; build_options checks the types when the command starts. The seed is
            # conf/base.yaml's, at the same top level.
            defaults = OmegaConf.create({k: v for k, v in dataclasses.asdict(options_class()).items()
                                         if k != "seed"})
            ConfigStore.instance().store(name=f"{name}_options", node=defaults)
    # Each benchmark's defaults as its section (conf/bench.yaml lists the ones it fills), written
    # only in its options dataclass; keys conf/base.yaml sets there (kernels.backend) stay base's.
    base = base_config()
    for name, reg in plugins.registry("benchmark").items():
        section = OmegaConf.select(base, name, default=None)
        skip = tuple(section.keys()) if isinstance(section, DictConfig) else ()
        node = section_defaults(reg.implementation.options_class, skip=skip)
        if node is not None:
            ConfigStore.instance().store(name=BENCHMARK_CONFIG.format(name=name), node=node, package=name)


def apply_kernel_backend(cfg: Any) -> None:
    """Makes ``kernels.backend`` (auto | torch | triton) the process default before a command runs."""
    from omegaconf import OmegaConf

    from edgesmith.kernels.backend import set_default_backend

    backend = OmegaConf.select(cfg, "kernels.backend", default=None)
    if backend is not None:
        set_default_backend(backend)  # a bad value raises ConfigError naming the key


def _hydra_entry(command: Command, argv: list[str]) -> Any:
    import hydra
    from hydra.core.hydra_config import HydraConfig

    result: dict[str, Any] = {}

    def task(cfg: Any) -> None:
        run_dir = Path(HydraConfig.get().runtime.output_dir)
        try:
            apply_kernel_backend(cfg)
            result["value"] = command.function(cfg, run_dir)
        except EdgesmithError as exc:
            # Our errors already say what was wrong; a traceback would bury that.
            # escape: messages quote accepted values such as "[min, max]", which rich would eat as markup
            Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise SystemExit(1) from exc

    saved_argv = sys.argv
    sys.argv = [f"edgesmith {command.name}", *argv]
    try:
        hydra.main(version_base=None, config_path=command.config_path,
                   config_name=command.config_name or command.name)(task)()
    finally:
        sys.argv = saved_argv
    return result.get("value")


def distributed_overrides(argv: list[str]) -> list[str]:
    """Under ``accelerate launch`` / ``torchrun``: one run directory for every process, Hydra's files once.

    The default ``run_name`` is a timestamp, which processes started a second apart would
    compute differently: the main process's is used by all. Hydra writes the composed config
    (``.hydra/``) and a log file into the run directory; only the main process does.
    """
    import time

    distributed.setup()
    extra = []
    if not any(a.lstrip("+").startswith("run_name=") for a in argv):
        extra.append("run_name=" + distributed.from_main(time.strftime("%Y-%m-%d_%H-%M-%S")))
    if not distributed.is_main():
        extra += ["hydra.output_subdir=null", "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]
    return [*argv, *extra]


def usage(commands: dict[str, Command]) -> str:
    lines = ["usage: edgesmith [COMMAND] [hydra overrides...]", "", "commands:"]
    lines.append(f"  {'run':<10} {RUN.help}")
    for name, cmd in sorted(commands.items()):
        lines.append(f"  {name:<10} {cmd.help}")
    lines.append(f"  {'plugins':<10} list every registered plugin: kind, name, providing package")
    lines.append("")
    lines.append("`edgesmith COMMAND --help` shows the command's config groups and options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    console = Console(stderr=True)
    try:
        plugins = get_plugin_manager()
        commands = {name: reg.implementation for name, reg in plugins.registry("command").items()}
        if argv and argv[0] in ("-h", "--usage"):
            print(usage(commands))
            return 0
        word = argv[0] if argv and not argv[0].startswith("-") and "=" not in argv[0] else "run"
        rest = argv[1:] if argv and argv[0] == word else argv
        if word == "plugins":
            Console().print(plugins_table(plugins))
            return 0
        if word == "run":
            command = RUN
        elif word in commands:
            command = commands[word]
        else:
            accepted = ", ".join([*BUILTIN_WORDS, *sorted(commands)])
            console.print(f"[red]error:[/red] {escape(f'unknown command {word!r}; accepted: {accepted}')}", soft_wrap=True)
            return 2
        register_stage_schemas(plugins)
        if distributed.is_distributed():
            rest = distributed_overrides(rest)
        try:
            _hydra_entry(command, rest)
        except SystemExit as exc:  # Hydra exits on its own errors (unknown choice, bad override)
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    except EdgesmithError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
