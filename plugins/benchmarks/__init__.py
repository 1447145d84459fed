"""Built-in benchmarks for `edgesmith bench bench=NAME`."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_benchmarks():
    from .model_speed import run_model_speed
    from .kernels_speed import run_kernel_speed
    from .proxy_rank import run_proxy_rank
    from .search_profile import run_search_profile

    return {"model_speed": run_model_speed, "search": run_search_profile, "kernels": run_kernel_speed,
            "proxy": run_proxy_rank}
