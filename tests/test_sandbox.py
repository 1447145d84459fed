"""The python sandbox runs ordinary code, and refuses to run at all where it cannot confine it.

The attack classes (escapes, limits, signals, network, secrets) are in test_sandbox_attacks.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from edgesmith.plugins.sandbox import check_sandbox, run_python


def test_runs_ordinary_code_and_captures_output():
    result = run_python("import math\nprint(math.factorial(10))\nimport sys; print('warn', file=sys.stderr)")
    assert result.ok and result.stdout == "3628800\n" and result.stderr == "warn\n"
    assert result.killed_reason is None and not result.timed_out
    assert result.isolation["confinement"] == "bubblewrap" and "pid" in result.isolation["namespaces"]


def test_check_sandbox_passes_where_the_confinement_works():
    assert check_sandbox() is None


def test_code_may_write_in_its_private_working_directory_which_vanishes_with_the_run():
    name = f"notes-{uuid.uuid4().hex}.txt"
    result = run_python(f"open({name!r}, 'w').write('hi')\nimport os\nprint(open({name!r}).read(), os.getcwd())")
    assert result.ok and result.stdout == "hi /tmp\n"
    assert not os.path.exists(f"/tmp/{name}")  # the sandbox's /tmp is its own tmpfs, not the host's


def test_stdin_reaches_the_code():
    result = run_python("import sys\nprint(sys.stdin.read().upper())", stdin="hello")
    assert result.ok and result.stdout == "HELLO\n"


def test_threads_work_and_processes_run_when_allowed():
    threads = run_python("from concurrent.futures import ThreadPoolExecutor\n"
                         "print(sum(ThreadPoolExecutor(4).map(abs, [-1, -2, -3])))")
    assert threads.ok and threads.stdout == "6\n", threads
    child = run_python("import subprocess\n"
                       "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout)",
                       max_processes=3)
    assert child.ok and child.stdout.startswith("child"), child


def test_a_second_process_is_killed_when_not_allowed():
    result = run_python("import subprocess\nsubprocess.run(['sleep', '5'])\nprint('finished')", timeout_s=10)
    assert result.killed_reason == "processes" and "finished" not in result.stdout


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="timeout_s"):
        run_python("print(1)", timeout_s=0)
    with pytest.raises(ValueError, match="disk_mb"):
        run_python("print(1)", disk_mb=0)


def test_without_bubblewrap_it_refuses_and_says_what_is_missing():
    code = ("from edgesmith.plugins.sandbox import SandboxUnavailable, run_python\n"
            "try:\n    run_python('print(1)')\nexcept SandboxUnavailable as e:\n    print(e)\nelse:\n    print('RAN')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PATH="/nonexistent"))
    assert out.returncode == 0, out.stderr
    assert "RAN" not in out.stdout and "bubblewrap" in out.stdout and "apt-get install bubblewrap" in out.stdout
    assert "unconfined" in out.stdout


# Disables user namespaces for one process tree, without touching the host: the process
# enters a user namespace of its own and sets user.max_user_namespaces = 0 there (the limit
# is per user namespace), then calls run_python as before (as root, or as its own uid).
NO_USERNS = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
uid, gid = os.getuid(), os.getgid()
ready_r, ready_w = os.pipe()
mapped_r, mapped_w = os.pipe()
pid = os.fork()
if pid == 0:
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER
        os._exit(90)
    os.write(ready_w, b"1")
    os.read(mapped_r, 1)
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")
    from edgesmith.plugins.sandbox import SandboxUnavailable, run_python
    try:
        run_python("print(1)")
    except SandboxUnavailable as e:
        print(e, flush=True)
        os._exit(0)
    print("RAN", flush=True)
    os._exit(1)
os.read(ready_r, 1)
if uid == 0:  # root may map several ids; nobody is needed by the root launcher
    uids = gids = "0 0 1\n65534 65534 1\n"
else:
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    uids, gids = f"{uid} {uid} 1\n", f"{gid} {gid} 1\n"
for name, mapping in (("uid_map", uids), ("gid_map", gids)):
    with open(f"/proc/{pid}/{name}", "w") as f:
        f.write(mapping)
os.write(mapped_w, b"1")
sys.exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


def test_without_user_namespaces_it_refuses_and_says_what_is_missing():
    out = subprocess.run([sys.executable, "-c", NO_USERNS], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "could not start" in out.stdout and "user.max_user_namespaces" in out.stdout, out.stdout
    assert "unconfined" in out.stdout
