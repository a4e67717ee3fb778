"""Launcher that isolates itself, then ``exec``s an untrusted command (see :mod:`sandbox`).

Usage (by :func:`autograder.sandbox.run_sandboxed` only)::

    python -I sandbox_exec.py '<json spec>' -- command [args...]

It imports nothing but the standard library, sets resource limits, enters new network and mount
namespaces (loopback up, hidden paths covered), drops to the sandbox user, sets
``no_new_privs`` and a parent-death signal, and replaces itself with the command.
"""

import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def set_limits(spec: dict) -> None:
    limits = {
        resource.RLIMIT_AS: spec["memory_bytes"],
        resource.RLIMIT_FSIZE: spec["max_file_bytes"],
        resource.RLIMIT_NOFILE: spec["max_open_files"],
        resource.RLIMIT_NPROC: spec["max_processes"],
        resource.RLIMIT_CORE: 0,
    }
    for which, value in limits.items():
        resource.setrlimit(which, (value, value))


def enter_namespaces(as_root: bool) -> bool:
    """New network and mount namespaces; without root inside a new user namespace. True if done."""
    if as_root:
        _check(libc.unshare(CLONE_NEWNET | CLONE_NEWNS), "unshare")
        return True
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) != 0:
        return False
    with open("/proc/self/setgroups", "w") as handle:
        handle.write("deny")
    with open("/proc/self/uid_map", "w") as handle:
        handle.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as handle:
        handle.write(f"{gid} {gid} 1")
    return True


def loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (the kernel and nbgrader talk over it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        libc.mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm")


def private_scratch(keep: list[str]) -> None:
    """Give the sandbox its own empty ``/tmp``, ``/var/tmp`` and ``/dev/shm`` (memory-backed,
    gone when it ends), so nothing it writes there outlives it or reaches another sandbox.

    The folders in ``keep`` that lie under them (the sandbox's own work folder) are bound back.
    """
    mount("none", "/", None, MS_REC | MS_PRIVATE, None)
    handles = {os.path.abspath(p): os.open(p, os.O_PATH) for p in keep if os.path.isdir(p)}
    try:
        for scratch in SCRATCH_DIRS:
            if os.path.isdir(scratch) and not os.path.islink(scratch):
                mount("tmpfs", scratch, "tmpfs", MS_NOSUID | MS_NODEV, "size=256m,mode=1777")
        for path, handle in handles.items():
            if any(path.startswith(scratch + "/") for scratch in SCRATCH_DIRS):
                _make_dirs(path)
                mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC, None)
    finally:
        for handle in handles.values():
            os.close(handle)


def _make_dirs(path: str) -> None:
    """``mkdir -p`` with mode 0711 for every created folder: enterable, not listable."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _make_dirs(parent)
    if not os.path.isdir(path):
        os.mkdir(path)
        os.chmod(path, 0o711)


def hide_paths(paths: list[str]) -> None:
    """Cover each folder with an empty read-only tmpfs and each file with ``/dev/null``."""
    for path in paths:
        if os.path.isdir(path):
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
            mount("tmpfs", path, "tmpfs", flags, "size=4k,mode=555")
        elif os.path.isfile(path):
            mount("/dev/null", path, None, MS_BIND, None)


def reveal_paths(paths: list[str]) -> None:
    """Make each folder reachable for the sandbox user although an ancestor is private.

    The highest ancestor that others cannot enter (e.g. ``/root`` holding pyenv's Python) is
    covered by an empty tmpfs, and the folder alone is bound back at its place inside it.
    """
    for path in paths:
        parts = os.path.abspath(path).split(os.sep)[1:]
        ancestors = ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
        blocked = [a for a in ancestors if not os.stat(a).st_mode & 0o001]
        if not blocked:
            continue
        handle = os.open(path, os.O_PATH)
        try:
            mount("tmpfs", blocked[0], "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
            os.makedirs(path, mode=0o755)
            mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC, None)
        finally:
            os.close(handle)


def drop_privileges(uid: int) -> None:
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def main() -> None:
    spec = json.loads(sys.argv[1])
    if sys.argv[2] != "--" or len(sys.argv) < 4:
        raise SystemExit("usage: sandbox_exec.py SPEC -- COMMAND [ARGS...]")
    argv = sys.argv[3:]
    as_root = os.geteuid() == 0
    set_limits(spec)
    if enter_namespaces(as_root):
        loopback_up()
        private_scratch(spec["keep_paths"])
        hide_paths(spec["hidden_paths"])
        if spec["uid"] is not None:
            reveal_paths(spec["reveal_paths"])
    if spec["uid"] is not None:
        drop_privileges(spec["uid"])
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
    os.chdir(spec["cwd"])
    os.execvpe(argv[0], argv, os.environ)


if __name__ == "__main__":
    main()
