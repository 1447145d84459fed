"""Starts bwrap for a *root* caller, as the unprivileged user ``nobody``.

Why: bwrap run by root maps the sandbox user to host root (uid 0). Root is exempt from
RLIMIT_NPROC (so a fork bomb would be capped by nothing but the watchdog) and owns every
root file the sandbox can see. Run as ``nobody`` (65534) instead, bwrap behaves exactly as
for any unprivileged caller: the code runs as host ``nobody`` in its own user namespace.

``nobody`` may not be able to reach the Python installation (pyenv under ``/root``, mode
0700). So, still as root, this launcher enters a private mount namespace (nothing it
mounts is visible to the host), mounts a small tmpfs on ``STAGE`` and bind-mounts each
Python root there; bwrap then binds them from ``STAGE/<i>`` back to their real paths
inside the sandbox. Then it drops to nobody (groups, gid, uid: every capability goes) and
execs bwrap in place, keeping its pid, descriptors and session.

Usage (by python_sandbox only): ``python -I -S root_launcher.py ROOT... -- BWRAP ARGS...``.
Standard library only; it runs single-threaded, so ctypes calls are safe here.
"""

import ctypes
import os
import sys

STAGE = "/tmp"  # an always-present directory, shadowed for this process and bwrap only
NOBODY = 65534
CLONE_NEWNS = 0x00020000
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18


def staged(index: int) -> str:
    """Where the ``index``-th root is reachable for nobody (inside the launcher's mount namespace)."""
    return f"{STAGE}/edgesmith-root-{index}"


def _fail(what: str) -> None:
    errno = ctypes.get_errno()
    sys.stderr.write(f"edgesmith sandbox launcher (root): {what} failed: {os.strerror(errno)}\n")
    sys.exit(1)


def main() -> None:
    split = sys.argv.index("--")
    roots, command = sys.argv[1:split], sys.argv[split + 1:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        _fail("unshare(CLONE_NEWNS)")
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:  # nothing propagates to the host
        _fail("making / private")
    # opened in the new namespace (a bind source must be a mount of it) and before STAGE is covered
    fds = [os.open(root, os.O_PATH | os.O_DIRECTORY) for root in roots]
    if libc.mount(b"tmpfs", STAGE.encode(), b"tmpfs", 0, b"size=64k,mode=0755") != 0:
        _fail(f"mounting a tmpfs on {STAGE}")
    for index, fd in enumerate(fds):
        os.mkdir(staged(index), 0o755)
        if libc.mount(f"/proc/self/fd/{fd}".encode(), staged(index).encode(), None, MS_BIND | MS_REC, None) != 0:
            _fail(f"binding {roots[index]}")
        os.close(fd)
    os.chdir("/")
    os.setgroups([])
    os.setresgid(NOBODY, NOBODY, NOBODY)
    os.setresuid(NOBODY, NOBODY, NOBODY)  # from uid 0 to all-nonzero ids: the kernel clears every capability
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
