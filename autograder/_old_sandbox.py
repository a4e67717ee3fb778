"""Run untrusted student code in a subprocess with limits: the sandbox of ``grade``.

A sandboxed command runs

- in its own session and process group (killed as a whole when it runs too long);
- with resource limits: address space (``RLIMIT_AS``), file size, open files, processes and no
  core dumps, and a disk quota on its work folders (:attr:`Sandbox.disk_paths`, measured every
  half second: the command is stopped when its files there take more than
  :attr:`Sandbox.max_disk_bytes` or number more than :attr:`Sandbox.max_disk_entries`);
- in a new network namespace with only a loopback interface (no network; the Jupyter kernel
  still talks to nbgrader over 127.0.0.1 inside it);
- in a new mount namespace in which :attr:`Sandbox.hidden_paths` (the real course directory, the
  data folder with the hidden labels, the source exercises with their solutions) are covered by
  empty read-only folders, and ``/tmp``, ``/var/tmp`` and ``/dev/shm`` are private and thrown
  away at the end (only its own work folders are bound back into ``/tmp``);
- when the grader runs as root: as an unprivileged user id of its own (one per parallel job,
  see :data:`SANDBOX_UID_BASE`), with ``no_new_privs`` set, so it cannot write ``course/``, read
  files readable by root only, or touch another job's processes; after the command ends every
  process left behind by that user id is killed.

Without root the sandbox degrades to process group, limits and (where unprivileged user
namespaces are allowed) the network and mount namespaces, and :func:`isolation_warning` says so
once. The environment is always scrubbed: only what :func:`scrubbed_env` builds is passed on.

The isolation steps run in :mod:`autograder.sandbox_exec`, a tiny launcher script started by
``python -I`` that applies them and then ``exec``s the command (no ``preexec_fn``, which is not
safe with the threads of ``grade --jobs``).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

LAUNCHER = Path(__file__).with_name("sandbox_exec.py")
DISK_POLL_S = 0.5  # how often the disk quota is measured

SANDBOX_UID_BASE = 61_000
"""Jobs run as user ids ``SANDBOX_UID_BASE + slot`` (no passwd entry needed); keep this range
free of real users on a grading machine."""

MAX_SLOTS = 64


def running_as_root() -> bool:
    return os.geteuid() == 0


def sandbox_uid(slot: int) -> int | None:
    """The user id of sandbox slot ``slot``, or ``None`` when not running as root."""
    if not running_as_root():
        return None
    if not 0 <= slot < MAX_SLOTS:
        raise ValueError(f"Sandbox slot {slot} is out of range 0..{MAX_SLOTS - 1}.")
    return SANDBOX_UID_BASE + slot


@contextmanager
def reserved_uids(count: int) -> Iterator[list[int | None]]:
    """Reserve ``count`` sandbox user ids for this process; yields them (``None`` without root).

    A user id is reserved by an exclusive lock on ``<tmp>/autograder-uid-<uid>.lock``, so two
    grade runs on one machine never share one; processes left by an earlier, killed run of the
    same id are killed before it is used.
    """
    if not running_as_root():
        yield [None] * count
        return
    handles: list[int] = []
    uids: list[int | None] = []
    try:
        for slot in range(MAX_SLOTS):
            if len(uids) == count:
                break
            uid = sandbox_uid(slot)
            path = Path(tempfile.gettempdir()) / f"autograder-uid-{uid}.lock"
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            handles.append(handle)
            kill_user_processes(uid)
            uids.append(uid)
        if len(uids) < count:
            raise RuntimeError(f"Only {len(uids)} of {count} sandbox user ids are free.")
        yield uids
    finally:
        for handle in handles:
            os.close(handle)


def isolation_warning() -> str | None:
    """One sentence about weaker isolation when not running as root, else ``None``."""
    if running_as_root():
        return None
    return (
        "Warning: grading is not running as root, so student code runs as your own user "
        "(resource limits and, where allowed, network isolation still apply); run grade as root "
        "on a machine used only for grading for full isolation."
    )


def read_untrusted_json(path: Path, max_bytes: int) -> dict | None:
    """A JSON object from a file untrusted code may have written, or None.

    None when the file is missing, a link, larger than ``max_bytes``, not JSON or not an object.
    """
    if path.is_symlink() or not path.is_file() or path.stat().st_size > max_bytes:
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True)
class Sandbox:
    """How to run one untrusted command.

    Attributes:
    - timeout_s: wall-clock limit; the whole process group is killed after it.
    - memory_bytes: ``RLIMIT_AS`` of every process (virtual memory, so leave room for torch).
    - uid: run as this user (and group) id; ``None`` keeps the current user.
    - hidden_paths: folders covered by an empty read-only folder inside the sandbox.
    - keep_paths: folders under ``/tmp`` that stay visible although the sandbox gets its own
      empty ``/tmp`` (the working folder ``cwd`` always does).
    - max_file_bytes: ``RLIMIT_FSIZE``, the largest file the command may write.
    - max_processes: ``RLIMIT_NPROC`` for the sandbox user (only enforced for non-root users).
    - disk_paths: folders whose contents count against the disk quota (none: no quota);
      max_disk_bytes (allocated blocks, so sparse files count what they use) and
      max_disk_entries (files and folders) are the quota.
    """

    timeout_s: float
    memory_bytes: int
    uid: int | None = None
    hidden_paths: tuple[str, ...] = ()
    keep_paths: tuple[str, ...] = ()
    max_file_bytes: int = 512 * 2**20
    max_processes: int = 512
    max_open_files: int = 1024
    disk_paths: tuple[str, ...] = ()
    max_disk_bytes: int = 2 * 2**30
    max_disk_entries: int = 50_000


@dataclass
class Outcome:
    """What happened to a sandboxed command.

    ``returncode`` is the exit status (negative: killed by that signal); ``timed_out`` is True
    when the wall-clock limit killed it; ``over_disk_quota`` says what it wrote when the disk
    quota stopped it (e.g. "more than 2,048 MB of files"), else ""; ``log`` is the tail of its
    stdout and stderr.
    """

    returncode: int
    timed_out: bool
    seconds: float
    log: str = ""
    over_disk_quota: str = ""


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


def _runtime_paths() -> list[str]:
    """What the sandboxed Python needs to run: its environment and these launcher scripts."""
    return [sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parent)]


def sandbox_spec(sandbox: Sandbox, cwd: Path) -> dict:
    """The JSON-able isolation settings that :mod:`autograder.sandbox_exec` applies."""
    return {
        "memory_bytes": int(sandbox.memory_bytes),
        "max_file_bytes": int(sandbox.max_file_bytes),
        "max_processes": int(sandbox.max_processes),
        "max_open_files": int(sandbox.max_open_files),
        "uid": sandbox.uid,
        "hidden_paths": list(sandbox.hidden_paths),
        "keep_paths": [str(cwd), *sandbox.keep_paths, *_runtime_paths()],
        "reveal_paths": [sys.base_prefix, sys.prefix],
        "cwd": str(cwd),
    }


def run_sandboxed(
    argv: list[str],
    sandbox: Sandbox,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    log_tail_bytes: int = 20_000,
) -> Outcome:
    """Run ``argv`` under ``sandbox`` in ``cwd`` with exactly ``env``; wait for it.

    stdout and stderr go to ``log_path`` (a file the grader owns, capped by ``max_file_bytes``).
    On timeout the process group is killed; afterwards, when a sandbox uid is used, every process
    of that uid is killed too, so nothing the command started outlives it.
    """
    spec = sandbox_spec(sandbox, cwd)
    command = [sys.executable, "-I", str(LAUNCHER), json.dumps(spec), "--", *argv]
    start = time.monotonic()
    deadline = start + sandbox.timeout_s
    timed_out, over_quota = False, ""
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            cwd=str(cwd),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while process.returncode is None:
                left = deadline - time.monotonic()
                try:
                    process.wait(timeout=min(left, DISK_POLL_S) if sandbox.disk_paths else left)
                except subprocess.TimeoutExpired:
                    timed_out = time.monotonic() >= deadline
                    over_quota = "" if timed_out else over_disk_quota(sandbox)
                    if timed_out or over_quota:
                        break
        finally:
            if process.returncode is None:
                _kill_group(process.pid)
                process.wait()
    _kill_group(process.pid)
    if sandbox.uid is not None:
        kill_user_processes(sandbox.uid)
    seconds = time.monotonic() - start
    log_tail = _tail(log_path, log_tail_bytes)
    return Outcome(process.returncode, timed_out, seconds, log_tail, over_quota)


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
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def kill_user_processes(uid: int, attempts: int = 20) -> None:
    """Kill every process running as ``uid`` (root only): ``kill -KILL -1`` run as that user."""
    if not running_as_root():
        return
    for _ in range(attempts):
        done = subprocess.run(
            ["/bin/kill", "-s", "KILL", "--", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
        )
        if done.returncode != 0:
            return
        time.sleep(0.05)


def _tail(path: Path, size: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - size))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
