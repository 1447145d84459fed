"""Built-in RL rewards, one module each."""

from edgesmith.core.hookspecs import hookimpl


@hookimpl
def edgesmith_rewards():
    from .progress import ProgressReward
    from .repetition import RepetitionReward
    from .toolcall_format import ToolCallFormatReward
    from .verifier import VerifierReward

    return {"verifier": VerifierReward, "repetition": RepetitionReward, "toolcall_format": ToolCallFormatReward,
            "progress": ProgressReward}
