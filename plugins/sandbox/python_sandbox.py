"""Runs untrusted (model-written) Python confined by the operating system, and always returns.

The boundary is the kernel, not the interpreter: each run is a fresh bubblewrap sandbox
(:mod:`.bwrap` lists what it isolates: user, PID, mount, network, IPC, UTS and cgroup
namespaces, a read-only system, a size-limited tmpfs as the only writable place). Inside,
:mod:`.sandbox_boot` sets hard rlimits before the code runs: CPU seconds, address space,
file size, open files, tasks (RLIMIT_NPROC, counted per user namespace, so it binds root
callers too), no core dumps.

The watchdog is this function's own loop in the caller, which the code cannot see, signal
or freeze (it is outside the sandbox's PID namespace). It enforces the wall-clock timeout,
the output cap and the process cap, and ends a run by SIGKILLing bwrap's pid 1 in the
sandbox: the kernel then kills every process left in the namespace, daemons included, and
the tmpfs disappears with it. ``--die-with-parent`` does the same if the caller dies.

Where the confinement cannot be had (no bwrap, user namespaces disabled), :func:`run_python`
raises :class:`SandboxUnavailable` naming what is missing; it never runs code unconfined.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import bwrap as confinement
from . import root_launcher
from .bwrap import SandboxUnavailable

THREAD_HEADROOM = 8  # RLIMIT_NPROC counts threads too; the watchdog holds processes to the cap
NOFILE = 64  # also bounds memory held in memfds (not in RLIMIT_AS): NOFILE x max_file_mb per process
LAUNCHER = Path(root_launcher.__file__)
POLL_S = 0.02


@dataclass
class SandboxResult:
    """What a sandboxed run did.

    ``killed_reason`` is None when the code exited by itself, else one of ``timeout`` (wall
    clock), ``cpu`` (CPU seconds), ``memory`` (address-space limit hit: MemoryError or a
    failed allocation), ``output`` (output cap), ``processes`` (process cap). A code killed
    by a signal has ``exit_code == -signal`` (bwrap reports it as 128 + signal).
    """

    stdout: str
    stderr: str
    exit_code: int | None
    timed_out: bool = False
    killed_reason: str | None = None
    duration_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    isolation: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_reason is None


class _Reader(threading.Thread):
    """Drains a pipe, keeping at most ``cap`` bytes; flags overflow."""

    def __init__(self, stream, cap: int):
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.data = bytearray()
        self.overflow = False

    def run(self) -> None:
        while True:
            chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
            if not chunk:
                break
            room = self.cap - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > max(room, 0):
                self.overflow = True


class _Init:
    """bwrap's pid 1 in the sandbox, learnt from ``--info-fd``; held as a pidfd (no pid reuse)."""

    def __init__(self, fd: int):
        self.fd, self.buffer = fd, b""
        self.pid: int | None = None
        self.pidfd: int | None = None
        os.set_blocking(fd, False)

    def poll(self) -> None:
        if self.pid is not None or self.fd < 0:
            return
        try:
            while chunk := os.read(self.fd, 4096):
                self.buffer += chunk
        except BlockingIOError:
            pass
        try:
            self.pid = int(json.loads(self.buffer)["child-pid"])
        except (ValueError, KeyError):
            return
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:  # already gone, and with it the whole namespace
            pass

    def kill(self) -> None:
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        for fd in (self.fd, self.pidfd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self.fd, self.pidfd = -1, None


def _descendants(pid: int) -> int:
    """How many processes descend from ``pid`` (the sandbox's processes, seen from outside)."""
    count, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    children = [int(c) for c in f.read().split()]
            except OSError:
                continue
            count += len(children)
            todo += children
    return count


def _stop(proc: subprocess.Popen, init: _Init) -> None:
    """Ends the run: SIGKILL pid 1 (the kernel then empties the namespace), bwrap as a fallback."""
    init.poll()
    init.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # --die-with-parent takes the sandbox along
        except OSError:
            pass
        proc.wait()


def _memfd(name: str, data: bytes) -> int:
    """An anonymous in-memory file holding ``data``: bwrap copies it in, nothing lands on the host's disk."""
    fd = os.memfd_create(name)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def check_sandbox() -> None:
    """Raises :class:`SandboxUnavailable` (naming what is missing) unless a confined run works here."""
    result = run_python("print('ok')", timeout_s=30)
    if result.stdout != "ok\n":
        raise SandboxUnavailable(f"the python sandbox started but a trivial run failed: {result}")


def run_python(code: str, timeout_s: float = 10.0, cpu_s: int = 5, memory_mb: int = 512,
               max_processes: int = 1, max_output_bytes: int = 65536, max_file_mb: int = 16,
               stdin: str = "", disk_mb: int = 64) -> SandboxResult:
    """Runs ``code`` in a fresh sandbox and returns what happened; never raises for the code's faults.

    ``max_processes`` counts the interpreter itself: 1 means the code may not keep any other
    process (one that appears is killed with the run, reason ``processes``). ``memory_mb``
    caps the address space of each process (Python itself needs ~30 MB); ``disk_mb`` is the
    size of the sandbox's only writable place (``/tmp``, the working directory, which also
    holds ``main.py``), ``max_file_mb`` the largest single file. Raises
    :class:`SandboxUnavailable` where the sandbox cannot be set up.
    """
    if (timeout_s <= 0 or cpu_s <= 0 or memory_mb < 32 or max_processes < 1 or max_output_bytes < 1
            or max_file_mb < 1 or disk_mb < 1):
        raise ValueError("run_python needs timeout_s > 0, cpu_s > 0, memory_mb >= 32, max_processes >= 1, "
                         "max_output_bytes >= 1, max_file_mb >= 1, disk_mb >= 1; got "
                         f"timeout_s={timeout_s}, cpu_s={cpu_s}, memory_mb={memory_mb}, "
                         f"max_processes={max_processes}, max_output_bytes={max_output_bytes}, "
                         f"max_file_mb={max_file_mb}, disk_mb={disk_mb}")
    bwrap = confinement.find_bwrap()
    # the tasks of the sandbox's user namespace: bwrap's pid 1, the processes, their threads
    max_tasks = 1 + max_processes + THREAD_HEADROOM
    argv = confinement.python_argv(cpu_s, memory_mb * 1024 * 1024, max_file_mb * 1024 * 1024, max_tasks, NOFILE)
    roots = confinement.python_roots()
    as_root = os.geteuid() == 0
    # root: bwrap runs as nobody through the launcher, which stages the roots where nobody reaches them
    mounts = [(root_launcher.staged(i) if as_root else root, root) for i, root in enumerate(roots)]
    code_fd = _memfd("edgesmith-sandbox-code", code.encode("utf-8"))
    boot_fd = _memfd("edgesmith-sandbox-boot", confinement.BOOT_SOURCE.read_bytes())
    info_r, info_w = os.pipe()
    cmd = confinement.command(bwrap, mounts, code_fd, boot_fd, info_w, disk_mb * 1024 * 1024, argv)
    if as_root:
        cmd = [sys.executable, "-I", "-S", str(LAUNCHER), *roots, "--", *cmd]
    started = time.monotonic()
    killed_reason: str | None = None
    timed_out = False
    try:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={}, cwd="/",
            start_new_session=True, pass_fds=(code_fd, boot_fd, info_w), close_fds=True,
        )
    except BaseException:
        os.close(info_r)
        raise
    finally:
        for fd in (code_fd, boot_fd, info_w):
            os.close(fd)
    init = _Init(info_r)
    try:
        readers = [_Reader(proc.stdout, max_output_bytes), _Reader(proc.stderr, max_output_bytes)]
        for r in readers:
            r.start()
        threading.Thread(target=_feed, args=(proc.stdin, stdin.encode()), daemon=True).start()
        next_count = 0.0
        while proc.poll() is None:
            init.poll()
            elapsed = time.monotonic() - started
            if elapsed > timeout_s:
                killed_reason, timed_out = "timeout", True
            elif any(r.overflow for r in readers):
                killed_reason = "output"
            elif init.pid is not None and elapsed >= next_count:
                next_count = elapsed + 0.1
                if _descendants(init.pid) > max_processes:
                    killed_reason = "processes"
            if killed_reason:
                break
            time.sleep(POLL_S)
        _stop(proc, init)
        for r in readers:
            r.join(timeout=2)
        init.poll()
        started_code = init.pid is not None
    finally:
        if proc.poll() is None:
            _stop(proc, init)
        init.close()
    stdout = bytes(readers[0].data).decode("utf-8", "replace")
    stderr = bytes(readers[1].data).decode("utf-8", "replace")
    if not started_code and killed_reason is None:
        raise confinement.start_failure(stderr)
    exit_code = proc.returncode
    if exit_code is not None and exit_code > 128:  # bwrap: 128 + the signal that killed the code
        exit_code = -(exit_code - 128)
    if killed_reason is None:
        if exit_code in (-signal.SIGXCPU, -signal.SIGKILL):
            # SIGXCPU at the soft CPU limit; SIGKILL at the hard one (the watchdog did not send it)
            killed_reason = "cpu"
        elif "MemoryError" in stderr or "Cannot allocate memory" in stderr:
            killed_reason = "memory"
        elif any(r.overflow for r in readers):
            killed_reason = "output"
    return SandboxResult(
        stdout=stdout, stderr=stderr, exit_code=exit_code, timed_out=timed_out,
        killed_reason=killed_reason, duration_s=time.monotonic() - started,
        stdout_truncated=readers[0].overflow, stderr_truncated=readers[1].overflow,
        isolation=_isolation(disk_mb, max_processes, as_root),
    )


def _feed(pipe, data: bytes) -> None:
    """Writes stdin in a thread: code that never reads it must not block the watchdog."""
    try:
        pipe.write(data)
        pipe.close()
    except OSError:
        pass


def _isolation(disk_mb: int, max_processes: int, as_root: bool) -> dict[str, str]:
    return {
        "confinement": "bubblewrap",
        "user": "nobody (65534) in its own user namespace; on the host: "
                + ("nobody (the caller is root)" if as_root else "the caller's uid"),
        "namespaces": "user,pid,mount,network,ipc,uts,cgroup",
        "network": "namespace (own loopback only)",
        "files": f"read-only system; tmpfs {disk_mb} MB at {confinement.WORKDIR} (only writable place); rlimit-fsize",
        "processes": f"rlimit-nproc+watchdog (max {max_processes})",
        "memory": "rlimit-as",
        "cpu": "rlimit-cpu",
        "watchdog": "caller (outside the sandbox's pid namespace)",
    }
