"""Hostile code against the python sandbox: one test per attack class, each checking nothing escaped.

Every attack runs through a separate *caller* process (the way a pipeline calls
``run_python``), so a caller that is killed or frozen shows up as a failed or hung call
instead of taking pytest down. After each attack :func:`attack` checks that the caller
answered in time, that no process of the run is left on the host (every attack re-execs
itself with a unique token in its command line, so its processes can be recognised from
outside), that the host secrets are absent from what the code printed, and that nothing
appeared in the world-writable ``outside`` directory.

Targets are made reachable for the sandbox's host user on purpose (a world-writable
directory, world-readable secret files, a victim process of the sandbox's own host uid:
``nobody`` when the tests run as root), so that only the confinement stands between the
code and them. CI runs this file as root and as an unprivileged user (.ci/run).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

NOBODY = 65534
CALLER = r"""
import json, os, sys
from dataclasses import asdict
from edgesmith.plugins.sandbox import run_python
spec = json.loads(sys.stdin.read())
result = run_python(spec["code"].replace("CALLER_PID", str(os.getpid())), **spec["limits"])
print(json.dumps(asdict(result)))
"""


def _processes_with(token: str) -> list[str]:
    """Host processes whose command line holds ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except OSError:
                continue
            if token.encode() in cmdline:
                found.append(entry + ": " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def _host_leftovers() -> set[str]:
    """Sandbox directories the old implementation left on the host (temp dirs, cgroups)."""
    return {str(p) for pattern in ("edgesmith-sandbox-*",) for root in (Path(tempfile.gettempdir()),
            *Path("/sys/fs/cgroup").glob("*")) if root.is_dir() for p in root.glob(pattern)}


@pytest.fixture
def host(tmp_path):
    """Host-side targets: a world-writable directory, secrets, a victim process the sandbox's uid could signal."""
    token = uuid.uuid4().hex
    # not under /tmp: the sandbox has a private /tmp of its own, where the same path is legitimately writable
    outside = Path(tempfile.mkdtemp(prefix=f"edgesmith-attack-{token[:8]}-", dir="/var/tmp"))
    outside.chmod(0o1777)
    secret = f"edgesmith-secret-{uuid.uuid4().hex}"
    secret_files = [outside / "secret.txt"]
    home_secret = Path.home() / f".edgesmith-attack-secret-{token[:8]}"
    try:
        home_secret.write_text(secret)
        secret_files.append(home_secret)
    except OSError:
        pass  # a user without a writable home: the /tmp secret still counts
    secret_files[0].write_text(secret)
    for f in secret_files:
        f.chmod(0o644)
    victim_user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if os.geteuid() == 0 else {}
    victim = subprocess.Popen(["sleep", "600"], env={"EDGESMITH_SECRET": secret, "PATH": "/usr/bin:/bin"},
                              start_new_session=True, **victim_user)
    before = _host_leftovers()
    state = {"token": token, "outside": outside, "secret": secret, "secret_files": secret_files,
             "victim": victim, "expected": {p.name for p in outside.iterdir()}}
    try:
        yield state
        assert victim.poll() is None, "the victim process was killed"
        with open(f"/proc/{victim.pid}/stat") as f:
            assert f.read().rsplit(")", 1)[1].split()[0] != "T", "the victim process was stopped"
        assert {p.name for p in outside.iterdir()} == state["expected"], "something was created outside"
        assert _host_leftovers() <= before, "a temp dir or cgroup of the sandbox was left on the host"
    finally:
        victim.kill()
        victim.wait()
        shutil.rmtree(outside, ignore_errors=True)
        home_secret.unlink(missing_ok=True)


def attack(host: dict, code: str, caller_timeout: float | None = None, **limits) -> dict:
    """Runs ``code`` through a caller process; asserts the caller survived unfrozen and no process is left."""
    token = host["token"]
    preamble = (f"import os, sys\nif {token!r} not in sys.argv:\n"
                f"    os.execv(sys.executable, [sys.executable, '-I', '/tmp/main.py', {token!r}])\n")
    code = (preamble + code).replace("VICTIM_PID", str(host["victim"].pid)).replace("OUTSIDE", str(host["outside"]))
    env = dict(os.environ, EDGESMITH_SECRET=host["secret"], PYTHONDONTWRITEBYTECODE="1")
    limit = caller_timeout or limits.get("timeout_s", 10.0) + 30
    try:
        caller = subprocess.run([sys.executable, "-c", CALLER], input=json.dumps({"code": code, "limits": limits}),
                                capture_output=True, text=True, env=env, timeout=limit)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the caller did not answer within {limit} s: frozen or hung by the sandboxed code")
    assert caller.returncode == 0, f"the caller died or failed (rc {caller.returncode}): {caller.stderr[-2000:]}"
    result = json.loads(caller.stdout)
    for wait in (0, 0.2):  # the namespace is gone when run_python returns; and it stays gone
        time.sleep(wait)
        assert _processes_with(token) == [], "processes of the sandbox outlived the call"
    printed = result["stdout"] + result["stderr"]
    assert host["secret"] not in printed, "a host secret reached the sandboxed code"
    return result


def test_switching_off_the_old_audit_hook_then_running_a_shell_writes_nothing_outside(host):
    marker = host["outside"] / "shell-marker"
    code = f"""
import __main__, subprocess
try:
    __main__._busy[0] = True
    print("hook switched off")
except Exception as e:
    print("no hook to switch off:", type(e).__name__)
r = subprocess.run(["/bin/sh", "-c", "echo pwned > {marker}; echo pwned > /tmp/../{marker}; id -u"],
                   capture_output=True, text=True)
print("shell ran:", r.returncode, r.stdout.strip(), r.stderr.strip())
"""
    result = attack(host, code, max_processes=4)
    assert "shell ran" in result["stdout"]  # the shell itself runs, confined
    assert not marker.exists()


def test_writes_outside_the_sandbox_fail(host):
    marker = host["outside"] / "marker"
    code = f"""
import os, shutil, sys
targets = [{str(marker)!r}, sys.prefix + "/marker", sys.base_prefix + "/marker", "/usr/marker",
           "/marker", "/etc/marker", "/dev/marker", "/dev/shm/marker", "/proc/marker", "/run/marker",
           "/sys/fs/cgroup/cgroup.procs", "/proc/sys/kernel/hostname"]
def through_a_link(path):
    link = "/tmp/link-" + os.urandom(8).hex()
    os.symlink(path, link)
    open(link, "w").write("x")
wrote = []
for path in targets:
    for attempt in (lambda: open(path, "w").write("x"),
                    lambda: os.close(os.open(path, os.O_WRONLY | os.O_CREAT)),
                    lambda: os.makedirs(os.path.dirname(path) + "/newdir", exist_ok=False),
                    lambda: shutil.copyfile("/tmp/main.py", path),
                    lambda: through_a_link(path)):
        try:
            attempt()
            wrote.append(path)
        except OSError:
            pass
print("wrote:", wrote)
"""
    result = attack(host, code)
    assert "wrote: []" in result["stdout"], result["stdout"]
    assert not marker.exists() and not Path(sys.prefix, "marker").exists() and not Path("/dev/shm/marker").exists()


def test_files_created_through_sqlite_sockets_fifos_and_links_stay_inside(host):
    out = host["outside"]
    code = f"""
import os, socket, sqlite3, sys
made = []
def attempt(name, fn):
    try:
        fn(); made.append(name)
    except Exception:
        pass
for base in ({str(out)!r}, sys.prefix, "/"):
    attempt("sqlite " + base, lambda: sqlite3.connect(base + "/marker.db").execute("create table t (x)"))
    attempt("unix bind " + base, lambda: socket.socket(socket.AF_UNIX).bind(base + "/marker.sock"))
    attempt("mkfifo " + base, lambda: os.mkfifo(base + "/marker.fifo"))
    attempt("mknod " + base, lambda: os.mknod(base + "/marker.node"))
    attempt("link " + base, lambda: os.link("/tmp/main.py", base + "/marker.link"))
print("made:", made)
"""
    result = attack(host, code)
    assert "made: []" in result["stdout"], result["stdout"]
    for name in ("marker.db", "marker.sock", "marker.fifo", "marker.node", "marker.link"):
        assert not (out / name).exists() and not Path(sys.prefix, name).exists()


def test_unix_sockets_of_the_host_are_unreachable(host):
    path = host["outside"] / "host.sock"
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(path))
    path.chmod(0o777)
    abstract = socket.socket(socket.AF_UNIX)
    abstract_name = f"\0edgesmith-attack-{host['token']}"
    abstract.bind(abstract_name)
    host["expected"].add("host.sock")
    for s in (listener, abstract):
        s.listen(8)
        s.setblocking(False)
    code = f"""
import socket
for address in ({str(path)!r}, {abstract_name!r}, "/proc/CALLER_PID/root{path}", "/run/systemd/private",
                "/var/run/docker.sock", "/run/dbus/system_bus_socket"):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(1)
    try:
        s.connect(address)
        s.sendall(b"leak")
        print("CONNECTED", repr(address))
    except OSError as e:
        print("refused", repr(address), e.errno)
"""
    try:
        result = attack(host, code)
        for s in (listener, abstract):  # a connection, even closed since, would wait in the backlog
            with pytest.raises(BlockingIOError):
                s.accept()
    finally:
        listener.close()
        abstract.close()
    assert "CONNECTED" not in result["stdout"] and result["stdout"].count("refused") == 6


def _host_addresses() -> list[str]:
    addresses = {"127.0.0.1", "127.0.1.1"}
    try:
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.connect(("192.0.2.1", 9))  # UDP connect sends nothing; it picks the outgoing address
        addresses.add(probe.getsockname()[0])
        probe.close()
    except OSError:
        pass
    try:
        addresses |= {a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    except OSError:
        pass
    return sorted(addresses)


def test_network_to_a_listening_localhost_port_is_unreachable(host):
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("0.0.0.0", 0))
    tcp.listen(8)
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("0.0.0.0", 0))
    udp.setblocking(False)
    port, uport = tcp.getsockname()[1], udp.getsockname()[1]
    code = f"""
import socket
for address in {_host_addresses()!r} + ["localhost"]:
    try:
        s = socket.create_connection((address, {port}), timeout=2)
        s.sendall(b"leak")
        print("CONNECTED", address)
    except OSError as e:
        print("refused", address, e.errno)
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"leak", (address, {uport}))
    except OSError:
        pass
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    print("CONNECTED internet")
except OSError as e:
    print("refused internet", e.errno)
"""
    try:
        result = attack(host, code, timeout_s=30)
        with pytest.raises(BlockingIOError):
            tcp.accept()
        with pytest.raises(BlockingIOError):
            udp.recvfrom(16)
    finally:
        tcp.close()
        udp.close()
    assert "CONNECTED" not in result["stdout"] and "refused internet" in result["stdout"]


def test_the_callers_environment_and_other_processes_are_invisible(host):
    code = """
import os
print("environ:", dict(os.environ))
print("pids:", sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
for pid in ["CALLER_PID", "VICTIM_PID", str(os.getppid()), "1", "self"] + [p for p in os.listdir("/proc") if p.isdigit()]:
    for name in ("environ", "cmdline"):
        try:
            print(pid, name, open(f"/proc/{pid}/{name}", "rb").read())
        except OSError as e:
            print(pid, name, "unreadable", e.errno)
"""
    result = attack(host, code)
    visible = json.loads(result["stdout"].split("pids: ")[1].split("\n")[0])
    assert len(visible) <= 3, f"the sandbox sees more than its own processes: {visible}"
    assert "EDGESMITH_SECRET" not in result["stdout"]


def test_host_secret_files_are_not_readable(host):
    paths = [str(p) for p in host["secret_files"]]
    code = f"""
import os, sys
skip = ("/proc", "/usr", "/dev", "/sys", sys.prefix, sys.base_prefix)
for path in {paths!r} + ["/etc/shadow", "/root/.bash_history", "/proc/CALLER_PID/root{paths[0]}"]:
    try:
        print(path, open(path).read())
    except OSError as e:
        print("unreadable", path, e.errno)
seen = 0
for top, dirs, files in os.walk("/"):
    dirs[:] = [d for d in dirs if not os.path.join(top, d).startswith(skip)]
    for name in files:
        try:
            text = open(os.path.join(top, name), errors="replace").read(1_000_000)
            seen += 1
        except OSError:
            continue
        if "edgesmith-" + "secret-" in text:  # split: this file (main.py) must not match itself
            print("FOUND", os.path.join(top, name), text)
print("files read:", seen)
"""
    result = attack(host, code)
    unreadable = [line for line in result["stdout"].splitlines() if line.startswith("unreadable ")]
    assert len(unreadable) == len(paths) + 3 and "files read:" in result["stdout"], result["stdout"]
    assert "FOUND" not in result["stdout"]


def test_signals_cannot_kill_the_caller_or_other_processes(host):
    code = """
import os, signal
for pid in (CALLER_PID, VICTIM_PID, os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL)
        print("sent", pid)
    except OSError as e:
        print("refused", pid, e.errno)
print("still here")
"""
    result = attack(host, code)
    assert "still here" in result["stdout"]


def test_sigstop_cannot_freeze_the_caller_or_its_watchdog(host):
    code = """
import os, signal, time
for pid in (CALLER_PID, VICTIM_PID, os.getppid(), 1):
    for sig in (signal.SIGSTOP, signal.SIGTSTP):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
print("sent", flush=True)
os.kill(os.getpid(), signal.SIGSTOP)  # freeze the code itself: the watchdog is not frozen with it
"""
    result = attack(host, code, timeout_s=2, caller_timeout=20)
    assert "sent" in result["stdout"] and result["killed_reason"] == "timeout"
    assert result["duration_s"] < 10


def test_a_setsid_daemon_does_not_outlive_the_call(host):
    token = host["token"]
    code = f"""
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        for cgroup in ("/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/pids/cgroup.procs", "/sys/fs/cgroup/unified/cgroup.procs"):
            try:
                open(cgroup, "w").write(str(os.getpid()))
                print("MOVED to the root cgroup", flush=True)
            except OSError:
                pass
        os.execv("/bin/sleep", ["{token}-daemon", "60"])
    os._exit(0)
time.sleep(0.5)
def cmdline(pid):
    try:
        return open(f"/proc/{{pid}}/cmdline", "rb").read()
    except OSError:
        return b""
running = [p for p in os.listdir("/proc") if p.isdigit() and b"{token}-daemon" in cmdline(p)]
print("daemon running" if running else "no daemon")
"""
    result = attack(host, code, max_processes=4)
    assert result["exit_code"] == 0 and "daemon running" in result["stdout"], result
    assert "MOVED" not in result["stdout"] and result["duration_s"] < 5


def test_the_sandbox_dies_with_its_caller(host):
    token = host["token"]
    code = (f"import os, sys\nif {token!r} not in sys.argv:\n"
            f"    os.execv(sys.executable, [sys.executable, '-I', '/tmp/main.py', {token!r}])\n"
            "import time\ntime.sleep(60)\n")
    caller = subprocess.Popen([sys.executable, "-c", CALLER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, text=True)
    caller.stdin.write(json.dumps({"code": code, "limits": {"timeout_s": 60, "cpu_s": 60}}))
    caller.stdin.close()
    try:
        deadline = time.monotonic() + 20
        while not _processes_with(token):
            assert time.monotonic() < deadline, "the sandboxed code never started"
            time.sleep(0.05)
        caller.kill()
        caller.wait()
        deadline = time.monotonic() + 5
        while _processes_with(token):
            assert time.monotonic() < deadline, f"the sandbox outlived its caller: {_processes_with(token)}"
            time.sleep(0.05)
    finally:
        caller.kill()


def test_ctypes_raw_syscalls_do_not_escape(host):
    marker = host["outside"] / "ctypes-marker"
    code = f"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def show(name, value):
    print(name, value, ctypes.get_errno())
show("unshare_user", libc.unshare(0x10000000))
show("unshare_net", libc.unshare(0x40000000))
show("unshare_mount", libc.unshare(0x00020000))
show("mount", libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
show("umount_proc", libc.umount2(b"/proc", 2))
show("chroot", libc.chroot(b"/tmp"))
show("setuid0", libc.setuid(0))
show("ptrace", libc.ptrace(16, CALLER_PID, None, None))
show("kill", libc.kill(VICTIM_PID, 9))
show("open_outside", libc.open({str(marker).encode()!r}, 0o101, 0o644))
show("sethostname", libc.sethostname(b"pwned", 5))
"""
    result = attack(host, code)
    lines = dict(line.split(" ", 1) for line in result["stdout"].splitlines())
    assert len(lines) == 11, result
    assert all(value.startswith("-1 ") for value in lines.values()), lines  # every call refused
    assert not marker.exists()


def test_privileges_and_limits_cannot_be_raised(host):
    code = """
import os, resource
for kind in (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE):
    try:
        resource.setrlimit(kind, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        print("RAISED", kind)
    except (ValueError, OSError):
        print("kept", kind)
for name, call in (("setuid", lambda: os.setuid(0)), ("setgid", lambda: os.setgid(0)),
                   ("setgroups", lambda: os.setgroups([0]))):
    try:
        call()
        print("BECAME", name)
    except OSError:
        print("refused", name)
print("uid", os.getuid(), "caps", [l for l in open("/proc/self/status") if l.startswith("CapEff")])
"""
    result = attack(host, code)
    assert "RAISED" not in result["stdout"] and "BECAME" not in result["stdout"], result["stdout"]
    assert "CapEff:\\t0000000000000000" in result["stdout"]


def test_no_descriptor_of_the_caller_is_inherited(host):
    code = """
import os
open_fds = []
for fd in range(3, 4096):
    try:
        os.fstat(fd)
        open_fds.append((fd, os.readlink(f"/proc/self/fd/{fd}")))
    except OSError:
        pass
print("open:", open_fds)
"""
    result = attack(host, code)
    assert "open: []" in result["stdout"], result["stdout"]


def test_infinite_loops_are_stopped_by_wall_clock_and_cpu_limits(host):
    by_wall = attack(host, "while True:\n    pass", timeout_s=1.0, cpu_s=30)
    assert by_wall["timed_out"] and by_wall["killed_reason"] == "timeout" and by_wall["duration_s"] < 10
    by_cpu = attack(host, "while True:\n    pass", timeout_s=30, cpu_s=1)
    assert by_cpu["killed_reason"] == "cpu" and not by_cpu["timed_out"] and by_cpu["duration_s"] < 10


@pytest.mark.parametrize("max_processes", [1, 4])
def test_fork_bomb_is_capped(host, max_processes):
    code = """
import os
forks = 0
while True:
    try:
        os.fork()
        forks += 1
    except OSError:
        pass
"""
    result = attack(host, code, timeout_s=5, max_processes=max_processes)
    assert result["killed_reason"] in ("processes", "timeout") and result["duration_s"] < 15


def test_memory_hog_is_stopped(host):
    result = attack(host, "blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))", memory_mb=200)
    assert result["killed_reason"] == "memory" and "MemoryError" in result["stderr"]


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_huge_output_is_capped(host, stream):
    result = attack(host, f"import sys\nwhile True:\n    sys.{stream}.write('x' * 100000)", max_output_bytes=5000)
    assert result["killed_reason"] == "output" and result[f"{stream}_truncated"]
    assert len(result[stream]) == 5000


def test_disk_quota_bounds_the_total_written(host):
    code = """
try:
    open("/tmp/big", "wb").write(b"x" * 20 * 1_048_576)
except OSError as e:
    print("big file:", e.strerror)
import os
os.remove("/tmp/big")
written = 0
for i in range(20):
    try:
        with open(f"/tmp/fill-{i}", "wb") as f:
            for _ in range(15):
                f.write(b"x" * 1_048_576)
                f.flush()
                written += 1_048_576
    except OSError as e:
        print("stopped:", e.strerror)
print("written", written)
"""
    result = attack(host, code, disk_mb=32, max_file_mb=16)
    written = int(result["stdout"].split("written ")[1])
    assert written <= 32 * 1_048_576, f"wrote {written} bytes with a 32 MB quota"
    assert "No space left on device" in result["stdout"] and "big file: File too large" in result["stdout"]
