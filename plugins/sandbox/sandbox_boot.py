"""Start-up wrapper run *inside* the bubblewrap sandbox: lowers rlimits, then runs the code.

Usage (by python_sandbox only):
``python -I sandbox_boot.py CPU_S MEMORY_BYTES FILE_BYTES MAX_TASKS NOFILE`` with the
code in ``./main.py``. Soft and hard limits are both set, so the code cannot raise them
again (that needs CAP_SYS_RESOURCE in the initial user namespace, which nothing in the
sandbox has). RLIMIT_NPROC is set here rather than before bwrap starts because the kernel
counts it per user namespace and uid: in here it counts only the sandbox's own tasks
(threads included), outside it would count every process of the calling user.

This file is not a security boundary and holds no policy: the namespaces and the
read-only mounts around it are the boundary. It imports only the standard library.
"""

import resource
import sys


def _limit(kind: int, value: int) -> None:
    resource.setrlimit(kind, (value, value))


def _main() -> None:
    cpu_s, memory, file_bytes, max_tasks, nofile = (int(a) for a in sys.argv[1:6])
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))  # SIGXCPU first, SIGKILL 1 s later
    _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_FSIZE, file_bytes)
    _limit(resource.RLIMIT_NPROC, max_tasks)
    _limit(resource.RLIMIT_NOFILE, nofile)
    _limit(resource.RLIMIT_CORE, 0)
    with open("main.py", encoding="utf-8") as f:
        source = f.read()
    code = compile(source, "main.py", "exec")
    sys.argv = ["main.py"]
    namespace = {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}
    exec(code, namespace)


if __name__ == "__main__":
    _main()
