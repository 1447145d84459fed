"""Built-in command words of the console script: search, eval, convert, bench."""

from edgesmith.core.hookspecs import hookimpl


def _convert(cfg, run_dir):
    # Imported on use so a broken module costs only its own command.
    from edgesmith.plugins.interop.convert import convert_command

    return convert_command(cfg, run_dir)


def _bench(cfg, run_dir):
    from edgesmith.plugins.benchmarks.command import bench_command

    return bench_command(cfg, run_dir)


@hookimpl
def edgesmith_commands():
    from edgesmith.core.command import Command

    return {
        "convert": Command("convert", "convert an LFM2 checkpoint to edgesmith (to=edgesmith) "
                           "or back (to=lfm2): src=DIR dst=DIR", _convert),
        "bench": Command("bench", "run a registered benchmark: bench=NAME "
                         "(model, ...); options in the section named like it", _bench),
    }
