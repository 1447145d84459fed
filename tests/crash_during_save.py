"""Runs a pipeline and SIGKILLs itself in the middle of writing ``checkpoint-<step>``.

Used by test_stages_crash_resume.py as a subprocess:
``python crash_during_save.py CONFIG.yaml RUN_DIR STEP {weights,optimizer}``.
The named file of the checkpoint is written, cut to half its length (what a kill during the
write leaves on disk), and the process kills itself with SIGKILL before the Trainer writes
the rest: no exception handler, ``finally`` or atexit runs, exactly as with an OOM kill.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _cut_and_die(path: str) -> None:
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)
    os.kill(os.getpid(), signal.SIGKILL)


def _in_target(path: str, step: int) -> bool:
    return Path(path).parent.name == f"checkpoint-{step}"


def install(step: int, where: str) -> None:
    import torch
    import transformers.modeling_utils as modeling_utils

    if where == "weights":
        real = modeling_utils.safe_save_file

        def save_file(tensors, filename, *args, **kwargs):
            real(tensors, filename, *args, **kwargs)
            if _in_target(str(filename), step):
                _cut_and_die(str(filename))

        modeling_utils.safe_save_file = save_file
    elif where == "optimizer":
        real_save = torch.save

        def save(obj, f, *args, **kwargs):
            real_save(obj, f, *args, **kwargs)
            if isinstance(f, (str, os.PathLike)) and Path(f).name == "optimizer.pt" and _in_target(str(f), step):
                _cut_and_die(str(f))

        torch.save = save
    else:
        raise SystemExit(f"unknown place to crash: {where!r} (accepted: weights, optimizer)")


def main() -> None:
    config, run_dir, step, where = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    import torch
    from omegaconf import OmegaConf

    torch.set_num_threads(1)
    install(step, where)
    from edgesmith.core.pipeline import run_pipeline
    from stages_support import registered_test_plugins

    with registered_test_plugins() as manager:
        run_pipeline(OmegaConf.load(config), run_dir, manager)
    raise SystemExit(f"the run finished without reaching checkpoint-{step}")


if __name__ == "__main__":
    main()
