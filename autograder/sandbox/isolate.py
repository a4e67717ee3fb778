"""The one isolation routine of the grader: everything untrusted runs behind :func:`isolate`.

Two callers use it, and nothing else isolates anything:

- the launcher, ``python -I isolate.py SPEC_FD -- COMMAND [ARGS...]`` (the spec as JSON on an
  inherited pipe), which isolates itself and then ``exec``s the command (``nbgrader autograde``
  of one submission);
- the warm parent (:mod:`autograder.sandbox.zygote`), whose forked children isolate themselves
  and then run a payload of :mod:`autograder.sandbox.worker` (a probe, or a model on images).

What :func:`isolate` does to the calling process, in this order (the spec is a dict built by
:func:`autograder.sandbox.run.isolation_spec`):

1. joins the job's cgroups (memory and process limits across all its processes; root only);
2. sets resource limits (file size, open files, core dumps; processes where no cgroup limits
   them; memory without a cgroup is the grader's watchdog's, :mod:`autograder.sandbox.watchdog`);
3. unshares new mount, PID, IPC, UTS and network namespaces (without root: inside a new user
   namespace that maps only the caller's own user id);
4. forks the namespace's init (PID 1), which builds a private, read-only world and then forks
   the payload process and reaps orphans until the payload exits; when init exits, the kernel
   kills every process left in the PID namespace, so nothing a job starts outlives it. The
   caller waits for init and exits with its status (killing the caller kills init too);
5. in the payload process: drops to the sandbox user id (root) or all capabilities (user
   namespace), sets ``no_new_privs`` and a parent-death signal, changes into ``cwd`` and
   returns to the caller's code.

The private world: every mount is remounted read-only; ``/tmp``, ``/var/tmp``, ``/dev/shm`` and
``/run`` are fresh size-limited tmpfs; ``/proc`` shows the job's own processes only; the spec's
``hide`` paths are covered by empty read-only folders; ``rw_binds`` (the job's work folders) are
the only writable places on disk and ``ro_binds`` are visible read-only; the network has only a
loopback interface; the host name is ``sandbox``; System V IPC and POSIX message queues are the
namespace's own and vanish with it.

This file imports the standard library only: it runs before anything untrusted is loaded.
"""

import ctypes
import errno
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
KEPT_MOUNT_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_NOATIME | MS_NODIRATIME | MS_RELATIME
"""Per-mount flags a bind remount must keep (a user namespace may not clear locked ones)."""

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
LINUX_CAPABILITY_VERSION_3 = 0x20080522

SCRATCH_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
"""World-writable places on a Linux system; each becomes a private, size-limited tmpfs."""

HOSTNAME = b"sandbox"
ISOLATION_FAILED = 125
"""Exit status of a launcher or warm-parent child whose isolation failed (nothing untrusted ran);
no payload can end with it (see :func:`_exit_like`)."""

libc = ctypes.CDLL(None, use_errno=True)


class IsolationError(OSError):
    """A step of the isolation failed; the sandbox does not start (it never runs half-isolated)."""


def report(error: BaseException, prefix: str = "") -> None:
    """One line about ``error`` on stderr (a forked job's log); never raises."""
    try:
        os.write(2, f"{prefix}{type(error).__name__}: {error}\n".encode())
    except OSError:
        pass


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise IsolationError(error, f"{what}: {os.strerror(error)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None):
    def encoded(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    _check(
        libc.mount(
            encoded(source), encoded(target), encoded(fstype), ctypes.c_ulong(flags), encoded(data)
        ),
        f"mount {target}",
    )


# ----------------------------------------------------------------------------- steps 1-3


def join_cgroups(procs_files: list[str]) -> None:
    """Move this process into each cgroup (its children inherit them)."""
    for path in procs_files:
        with open(path, "w") as handle:
            handle.write(str(os.getpid()))


def set_limits(limits: dict) -> None:
    """Hard resource limits; ``None`` or a missing key leaves that limit as it is.

    No address-space limit is set: torch reserves gigabytes of address space it never uses, so
    ``RLIMIT_AS`` stopped honest jobs; memory is limited by what a job uses (a cgroup, or the
    grader's watchdog).
    """
    names = {
        "file_bytes": resource.RLIMIT_FSIZE,
        "open_files": resource.RLIMIT_NOFILE,
        "processes": resource.RLIMIT_NPROC,
        "core": resource.RLIMIT_CORE,
    }
    for key, which in names.items():
        if limits.get(key) is not None:
            resource.setrlimit(which, (limits[key], limits[key]))


def unshare_namespaces(as_root: bool) -> None:
    """New mount, PID, IPC, UTS and network namespaces (in a new user namespace without root)."""
    if as_root:
        _check(libc.unshare(NAMESPACES), "unshare")
        return
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(CLONE_NEWUSER | NAMESPACES), "unshare (user namespace)")
    maps = {"setgroups": "deny", "uid_map": f"{uid} {uid} 1", "gid_map": f"{gid} {gid} 1"}
    for name, text in maps.items():
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


# ----------------------------------------------------------------------------- step 4: the world


def _mount_points() -> list[str]:
    """Every mount point of this mount namespace, parents first (octal escapes decoded)."""
    points = []
    with open("/proc/self/mountinfo", "rb") as handle:
        for line in handle:
            raw = line.split(b" ")[4]
            points.append(raw.decode("unicode_escape").encode("latin-1").decode("utf-8", "replace"))
    return sorted(set(points), key=lambda p: (p.count("/"), p))


def make_everything_read_only() -> None:
    """Remount every mount of this namespace read-only (a bind remount: the host keeps its own)."""
    for point in _mount_points():
        try:
            kept = os.statvfs(point).f_flag & KEPT_MOUNT_FLAGS
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.EACCES, errno.ENOTDIR):
                continue  # covered by another mount: unreachable from inside anyway
            raise
        mount(None, point, None, MS_REMOUNT | MS_BIND | MS_RDONLY | kept, None)


def private_scratch(size_mb: int) -> None:
    """A fresh tmpfs on each of :data:`SCRATCH_DIRS`, at most ``size_mb`` MB each."""
    for folder in SCRATCH_DIRS:
        if os.path.isdir(folder) and not os.path.islink(folder):
            mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, f"size={size_mb}m,mode=1777")


def own_proc() -> None:
    """A /proc of the new PID namespace: only the job's own processes are visible."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)


def hide(paths: list[str]) -> None:
    """Cover each folder with an empty read-only tmpfs and each file with ``/dev/null``."""
    for path in paths:
        if os.path.isdir(path):
            flags = MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC
            mount("tmpfs", path, "tmpfs", flags, "size=4k,mode=555")
        elif os.path.isfile(path):
            mount("/dev/null", path, None, MS_BIND | MS_RDONLY, None)


def _make_dirs(path: str) -> None:
    """``mkdir -p`` with mode 0711 for every created folder: enterable, not listable."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _make_dirs(parent)
    if not os.path.isdir(path):
        os.mkdir(path)
        os.chmod(path, 0o711)


def reveal_plan(paths: list[str], other_user: bool) -> tuple[list[str], dict[str, int]]:
    """What :func:`reveal` needs, taken before any mount changes the view: the private
    ancestors to cover (each once) and an open handle of every folder to reveal.

    A folder needs revealing when it lies under a scratch folder (which becomes an empty tmpfs),
    or, for a job that runs as ``other_user``, when an ancestor is not enterable by others
    (e.g. ``/root``, which holds pyenv's Python): it is then bound back into an empty tmpfs that
    covers that ancestor.
    """
    covers: list[str] = []
    handles: dict[str, int] = {}
    for path in map(os.path.abspath, paths):
        parts = path.split(os.sep)[1:]
        ancestors = ["/" + "/".join(parts[:i]) for i in range(1, len(parts))]
        blocked = [a for a in ancestors if other_user and not os.stat(a).st_mode & 0o001]
        scratch = any(path.startswith(folder + "/") for folder in SCRATCH_DIRS)
        if blocked or scratch:
            handles[path] = os.open(path, os.O_PATH | os.O_DIRECTORY)
        if blocked and not any(blocked[0] == c or blocked[0].startswith(c + "/") for c in covers):
            covers.append(blocked[0])
    return covers, handles


def reveal(covers: list[str], handles: dict[str, int]) -> None:
    """Cover each private ancestor with an empty tmpfs, then bind each folder back read-only."""
    for folder in covers:
        _make_dirs(folder)
        mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=755")
    bind(handles, writable=False)


def bind(handles: dict[str, int], writable: bool) -> None:
    """Bind each opened folder back at its own path, writable or read-only."""
    for path, handle in handles.items():
        _make_dirs(path)
        mount(f"/proc/self/fd/{handle}", path, None, MS_BIND | MS_REC, None)
        flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (0 if writable else MS_RDONLY)
        mount(None, path, None, flags, None)


def _open_folders(paths: list[str]) -> dict[str, int]:
    return {os.path.abspath(p): os.open(p, os.O_PATH | os.O_DIRECTORY) for p in paths}


def loopback_up() -> None:
    """Bring ``lo`` up in the new network namespace (a Jupyter kernel talks to nbgrader over it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH", b"lo", 0)
        flags = struct.unpack("16sH", fcntl.ioctl(sock, SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


def build_world(spec: dict) -> None:
    """Steps of the private, read-only world (run by the namespace's init)."""
    mount(None, "/", None, MS_REC | MS_PRIVATE, None)
    writable = _open_folders(spec.get("rw_binds", []))
    readable = _open_folders(spec.get("ro_binds", []))
    covers, revealed = reveal_plan(spec.get("reveal", []), spec.get("uid") is not None)
    try:
        make_everything_read_only()
        private_scratch(int(spec.get("scratch_mb", 256)))
        own_proc()
        hide(spec.get("hide", []))
        reveal(covers, revealed)
        bind(readable, writable=False)
        bind(writable, writable=True)
    finally:
        for handle in [*writable.values(), *readable.values(), *revealed.values()]:
            os.close(handle)
    _check(libc.sethostname(HOSTNAME, len(HOSTNAME)), "sethostname")
    loopback_up()


# ----------------------------------------------------------------------------- step 5


def drop_capabilities() -> None:
    """Clear every capability of this process (what a user namespace's creator is given)."""

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [(n, ctypes.c_uint32) for n in ("effective", "permitted", "inheritable")]

    empty = (Data * 2)()
    _check(libc.capset(ctypes.byref(Header(LINUX_CAPABILITY_VERSION_3, 0)), empty), "capset")


def become_payload(spec: dict) -> None:
    """Drop privileges for good and enter ``cwd`` (the process that runs untrusted code)."""
    if spec.get("uid") is not None:
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])
    elif os.geteuid() != 0:
        drop_capabilities()
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(no_new_privs)")
    _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
    os.chdir(spec["cwd"])


def _exit_like(status: int) -> None:
    """Exit with the wait status of a child: its exit code, or 128 + its signal; a payload's
    own exit code :data:`ISOLATION_FAILED` becomes 1, so that code means only "not isolated"."""
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    code = os.waitstatus_to_exitcode(status) & 0xFF
    os._exit(1 if code == ISOLATION_FAILED else code)


def _run_init(payload_pid: int) -> None:
    """PID 1 of the job: reap every orphan, exit with the payload's status when it ends."""
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(1)
        if pid == payload_pid:
            _exit_like(status)


def isolate(spec: dict) -> None:
    """Isolate the calling process as the module docstring says; returns in the payload process.

    The caller and the namespace's init never return: they exit with the payload's status.
    Raises :class:`IsolationError` (in the caller, before anything untrusted ran) when a step
    fails, so a job never runs half-isolated.
    """
    as_root = os.geteuid() == 0
    if as_root and spec.get("cgroup_procs"):
        join_cgroups(spec["cgroup_procs"])
    set_limits(spec.get("limits", {}))
    if not spec.get("namespaces", True):
        become_payload(spec)
        return
    unshare_namespaces(as_root)
    ready_read, ready_write = os.pipe()
    init = os.fork()
    if init:
        os.close(ready_write)
        failure = os.read(ready_read, 4096)
        if failure:
            os.waitpid(init, 0)
            raise IsolationError(errno.EPERM, failure.decode("utf-8", "replace"))
        _exit_like(os.waitpid(init, 0)[1])
    os.close(ready_read)
    try:
        _check(libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl(pdeathsig)")
        build_world(spec)
    except BaseException as error:
        os.write(ready_write, f"{type(error).__name__}: {error}".encode()[:4000])
        os._exit(1)
    payload = os.fork()
    if payload:
        os.close(ready_write)
        _check(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "prctl(dumpable)")
        _run_init(payload)
    try:
        become_payload(spec)
    except BaseException as error:
        os.write(ready_write, f"{type(error).__name__}: {error}".encode()[:4000])
        os._exit(1)
    os.close(ready_write)


def main() -> None:
    """``python -I isolate.py FD -- COMMAND [ARGS...]``: read the spec (JSON) from the inherited
    file descriptor FD (so that no path of the grader shows in any command line), isolate, then
    exec the command."""
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        raise SystemExit("usage: isolate.py SPEC_FD -- COMMAND [ARGS...]")
    with os.fdopen(int(sys.argv[1]), "rb") as handle:
        spec = json.loads(handle.read())
    argv = sys.argv[3:]
    try:
        isolate(spec)
    except IsolationError as error:
        print(f"sandbox: could not isolate the job ({error})", file=sys.stderr, flush=True)
        os._exit(ISOLATION_FAILED)
    os.execvpe(argv[0], argv, os.environ)


if __name__ == "__main__":
    main()
