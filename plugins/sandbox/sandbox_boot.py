"""Start-up wrapper run inside the sandbox: installs the audit hook, then runs the user's code.

Usage (by python_sandbox only): ``python -I sandbox_boot.py WORKDIR MAX_PROCESSES``; the
code is read from ``WORKDIR/main.py``. The audit hook (PEP 578) refuses, with a
PermissionError naming the rule:

* network sockets (any family but AF_UNIX) and name lookups;
* opening a file for writing, and creating, removing, renaming or changing files, outside
  WORKDIR (``/dev/null`` excepted);
* starting processes (fork, exec, spawn, subprocess, os.system) when MAX_PROCESSES <= 1;
* loading native code through ctypes (which could bypass this hook).

The hook is one layer: the parent also applies kernel limits (rlimits, a network namespace
and a pids cgroup where it can). This file imports only the standard library.
"""

import os
import sys

_WORKDIR = os.path.realpath(sys.argv[1])
_MAX_PROCESSES = int(sys.argv[2])
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_ALLOWED_WRITE = {"/dev/null"}
_PROCESS_EVENTS = {"os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
                   "subprocess.Popen", "os.startfile", "pty.spawn"}
_PATH_EVENTS = {  # event -> indices of path arguments that are modified
    "os.remove": (0,), "os.rename": (0, 1), "os.rmdir": (0,), "os.mkdir": (0,),
    "os.chmod": (0,), "os.chown": (0,), "os.symlink": (1,), "os.link": (1,),
    "os.truncate": (0,), "os.utime": (0,), "shutil.rmtree": (0,), "shutil.move": (0, 1),
    "shutil.copyfile": (1,), "shutil.copymode": (1,), "shutil.copystat": (1,),
}
_realpath = os.path.realpath
_fspath = os.fspath
_busy = [False]


def _inside(path) -> bool:
    if isinstance(path, int):  # an already open descriptor
        return True
    try:
        real = _realpath(_fspath(path))
    except Exception:
        return False
    return real == _WORKDIR or real.startswith(_WORKDIR + os.sep) or real in _ALLOWED_WRITE


def _hook(event, args):
    if _busy[0]:
        return
    _busy[0] = True
    try:
        if event == "open":
            path, mode, flags = args
            writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            if writes and path is not None and not _inside(path):
                raise PermissionError(f"sandbox: writing outside the working directory is refused: {path!r}")
        elif event in _PATH_EVENTS:
            for i in _PATH_EVENTS[event]:
                if i < len(args) and args[i] is not None and not _inside(args[i]):
                    raise PermissionError(f"sandbox: {event} outside the working directory is refused: {args[i]!r}")
        elif event == "socket.__new__":
            family = args[1] if len(args) > 1 else None
            if family != getattr(__import__("socket"), "AF_UNIX", -1):
                raise PermissionError("sandbox: network access is refused")
        elif event in ("socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg",
                       "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr",
                       "socket.gethostbyname_ex", "socket.getnameinfo"):
            sock = args[0] if args else None
            if getattr(sock, "family", None) != getattr(__import__("socket"), "AF_UNIX", -1):
                raise PermissionError("sandbox: network access is refused")
        elif event in _PROCESS_EVENTS and _MAX_PROCESSES <= 1:
            raise PermissionError(f"sandbox: starting processes is refused ({event})")
        elif event in ("ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle"):
            raise PermissionError("sandbox: loading native code (ctypes) is refused")
    finally:
        _busy[0] = False


def _main():
    os.chdir(_WORKDIR)
    path = os.path.join(_WORKDIR, "main.py")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    code = compile(source, "main.py", "exec")
    sys.argv = ["main.py"]
    sys.addaudithook(_hook)
    namespace = {"__name__": "__main__", "__file__": "main.py", "__builtins__": __builtins__}
    exec(code, namespace)


if __name__ == "__main__":
    _main()
