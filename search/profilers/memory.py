"""The measuring process's own peak memory: a resettable kernel high-water mark.

``ru_maxrss`` cannot be used: Linux carries it over fork and exec (the exec'ing task keeps
the larger of its old and new address space's peak), so a profile started from a 560 MB
search process reported ~560 MB whatever the candidate. ``VmHWM`` in ``/proc/self/status``
belongs to the current address space only, and writing ``5`` to ``/proc/self/clear_refs``
resets it to the current RSS (Linux >= 4.0). The measuring process resets it after importing
torch and edgesmith, so ``peak - baseline`` is what the candidate itself (weights,
activations, caches) added on top of the interpreter and its libraries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"


def _status_kib(field: str) -> int | None:
    try:
        with open(STATUS) as f:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def rss_mb() -> float:
    """The current resident set size in MiB (``VmRSS``; psutil where /proc is absent)."""
    kib = _status_kib("VmRSS")
    if kib is not None:
        return kib / 1024
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@dataclass
class PeakTracker:
    """Peak RSS from the moment of :meth:`start`: ``peak_mb() - baseline_mb`` is the work's own.

    ``method``: ``clear_refs`` (the high-water mark was reset at ``start``), or ``vmhwm``
    (reset refused, e.g. a kernel without it: the peak since exec, which may include the
    imports' transient memory, so it over-reports a little but never inherits a parent's).
    """

    baseline_mb: float = 0.0
    method: str = "clear_refs"

    def start(self) -> "PeakTracker":
        try:
            with open(CLEAR_REFS, "w") as f:
                f.write("5")
            self.method = "clear_refs"
        except OSError:
            self.method = "vmhwm"
        if _status_kib("VmHWM") is None:
            raise RuntimeError(f"{STATUS} has no VmHWM: peak memory cannot be measured on this system")
        self.baseline_mb = rss_mb()
        return self

    def peak_mb(self) -> float:
        """The high-water mark (MiB) of this process since :meth:`start`."""
        kib = _status_kib("VmHWM")
        if kib is None:
            raise RuntimeError(f"{STATUS} has no VmHWM: peak memory cannot be measured on this system")
        return kib / 1024
