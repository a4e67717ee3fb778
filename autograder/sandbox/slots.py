"""Sandbox user ids: one per parallel job, reserved for one grader run, clean before each use.

When the grader runs as root, every job runs under a user id of its own slot,
``SANDBOX_UID_BASE + slot`` (no passwd entry needed; keep that range free of real users on a
grading machine). A slot is reserved by an exclusive lock on a file in ``/run`` (or the temporary
folder), so two grader runs on one machine never share one. Before a slot's user id runs the
next job, :func:`clear_user` kills every process of that user id anywhere on the machine and
checks that none is left; a slot that cannot be cleared is not used.
"""

from __future__ import annotations

import fcntl
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SANDBOX_UID_BASE = 61_000
MAX_SLOTS = 64


def running_as_root() -> bool:
    return os.geteuid() == 0


def _lock_folder() -> Path:
    run = Path("/run")
    return run if os.access(run, os.W_OK) else Path(tempfile.gettempdir())


def _user_ids(pid: int) -> set[int]:
    """Real, effective, saved and file-system user ids of process ``pid``; empty if it is gone
    or a zombie (dead, waiting for its parent to collect its status: nothing left to kill)."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("State:") and line.split()[1] in ("Z", "X"):
                    return set()
                if line.startswith("Uid:"):
                    return {int(value) for value in line.split()[1:]}
    except (OSError, ValueError):
        pass
    return set()


def processes_of(uid: int) -> list[int]:
    """Process ids on this machine that run with ``uid`` among their user ids."""
    return [
        int(e.name)
        for e in os.scandir("/proc")
        if e.name.isdigit() and uid in _user_ids(int(e.name))
    ]


def clear_user(uid: int, timeout_s: float = 10.0) -> int:
    """Kill every process of ``uid`` and wait until there is none; returns how many there were.

    Each process is signalled through a pidfd opened while it still showed ``uid``, so a pid that
    is reused in between is never hit. Raises ``RuntimeError`` if one survives ``timeout_s``.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout_s
    while left := processes_of(uid):
        for pid in left:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue
            try:
                if uid in _user_ids(pid):
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    killed.add(pid)
            except OSError:
                pass
            finally:
                os.close(pidfd)
        if time.monotonic() > deadline:
            raise RuntimeError(f"Processes {left} of sandbox user {uid} cannot be killed.")
        time.sleep(0.01)
    return len(killed)


@contextmanager
def reserved_uids(count: int) -> Iterator[list[int | None]]:
    """Reserve ``count`` sandbox user ids for this process; yields them (``None`` without root).

    Every reserved user id is cleared (:func:`clear_user`) when reserved and again when released.
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
            uid = SANDBOX_UID_BASE + slot
            path = _lock_folder() / f"autograder-uid-{uid}.lock"
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(handle)
                continue
            handles.append(handle)
            clear_user(uid)
            uids.append(uid)
        if len(uids) < count:
            raise RuntimeError(f"Only {len(uids)} of {count} sandbox user ids are free.")
        yield uids
    finally:
        for uid in uids:
            if uid is not None:
                clear_user(uid)
        for handle in handles:
            os.close(handle)
