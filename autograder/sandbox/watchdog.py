"""The memory limit of a job where no memory cgroup limits it: a watchdog of what it uses.

Without a memory cgroup (an ordinary user on a laptop, a container that delegates none) the
kernel cannot limit a job's memory as a whole, and a per-process address-space limit
(``RLIMIT_AS``) is the wrong measure: torch reserves gigabytes of address space for its
libraries, allocator arenas and thread stacks that it never uses, so honest notebooks died of
it while a job of many small processes was not limited at all. So the grader measures what the
job's processes really hold in memory and kills the job when that is over its limit:

- the job's processes: every descendant of the job's first process (the launcher, or the warm
  parent's child), found in ``/proc`` at each poll. In its PID namespace every orphan is
  adopted by the namespace's init, so no process of the job gets out of that tree; without
  namespaces the job's session and process group are added (a process that starts a new
  session and is orphaned can then escape the watchdog, as it escapes the process-group kill);
- what they hold: their anonymous and shared-memory pages (what only swap could free; files'
  pages, torch's libraries among them, are the page cache's), each page shared among the
  job's processes counted once (``Pss_Anon + Pss_Shmem`` of ``/proc/PID/smaps_rollup``), or
  the resident ones of ``/proc/PID/status`` where smaps cannot be read (an upper bound, so
  hiding a process from smaps never helps). The namespace's init is the grader's own code,
  waiting; it is left out. While the resident size of the job (``statm``, cheap) is below the
  limit, smaps is not read at all;
- a job forked from the warm parent starts sharing the warm parent's pages (torch, imported
  once), which the job must not be charged for: the warm parent (``shares_with``) is counted
  with the job, and its anonymous resident size when the job starts is subtracted. Pages
  only the two share then count once, as they should; pages a third process shares too
  (another job forked at the same time) count less, never more;
- how often: every :data:`POLL_S` seconds. A job that allocates faster than that can pass its
  limit for that long; the kernel's own OOM killer is the last resort, as for any process.
"""

from __future__ import annotations

import os
import signal
from contextlib import suppress

POLL_S = 0.2
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _stat(pid: str) -> tuple[int, int, int] | None:
    """``(parent pid, process group, session)`` of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    if len(fields) < 4 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[1]), int(fields[2]), int(fields[3])


def _resident_bytes(pid: int) -> int:
    """Resident size (``/proc/PID/statm``, readable for every process): an upper bound."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


def _fields(path: str, names: tuple[bytes, ...]) -> int | None:
    """The sum of the ``name: N kB`` lines of a /proc file, or None if it cannot be read."""
    try:
        with open(path, "rb") as handle:
            found = [line.split()[1] for line in handle if line.split(b":")[0] in names]
    except (OSError, IndexError):
        return None
    return sum(int(value) for value in found) * 1024 if len(found) == len(names) else None


def _anonymous_resident_bytes(pid: int) -> int:
    """Anonymous and shared-memory pages the process has resident (``/proc/PID/status``)."""
    found = _fields(f"/proc/{pid}/status", (b"RssAnon", b"RssShmem"))
    return _resident_bytes(pid) if found is None else found


def _proportional_bytes(pid: int) -> int:
    """Proportional anonymous and shared-memory pages (``Pss_Anon + Pss_Shmem`` of smaps), or
    the resident ones when smaps cannot be read."""
    found = _fields(f"/proc/{pid}/smaps_rollup", (b"Pss_Anon", b"Pss_Shmem"))
    return _anonymous_resident_bytes(pid) if found is None else found


class MemoryWatchdog:
    """Watches the processes of one job (see the module docstring).

    ``root_pid`` is the job's first process; ``namespaces``: whether the job runs in its own
    PID namespace (then the root's child is the namespace's init, left out of the sum).
    """

    def __init__(
        self, root_pid: int, limit_bytes: int, namespaces: bool, shares_with: int | None = None
    ) -> None:
        self.root_pid = root_pid
        self.limit_bytes = limit_bytes
        self.namespaces = namespaces
        self.shares_with = shares_with
        self.baseline_bytes = _anonymous_resident_bytes(shares_with) if shares_with else 0
        self.init_pid: int | None = None
        self.peak_bytes = 0

    def processes(self) -> list[int]:
        """The job's processes now (its root first)."""
        table = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                found = _stat(name)
                if found is not None:
                    table[int(name)] = found
        if self.root_pid not in table:
            return []
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in table.items():
            children.setdefault(parent, []).append(pid)
        job, queue = [], [self.root_pid]
        seen = set(queue)
        if not self.namespaces:
            extra = {
                pid
                for pid, (_, group, session) in table.items()
                if self.root_pid in (group, session)
            }
            queue += sorted(extra - seen)
            seen |= extra
        while queue:
            pid = queue.pop(0)
            job.append(pid)
            for child in children.get(pid, []):
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        if self.namespaces and self.init_pid is None:
            first = children.get(self.root_pid, [])
            self.init_pid = first[0] if len(first) == 1 else None
        return job

    def used_bytes(self) -> int:
        """What the job's processes hold in memory now (see the module docstring)."""
        pids = [p for p in self.processes() if p != self.init_pid]
        resident = sum(_resident_bytes(p) for p in pids)
        if resident <= self.limit_bytes:
            used = resident
        else:
            shared = [self.shares_with] if self.shares_with else []
            used = sum(_proportional_bytes(p) for p in pids + shared) - self.baseline_bytes
        self.peak_bytes = max(self.peak_bytes, used)
        return used

    def over(self) -> bool:
        """Whether the job holds more memory than its limit."""
        return self.used_bytes() > self.limit_bytes

    def kill(self) -> None:
        """SIGKILL every process of the job, each through a pidfd opened while it still was
        one (so a reused pid is never hit); the caller's own kill follows."""
        pidfds = {}
        for pid in self.processes():
            with suppress(OSError):
                pidfds[pid] = os.pidfd_open(pid)
        still = set(self.processes())
        for pid, pidfd in pidfds.items():
            with suppress(OSError):
                if pid in still:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            os.close(pidfd)
