"""Built-in benchmarks for `edgesmith bench bench=NAME`."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_benchmarks():
    from edgesmith.core.command import Benchmark

    from .kernels_speed import KernelSpeedOptions, run_kernel_speed
    from .model_speed import ModelSpeedOptions, run_model_speed
    from .proxy_rank import ProxyRankOptions, run_proxy_rank
    from .search_profile import SearchProfileBenchOptions, run_search_profile
    from .train_speed import TrainSpeedOptions, run_train_speed

    return {"model_speed": Benchmark(run_model_speed, ModelSpeedOptions),
            "search": Benchmark(run_search_profile, SearchProfileBenchOptions),
            "kernels": Benchmark(run_kernel_speed, KernelSpeedOptions),
            "proxy": Benchmark(run_proxy_rank, ProxyRankOptions),
            "train_speed": Benchmark(run_train_speed, TrainSpeedOptions)}
