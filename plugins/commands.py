"""Built-in command words of the console script: search, eval, convert, bench."""

from edgesmith.core.hookspecs import hookimpl


def _convert(cfg, run_dir):
    # Imported on use so a broken module costs only its own command.
    from edgesmith.plugins.interop.convert import convert_command

    return convert_command(cfg, run_dir)


def _bench(cfg, run_dir):
    from edgesmith.plugins.benchmarks.command import bench_command

    return bench_command(cfg, run_dir)


def _search(cfg, run_dir):
    from edgesmith.plugins.stages.search import search_command

    return search_command(cfg, run_dir)


def _eval(cfg, run_dir):
    from edgesmith.plugins.evaluation.command import eval_command

    return eval_command(cfg, run_dir)


@hookimpl
def edgesmith_commands():
    from edgesmith.core.command import Command
    from edgesmith.plugins.benchmarks.command import BenchOptions
    from edgesmith.plugins.evaluation.options import EvalOptions
    from edgesmith.plugins.interop.convert import ConvertOptions
    from edgesmith.plugins.stages.search import SearchStage
    from edgesmith.search.config import SearchConfig

    return {
        "eval": Command("eval", "measure doom-loop rate, accuracy, length and speed per environment: "
                        "model_path=DIR envs=[toolcall,reasoning] n_prompts=50", _eval,
                        options_class=EvalOptions),
        "search": Command("search", "search an architecture on this device: search=PRESET (tiny, lfm2_350m); "
                          "same storage + study_name on several machines = one study", _search,
                          config_name="search_job", options_class=SearchConfig,
                          options_group=SearchStage.options_group),
        "convert": Command("convert", "convert an LFM2 checkpoint to edgesmith (to=edgesmith) "
                           "or back (to=lfm2): src=DIR dst=DIR", _convert, options_class=ConvertOptions),
        "bench": Command("bench", "run a registered benchmark: bench=NAME "
                         "(model_speed, ...); options in the section named like it", _bench,
                         options_class=BenchOptions),
    }
