"""Running one untrusted job: limits, the isolation spec, the wait, the kill and what happened.

:func:`run_sandboxed` starts a command behind :func:`autograder.sandbox.isolate.isolate` (the
launcher ``isolate.py``) and :class:`autograder.sandbox.warm_parent.WarmParent` forks payloads
behind the same routine; both build the spec with :func:`isolation_spec`, put the job in its own
cgroup (:mod:`autograder.sandbox.cgroups`) and end it with :func:`end_job`, so every job is
limited, watched and killed the same way.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from . import cgroups
from .slots import running_as_root
from .watchdog import POLL_S, MemoryWatchdog

ISOLATE = Path(__file__).with_name("isolate.py")
ISOLATION_FAILED = 125
"""The exit status of a job whose isolation failed (``isolate.ISOLATION_FAILED``)."""


class SandboxError(RuntimeError):
    """A job could not be isolated: the grader's problem (nothing untrusted ran), never the
    student's; the submission is graded again on the next run."""


DISK_POLL_S = 0.5


@dataclass(frozen=True)
class Sandbox:
    """How to run one untrusted job.

    - timeout_s: wall clock; the whole job is killed after it.
    - memory_bytes: memory of all the job's processes together (a cgroup); without a memory
      cgroup, what they hold in memory, watched by :mod:`autograder.sandbox.watchdog` (never
      their address space, which torch reserves in gigabytes it does not use).
    - uid: run as this user and group id (root only; ``None`` keeps the current user).
    - cwd_writable: the job's working folder, bound writable (the only writable place on disk
      besides ``rw_binds``).
    - rw_binds / ro_binds: other folders the job sees writable / read-only (they may lie under
      ``/tmp``, which is otherwise a fresh tmpfs).
    - hide: folders and files covered by empty read-only ones.
    - max_processes: processes and threads of the job together (a cgroup; else ``RLIMIT_NPROC``).
    - max_file_bytes, max_open_files: per-process limits.
    - scratch_mb: size of each private ``/tmp``, ``/var/tmp``, ``/dev/shm`` and ``/run``.
    - disk_paths, max_disk_bytes, max_disk_entries: a quota on what the job writes there
      (measured every half second; none without ``disk_paths``).
    """

    timeout_s: float
    memory_bytes: int
    uid: int | None = None
    rw_binds: tuple[str, ...] = ()
    ro_binds: tuple[str, ...] = ()
    hide: tuple[str, ...] = ()
    max_processes: int = 256
    max_file_bytes: int = 512 * 2**20
    max_open_files: int = 1024
    scratch_mb: int = 256
    disk_paths: tuple[str, ...] = ()
    max_disk_bytes: int = 2 * 2**30
    max_disk_entries: int = 50_000


@dataclass
class Outcome:
    """What happened to a job.

    ``returncode`` is the exit status (128 + N or negative: killed by signal N); ``timed_out``:
    the wall clock stopped it; ``over_disk_quota``: what it wrote when the quota stopped it
    (e.g. "more than 2,048 MB of files"), else ""; ``over_memory``: the kernel (memory cgroup)
    or the memory watchdog stopped the job for its memory; ``over_processes``: the kernel
    refused a process for the job's process limit;
    ``log``: the tail of its output.
    """

    returncode: int
    timed_out: bool
    seconds: float
    log: str = ""
    over_disk_quota: str = ""
    over_memory: bool = False
    over_processes: bool = False


@dataclass(frozen=True)
class Support:
    """What isolation this machine gives (see :func:`support`)."""

    root: bool
    namespaces: bool
    cgroups: cgroups.CgroupPlan

    def missing(self) -> list[str]:
        """What is not isolated, in words (empty when everything is)."""
        gaps = []
        if not self.root:
            gaps.append(
                "student code runs under your own user id, so it can read every file your user "
                "can read outside the hidden folders"
            )
        if not self.namespaces:
            gaps.append(
                "no namespaces: student code sees your network, processes and writable folders, "
                "and a process it starts in a new session can outlive its job"
            )
        if self.cgroups.memory is None:
            gaps.append(
                "memory is watched (what the job's processes hold, measured every "
                f"{POLL_S:g} s), not limited by the kernel"
            )
        if self.cgroups.pids is None:
            gaps.append("processes are limited per user id (RLIMIT_NPROC), not per job")
        return gaps


@functools.cache
def support() -> Support:
    """The isolation this process can get (tried once: a tiny job through the launcher)."""
    root = running_as_root()
    plan = cgroups.plan() if root else cgroups.CgroupPlan()
    spec = {"cwd": "/", "uid": None, "namespaces": True}
    tried = launch(["/bin/true"], spec, cwd="/", env={"PATH": "/usr/bin:/bin"}, output=None)
    return Support(root=root, namespaces=tried.wait(timeout=60) == 0, cgroups=plan)


def launch(argv: list[str], spec: dict, cwd: str, env: dict, output) -> subprocess.Popen:
    """Start ``argv`` behind the launcher (``isolate.py``), the spec on an inherited pipe."""
    reader, writer = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", str(ISOLATE), str(reader), "--", *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output if output is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if output is not None else subprocess.DEVNULL,
            start_new_session=True,
            pass_fds=(reader,),
        )
    finally:
        os.close(reader)
    with os.fdopen(writer, "wb") as handle:
        handle.write(json.dumps(spec).encode())
    return process


def isolation_warning() -> str | None:
    """One sentence naming what is not isolated on this machine, or None."""
    gaps = support().missing()
    if not gaps:
        return None
    return (
        "Warning: grading is not fully isolated here: "
        + "; ".join(gaps)
        + ". Run grade as root on a machine used only for grading for full isolation."
    )


def _runtime_paths() -> list[str]:
    """What the sandboxed Python needs: its environment and this package."""
    package = Path(__file__).resolve().parents[1]
    return list(dict.fromkeys([sys.prefix, sys.base_prefix, str(package)]))


def isolation_spec(sandbox: Sandbox, cwd: Path, job: cgroups.JobCgroup | None) -> dict:
    """The spec :func:`autograder.sandbox.isolate.isolate` applies for ``sandbox``."""
    state = support()
    limits = {
        "file_bytes": int(sandbox.max_file_bytes),
        "open_files": int(sandbox.max_open_files),
        "core": 0,
        "processes": None if state.cgroups.pids else _process_limit(sandbox),
    }
    return {
        "uid": sandbox.uid,
        "cgroup_procs": job.procs_files if job else [],
        "limits": limits,
        "namespaces": state.namespaces,
        "rw_binds": [str(cwd), *sandbox.rw_binds],
        "ro_binds": list(sandbox.ro_binds),
        "hide": list(sandbox.hide),
        "reveal": _runtime_paths(),
        "scratch_mb": int(sandbox.scratch_mb),
        "cwd": str(cwd),
    }


def _process_limit(sandbox: Sandbox) -> int:
    """RLIMIT_NPROC counts all processes of the user id: the sandbox's own uid, or ours plus
    what the job may add."""
    if sandbox.uid is not None:
        return sandbox.max_processes
    mine = sum(
        1 for e in os.scandir("/proc") if e.name.isdigit() and e.stat().st_uid == os.getuid()
    )
    return mine + sandbox.max_processes


def start_job(sandbox: Sandbox) -> cgroups.JobCgroup | None:
    """The cgroup of a new job (None without cgroups)."""
    plan = support().cgroups
    return cgroups.job_cgroup(sandbox.memory_bytes, sandbox.max_processes, plan)


def memory_watchdog(sandbox: Sandbox, root_pid: int, shares_with: int | None = None):
    """The watchdog of a job whose memory no cgroup limits (None when one does)."""
    if support().cgroups.memory is not None or not sandbox.memory_bytes:
        return None
    return MemoryWatchdog(root_pid, sandbox.memory_bytes, support().namespaces, shares_with)


class Watch:
    """What a waiting loop checks at every poll: the wall clock, the memory watchdog (every
    :data:`POLL_S` seconds) and the disk quota (every :data:`DISK_POLL_S` seconds)."""

    def __init__(self, sandbox: Sandbox, start: float) -> None:
        self.sandbox = sandbox
        self.deadline = start + sandbox.timeout_s
        self.watchdog: MemoryWatchdog | None = None
        self.next_disk = start + DISK_POLL_S
        self.timed_out, self.over_quota, self.over_memory = False, "", False

    def wait_s(self) -> float | None:
        """How long to wait before the next poll (None: until the deadline only)."""
        left = max(0.0, self.deadline - time.monotonic())
        if self.watchdog is not None:
            return min(left, POLL_S)
        return min(left, DISK_POLL_S) if self.sandbox.disk_paths else left

    def stop(self) -> bool:
        """Check the limits now; True when the job must be stopped."""
        now = time.monotonic()
        if now >= self.deadline:
            self.timed_out = True
            return True
        if self.watchdog is not None and self.watchdog.over():
            self.over_memory = True
            self.watchdog.kill()
            return True
        if self.sandbox.disk_paths and now >= self.next_disk:
            self.next_disk = now + DISK_POLL_S
            self.over_quota = over_disk_quota(self.sandbox)
            return bool(self.over_quota)
        return False


def end_job(job: cgroups.JobCgroup | None, fallback_kill: callable) -> tuple[bool, bool]:
    """Kill everything left of a job and remove its cgroup; ``(over_memory, over_processes)``.

    ``fallback_kill()`` stops the job where there is no cgroup (its process group, which takes
    its PID namespace with it).
    """
    if job is None:
        fallback_kill()
        return False, False
    try:
        job.kill_all()
        return job.over_memory(), job.over_processes()
    finally:
        job.remove()


def run_sandboxed(
    argv: list[str],
    sandbox: Sandbox,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    log_tail_bytes: int = 20_000,
) -> Outcome:
    """Run ``argv`` isolated by ``sandbox`` in ``cwd`` with exactly ``env``; wait for it.

    stdout and stderr go to ``log_path`` (a file the grader owns). When the command ends, runs
    out of time, over its disk quota or (without a memory cgroup) over its memory, the whole
    job is killed (its cgroup; its PID namespace dies with its init) before this returns.
    """
    job = start_job(sandbox)
    start = time.monotonic()
    watch = Watch(sandbox, start)
    with open(log_path, "wb") as log:
        process = launch(argv, isolation_spec(sandbox, cwd, job), "/", env, log)
        watch.watchdog = memory_watchdog(sandbox, process.pid)
        try:
            while process.returncode is None:
                try:
                    process.wait(timeout=watch.wait_s())
                except subprocess.TimeoutExpired:
                    if watch.stop():
                        break
        finally:
            over_memory, over_processes = end_job(job, lambda: _kill_group(process.pid))
            _kill_group(process.pid)
            process.wait()
    if process.returncode == ISOLATION_FAILED:
        raise SandboxError(f"The sandbox could not start: {log_tail(log_path, 500).strip()}")
    return Outcome(
        returncode=process.returncode,
        timed_out=watch.timed_out,
        seconds=time.monotonic() - start,
        log=log_tail(log_path, log_tail_bytes),
        over_disk_quota=watch.over_quota,
        over_memory=over_memory or watch.over_memory,
        over_processes=over_processes,
    )


def over_disk_quota(sandbox: Sandbox) -> str:
    """What the files in ``sandbox.disk_paths`` exceed ("more than 2,048 MB of files"), or "".

    Counts allocated blocks and entries without following symbolic links; stops counting at
    the first limit passed, so a folder with millions of files costs no more than the limit.
    """
    used, entries = 0, 0
    folders = list(sandbox.disk_paths)
    while folders:
        try:
            with os.scandir(folders.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entries > sandbox.max_disk_entries:
                        return f"more than {sandbox.max_disk_entries:,} files"
                    with suppress(OSError):
                        used += entry.stat(follow_symlinks=False).st_blocks * 512
                        if entry.is_dir(follow_symlinks=False):
                            folders.append(entry.path)
        except OSError:
            continue
        if used > sandbox.max_disk_bytes:
            return f"more than {sandbox.max_disk_bytes // 2**20:,} MB of files"
    return ""


def _kill_group(pgid: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def log_tail(path: Path, size: int) -> str:
    """The last ``size`` bytes of a job's log, as text ("" when it cannot be read)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def scrubbed_env(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for student code: no secrets, one thread, everything in ``home``.

    PATH holds the grader's Python first (its ``bin`` folder) and the system folders.
    """
    home = Path(home)
    env = {
        "PATH": os.pathsep.join(
            [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "HOME": str(home),
        "TMPDIR": str(home / "tmp"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONNOUSERSITE": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(home / ".config" / "matplotlib"),
        "IPYTHONDIR": str(home / ".ipython"),
        "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
        "JUPYTER_DATA_DIR": str(home / ".local" / "share" / "jupyter"),
        "JUPYTER_RUNTIME_DIR": str(home / ".local" / "share" / "jupyter" / "runtime"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "TORCH_NUM_THREADS": "1",
        "TQDM_DISABLE": "1",
    }
    env.update(extra or {})
    return env
