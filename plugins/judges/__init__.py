"""Built-in judges for the DPO jury, one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_judges():
    from .length import LengthJudge
    from .llm import LLMJudge
    from .loop import LoopJudge
    from .verifier import VerifierJudge

    return {"verifier": VerifierJudge, "loop": LoopJudge, "length": LengthJudge, "llm": LLMJudge}
