"""Built-in pipeline stages, one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_stages():
    from .dpo import DPOStage
    from .eval import EvalStage
    from .pretrain import PretrainStage
    from .report import ReportStage
    from .rl import RLStage
    from .search import SearchStage
    from .sft import SFTStage

    return {"pretrain": PretrainStage, "sft": SFTStage, "dpo": DPOStage, "rl": RLStage, "search": SearchStage,
            "eval": EvalStage, "report": ReportStage}
