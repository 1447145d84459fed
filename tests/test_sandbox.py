"""The Python sandbox stops or refuses runaway and hostile code, and the caller survives each case."""

from __future__ import annotations

import os
import socket

import pytest

from edgesmith.plugins.sandbox import run_python


def _leftovers() -> list[int]:
    """Processes still running the sandbox's start-up wrapper (there must be none after a run)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if b"sandbox_boot.py" in f.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


def test_runs_ordinary_code_and_captures_output():
    result = run_python("import math\nprint(math.factorial(10))\nimport sys; print('warn', file=sys.stderr)")
    assert result.ok and result.stdout == "3628800\n" and result.stderr == "warn\n"
    assert result.killed_reason is None and not result.timed_out


def test_code_may_write_in_its_own_working_directory():
    result = run_python("open('notes.txt', 'w').write('hi')\nimport os\nprint(open('notes.txt').read(), os.getcwd())")
    assert result.ok and result.stdout.startswith("hi ")
    workdir = result.stdout.split()[1]
    assert not os.path.exists(workdir)  # removed afterwards


def test_infinite_loop_is_stopped_by_the_wall_clock():
    result = run_python("while True:\n    pass", timeout_s=1.0, cpu_s=30)
    assert result.timed_out and result.killed_reason == "timeout"
    assert result.duration_s < 10
    assert _leftovers() == []


def test_infinite_loop_is_stopped_by_the_cpu_limit():
    result = run_python("while True:\n    pass", timeout_s=30, cpu_s=1)
    assert result.killed_reason == "cpu" and not result.timed_out
    assert result.duration_s < 10


def test_fork_bomb_is_refused_by_default():
    result = run_python("import os\nwhile True:\n    os.fork()", timeout_s=5)
    assert not result.ok and "starting processes is refused" in result.stderr
    assert _leftovers() == []


def test_fork_bomb_is_capped_when_processes_are_allowed():
    code = ("import os, time\n"
            "while True:\n"
            "    try:\n"
            "        if os.fork() > 0:\n"
            "            print('forked', flush=True)\n"
            "    except OSError:\n"
            "        time.sleep(0.001)\n")
    result = run_python(code, timeout_s=3, max_processes=4)
    assert result.killed_reason in ("processes", "timeout")
    # successful forks are bounded by the kernel cap (pids cgroup / RLIMIT_NPROC) or caught by the watchdog
    assert result.stdout.count("forked") <= 64
    assert _leftovers() == []


def test_memory_hog_is_stopped():
    result = run_python("blocks = []\nwhile True:\n    blocks.append(bytearray(50_000_000))",
                        memory_mb=200, timeout_s=10)
    assert result.killed_reason == "memory" and "MemoryError" in result.stderr


def test_network_connection_to_a_local_server_is_refused():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        result = run_python(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
                            "s.sendall(b'leak')\nprint('connected')", timeout_s=10)
        # a connection that had been made would wait in the listen backlog, even if closed since
        with pytest.raises(BlockingIOError):
            server.accept()
    finally:
        server.close()
    assert "connected" not in result.stdout
    assert not result.ok and "network access is refused" in result.stderr
    assert result.isolation["network"].endswith("audit-hook")


def test_write_outside_the_working_directory_is_refused(tmp_path):
    target = tmp_path / "outside.txt"
    for code in (f"open({str(target)!r}, 'w').write('x')",
                 f"import os\nos.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
                 f"import os\nos.symlink({str(target)!r}, 'link')\nopen('link', 'w').write('x')",
                 f"import shutil\nopen('a', 'w').write('x')\nshutil.copyfile('a', {str(target)!r})"):
        result = run_python(code)
        assert not result.ok and "outside the working directory is refused" in result.stderr, code
    assert not target.exists()


def test_output_is_capped():
    result = run_python("while True:\n    print('x' * 1000)", max_output_bytes=5000, timeout_s=10)
    assert result.killed_reason == "output" and result.stdout_truncated
    assert len(result.stdout) == 5000


def test_bad_limits_are_rejected():
    with pytest.raises(ValueError, match="timeout_s"):
        run_python("print(1)", timeout_s=0)
