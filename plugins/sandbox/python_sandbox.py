"""Runs untrusted (model-written) Python in a subprocess with limits, and always returns.

Layers, each a backstop for the others:

* ``python -I`` (isolated: no user site, no PYTHON* variables, no script dir on sys.path)
  started through :mod:`sandbox_boot`, whose audit hook refuses network sockets, writes
  outside the working directory, process creation (unless ``max_processes > 1``) and ctypes;
* kernel rlimits set in the child before ``exec``: CPU seconds (RLIMIT_CPU), address space
  (RLIMIT_AS), file size (RLIMIT_FSIZE), open files, no core dumps; RLIMIT_NPROC too, but
  it does not bind for root, so for root the child is also put in a fresh *pids cgroup*
  (``pids.max = max_processes``) where the cgroup filesystem is writable;
* a fresh network namespace (``unshare(CLONE_NEWNET)``: only a down loopback) where the
  caller may create one (root), so even code that slips past the hook has no network;
* the child leads a new session; on exit, timeout or overflow the parent kills every
  process of that session and of the cgroup (SIGKILL), so nothing outlives the call;
* a watchdog thread enforces the wall-clock timeout, the output cap (the process is killed
  once stdout or stderr passes ``max_output_bytes``) and, where no cgroup is available, a
  process-count cap by scanning the session.

The working directory is a fresh temporary directory, removed afterwards. What was
enforced is reported in :attr:`SandboxResult.isolation`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

BOOT = Path(__file__).with_name("sandbox_boot.py")
CLONE_NEWNET = 0x40000000
THREAD_HEADROOM = 8
_CGROUP_ROOTS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_capabilities: dict[str, bool] = {}


@dataclass
class SandboxResult:
    """What a sandboxed run did.

    ``killed_reason`` is None when the code exited by itself, else one of ``timeout`` (wall
    clock), ``cpu`` (CPU seconds), ``memory`` (address-space limit hit: MemoryError or a
    failed allocation), ``output`` (output cap), ``processes`` (process cap).
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


def _can_unshare_net() -> bool:
    """Whether this process may create network namespaces (probed once in a throwaway child)."""
    if "netns" not in _capabilities:
        ok = False
        if hasattr(os, "fork"):
            pid = os.fork()
            if pid == 0:  # child: try, report through the exit code, never return
                os._exit(0 if _libc.unshare(CLONE_NEWNET) == 0 else 1)
            _, status = os.waitpid(pid, 0)
            ok = os.waitstatus_to_exitcode(status) == 0
        _capabilities["netns"] = ok
    return _capabilities["netns"]


def _make_cgroup(max_processes: int) -> Path | None:
    """A fresh pids cgroup limited to ``max_processes`` tasks, or None where none can be made."""
    for root in _CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists():
            continue
        if root == Path("/sys/fs/cgroup") and not (root / "cgroup.controllers").exists():
            continue  # a v1 tmpfs mount point, not a cgroup
        path = root / f"edgesmith-sandbox-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            path.mkdir()
            (path / "pids.max").write_text(str(max_processes))
            return path
        except OSError:
            try:
                path.rmdir()
            except OSError:
                pass
    return None


def _alive(pid: int) -> bool:
    """False for zombies (dead, waiting to be reaped) and vanished processes."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:stat.rfind(b")") + 3] not in (b"Z", b"X")


def _session_pids(sid: int) -> list[int]:
    """Live processes of session ``sid``."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pid = int(entry)
            try:
                if os.getsid(pid) == sid and _alive(pid):
                    pids.append(pid)
            except OSError:
                pass
    return pids


def _kill_all(leader: int, cgroup: Path | None) -> None:
    """SIGKILLs the session led by ``leader`` and everything in ``cgroup``, repeatedly until empty."""
    for _ in range(50):
        victims = set(_session_pids(leader))
        if cgroup is not None:
            try:
                victims |= {int(p) for p in (cgroup / "cgroup.procs").read_text().split() if _alive(int(p))}
            except OSError:
                pass
        victims.discard(os.getpid())
        if not victims:
            return
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)


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


def run_python(code: str, timeout_s: float = 10.0, cpu_s: int = 5, memory_mb: int = 512,
               max_processes: int = 1, max_output_bytes: int = 65536, max_file_mb: int = 16,
               stdin: str = "") -> SandboxResult:
    """Runs ``code`` in a fresh sandbox and returns what happened; never raises for the code's faults.

    ``max_processes`` counts the interpreter itself: 1 means the code may not start any
    process. ``memory_mb`` caps the address space (Python itself needs ~30 MB).
    """
    if timeout_s <= 0 or cpu_s <= 0 or memory_mb < 32 or max_processes < 1 or max_output_bytes < 1:
        raise ValueError("run_python needs timeout_s > 0, cpu_s > 0, memory_mb >= 32, "
                         f"max_processes >= 1, max_output_bytes >= 1; got timeout_s={timeout_s}, "
                         f"cpu_s={cpu_s}, memory_mb={memory_mb}, max_processes={max_processes}, "
                         f"max_output_bytes={max_output_bytes}")
    workdir = Path(tempfile.mkdtemp(prefix="edgesmith-sandbox-"))
    (workdir / "main.py").write_text(code, encoding="utf-8")
    is_root = os.geteuid() == 0
    netns = is_root and _can_unshare_net()
    # pids.max counts threads as well as processes: leave headroom for threads, the watchdog
    # holds processes to max_processes; the cgroup is the hard cap a fork bomb cannot outrun.
    cgroup = _make_cgroup(max_processes + THREAD_HEADROOM) if is_root else None
    layers = ["session-watchdog"]
    layers += ["pids-cgroup"] if cgroup else [] if is_root else ["rlimit-nproc"]
    layers += ["audit-hook"] if max_processes <= 1 else []
    isolation = {
        "network": "namespace+audit-hook" if netns else "audit-hook",
        "processes": "+".join(layers),
        "files": "audit-hook+rlimit-fsize",
        "memory": "rlimit-as",
        "cpu": "rlimit-cpu",
    }
    nproc_limit = max_processes
    if not is_root:  # RLIMIT_NPROC counts every process of the real user: allow the ones running
        try:
            import psutil

            uid = os.getuid()
            nproc_limit += sum(1 for p in psutil.process_iter(["uids"]) if p.info["uids"] and p.info["uids"].real == uid)
        except Exception:
            nproc_limit += 4096
    cgroup_procs = str(cgroup / "cgroup.procs") if cgroup else None
    memory_bytes = memory_mb * 1024 * 1024

    def preexec() -> None:  # runs in the child between fork and exec: no locks, no imports
        if cgroup_procs:  # raw fds: no io-module locks in the forked child
            fd = os.open(cgroup_procs, os.O_WRONLY)
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
        if netns:
            _libc.unshare(CLONE_NEWNET)
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc_limit, nproc_limit))

    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workdir), "TMPDIR": str(workdir),
           "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    started = time.monotonic()
    killed_reason: str | None = None
    timed_out = False
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", str(BOOT), str(workdir), str(max_processes)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=workdir,
            env=env, start_new_session=True, preexec_fn=preexec, close_fds=True,
        )
        readers = [_Reader(proc.stdout, max_output_bytes), _Reader(proc.stderr, max_output_bytes)]
        for r in readers:
            r.start()
        try:
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        except OSError:
            pass
        while True:
            if proc.poll() is not None:
                break
            elapsed = time.monotonic() - started
            if elapsed > timeout_s:
                killed_reason, timed_out = "timeout", True
            elif any(r.overflow for r in readers):
                killed_reason = "output"
            elif len(_session_pids(proc.pid)) > max_processes:
                killed_reason = "processes"
            if killed_reason:
                break
            time.sleep(0.02)
        _kill_all(proc.pid, cgroup)  # the leader may be gone, its children may not
        proc.wait()
        for r in readers:
            r.join(timeout=2)
    finally:
        if cgroup is not None:
            for _ in range(100):
                try:
                    cgroup.rmdir()
                    break
                except OSError:
                    _kill_all(-1, cgroup)
                    time.sleep(0.02)
        shutil.rmtree(workdir, ignore_errors=True)
    exit_code = proc.returncode
    stdout = bytes(readers[0].data).decode("utf-8", "replace")
    stderr = bytes(readers[1].data).decode("utf-8", "replace")
    if killed_reason is None:
        if exit_code in (-signal.SIGXCPU, -signal.SIGKILL):
            # SIGXCPU at the soft CPU limit; SIGKILL at the hard one (we did not send it)
            killed_reason = "cpu"
        elif "MemoryError" in stderr or "Cannot allocate memory" in stderr:
            killed_reason = "memory"
        elif any(r.overflow for r in readers):
            killed_reason = "output"
    return SandboxResult(
        stdout=stdout, stderr=stderr, exit_code=exit_code, timed_out=timed_out,
        killed_reason=killed_reason, duration_s=time.monotonic() - started,
        stdout_truncated=readers[0].overflow, stderr_truncated=readers[1].overflow,
        isolation=isolation,
    )
