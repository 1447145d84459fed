"""`edgesmith` under a multi-process launch, with the test environments and a record of what
each non-main process writes (tests/test_distributed_stages.py).

Run as ``accelerate launch ... tests/launch_audited.py run [overrides]``. Every non-main
process marks what it creates, whatever writes it (Python, torch's C++ writer, safetensors'
Rust): as root it runs with effective group ``$EDGESMITH_AUDIT_GID`` (files it creates get that group),
otherwise with umask 027 instead of the main process's 022 (this misses files created with an
explicit mode such as safetensors' 0600). Python-level writes of non-main processes (open for
writing, rename, remove) under ``EDGESMITH_AUDIT_DIR`` are also appended to
``$EDGESMITH_AUDIT_LOG.<rank>``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

RANK = int(os.environ.get("RANK", "0"))
WATCHED = os.path.realpath(os.environ["EDGESMITH_AUDIT_DIR"])
LOG = f"{os.environ['EDGESMITH_AUDIT_LOG']}.{RANK}"
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def _watched(path) -> str | None:
    if isinstance(path, int) or path is None:
        return None
    try:
        real = os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return None
    return real if real == WATCHED or real.startswith(WATCHED + os.sep) else None


def _audit(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS)
        found = _watched(path) if writes else None
    elif event in ("os.rename", "os.remove", "shutil.rmtree"):
        found = _watched(args[0])
    else:
        return
    if found:
        with open(LOG, "a") as f:  # outside the watched directory
            f.write(f"{event} {found}\n")


os.umask(0o022 if RANK == 0 else 0o027)
if RANK != 0:
    if os.geteuid() == 0:
        os.setegid(int(os.environ["EDGESMITH_AUDIT_GID"]))
    sys.addaudithook(_audit)

from edgesmith.core.cli import main  # noqa: E402
from edgesmith.core.plugin_manager import get_plugin_manager  # noqa: E402
from stages_support import PLUGINS  # noqa: E402

get_plugin_manager().register(PLUGINS, name="tests:h7", provider="edgesmith tests (stages_support)")
sys.exit(main(sys.argv[1:]))
