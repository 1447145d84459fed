"""Doom-loop measurement: a detector for finished generations and a streaming guard."""

from .detector import LoopDetectorOptions, LoopVerdict, detect_loop

__all__ = ["LoopDetectorOptions", "LoopVerdict", "detect_loop", "LoopGuard"]


def __getattr__(name: str):
    # The guard needs torch/transformers; import it only when asked for.
    if name == "LoopGuard":
        from .guard import LoopGuard

        return LoopGuard
    raise AttributeError(name)
