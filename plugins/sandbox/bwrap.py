"""The confinement itself: a bubblewrap (``bwrap``) command line that isolates one run.

What the sandboxed process gets (everything else of the host is simply absent):

* its own **user** namespace, running as ``nobody`` (65534) with no capabilities, and no
  way to create further user namespaces (``--disable-userns``); works for root and for an
  unprivileged caller alike (unprivileged user namespaces must be enabled in the kernel);
* its own **PID** namespace: it sees only its own processes, so it cannot signal, freeze
  or read (``/proc/<pid>/environ``) the caller or anything else on the host; when bwrap's
  pid 1 dies the kernel kills every process left in the namespace;
* its own **network** namespace (a loopback of its own, nothing else) and **IPC**, **UTS**
  and **cgroup** namespaces; abstract AF_UNIX sockets are per network namespace, so host
  ones are unreachable too;
* its own **mount** namespace: a read-only root holding only ``/usr`` (with the usual
  ``/bin``, ``/lib*`` links), the Python installation(s) it runs, a fresh ``/proc`` of its
  PID namespace, a minimal read-only ``/dev``; the *only* writable place is a private
  tmpfs at ``/tmp`` whose size is the disk quota. No ``/home``, ``/root``, host ``/tmp``,
  ``/sys``, ``/run`` or ``/etc`` (except the dynamic-linker cache and the time zone);
* an empty environment apart from PATH, HOME, TMPDIR and LANG; its own session (no
  terminal to inject input into); and it is killed when the caller dies
  (``--die-with-parent``).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SANDBOX_UID = 65534  # nobody
WORKDIR = "/tmp"  # the only writable place, a size-limited tmpfs
BOOT_SOURCE = Path(__file__).with_name("sandbox_boot.py")
BOOT_INSIDE = "/run/edgesmith/sandbox_boot.py"
_SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
_ETC_FILES = ("/etc/ld.so.cache", "/etc/localtime")
MISSING_BWRAP = (
    "the python sandbox needs bubblewrap ('bwrap' on PATH) to confine model-written code "
    "(user, PID, mount and network namespaces); it was not found. Install it with "
    "'apt-get install bubblewrap' (scripts/setup.sh does so when run as root) or your "
    "distribution's 'bubblewrap' package. Refusing to run the code unconfined.")
USERNS_HINT = (
    "bubblewrap needs unprivileged user namespaces: check 'sysctl user.max_user_namespaces' "
    "(must be > 0), 'kernel.unprivileged_userns_clone' (Debian kernels: 1) and "
    "'kernel.apparmor_restrict_unprivileged_userns' (Ubuntu: 0), and that no container "
    "seccomp profile blocks clone/unshare")


class SandboxUnavailable(RuntimeError):
    """The confinement cannot be had here; the code was not run."""


def find_bwrap() -> str:
    """The bwrap executable on PATH, or :class:`SandboxUnavailable` saying how to get it."""
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(MISSING_BWRAP)
    return path


def start_failure(stderr: str) -> SandboxUnavailable:
    """The error for a sandbox that did not start the code (``stderr``: bwrap's or the launcher's)."""
    reason = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
    userns = any(w in stderr.lower() for w in ("namespace", "uid map", "permission denied", "not permitted"))
    return SandboxUnavailable(f"the python sandbox (bubblewrap) could not start: {reason}. "
                              + (USERNS_HINT + ". " if userns else "")
                              + "Refusing to run the code unconfined.")


def python_roots() -> list[str]:
    """Directories the interpreter needs (venv and base installation), minus those under /usr."""
    exe = Path(os.path.realpath(sys.executable))
    candidates = {sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix, str(exe.parent.parent)}
    roots = sorted({os.path.realpath(c) for c in candidates})
    kept: list[str] = []
    for root in roots:  # sorted: a parent comes before what it contains
        if root in ("/", "/usr") or root.startswith("/usr/"):
            continue
        if not any(root.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(root)
    return kept


def _system_mounts() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _SYSTEM_DIRS:  # merged-/usr systems have links, older ones directories
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for path in _ETC_FILES:
        args += ["--ro-bind-try", path, path]
    return args


def _python_mounts(roots: list[tuple[str, str]]) -> list[str]:
    # Bound after the tmpfs at WORKDIR: a checkout or venv under /tmp (CI clones there) stays
    # visible, read-only, on top of the private tmpfs instead of being hidden by it.
    return [arg for source, dest in roots for arg in ("--ro-bind", source, dest)]


def command(bwrap: str, roots: list[tuple[str, str]], code_fd: int, boot_fd: int, info_fd: int,
            disk_bytes: int, argv: list[str]) -> list[str]:
    """The bwrap command line running ``argv`` confined.

    ``roots`` are the Python directories as (where bwrap finds them, where they appear
    inside); the code is copied from ``code_fd`` to ./main.py, the boot wrapper from ``boot_fd``.
    """
    return [
        bwrap,
        "--unshare-all", "--unshare-user", "--disable-userns",  # user, pid, net, ipc, uts, cgroup, mount
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--cap-drop", "ALL",
        "--die-with-parent", "--new-session", "--hostname", "sandbox",
        "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME", WORKDIR,
        "--setenv", "TMPDIR", WORKDIR, "--setenv", "LANG", "C.UTF-8",
        *_system_mounts(),
        "--proc", "/proc",
        "--dev", "/dev", "--remount-ro", "/dev",  # bwrap's /dev is a writable tmpfs without a size: freeze it
        "--size", str(disk_bytes), "--perms", "1777", "--tmpfs", WORKDIR,
        *_python_mounts(roots),
        "--perms", "0444", "--file", str(code_fd), f"{WORKDIR}/main.py",
        "--perms", "0444", "--ro-bind-data", str(boot_fd), BOOT_INSIDE,
        "--remount-ro", "/",
        "--chdir", WORKDIR,
        "--info-fd", str(info_fd),
        "--", *argv,
    ]


def python_argv(cpu_s: int, memory_bytes: int, file_bytes: int, max_tasks: int, nofile: int) -> list[str]:
    """The interpreter command run inside: isolated mode (-I), the boot wrapper, the limits."""
    # the directory resolved (it is mounted at its real path), the file not: a venv's python
    # is a link, and Python finds the venv's pyvenv.cfg from the unresolved name
    exe = os.path.join(os.path.realpath(os.path.dirname(sys.executable)), os.path.basename(sys.executable))
    return [exe, "-I", BOOT_INSIDE, str(cpu_s), str(memory_bytes), str(file_bytes),
            str(max_tasks), str(nofile)]
