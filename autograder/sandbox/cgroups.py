"""Per-job control groups: memory and process limits across all of a job's processes, and a kill
that reaches every one of them. Root only; cgroup v1 and v2 (and the hybrid of both).

:func:`job_cgroup` makes one cgroup per job (a folder in each hierarchy that is needed) below
the grader's own cgroup, in ``autograder/<grader pid>-<number>``:

- memory: v2 ``memory.max`` (and ``memory.swap.max`` 0), or v1 ``memory.limit_in_bytes`` (and
  ``memory.memsw.limit_in_bytes``, so swap is no way around it); a job over the limit is stopped
  by the kernel's OOM killer inside the job only;
- processes: ``pids.max`` (threads count too);
- kill: v2 ``cgroup.kill``; on a v1-only machine the v1 freezer (freeze, kill, thaw), else
  killing the listed processes until none is left.

The job's launcher writes its own process id into :attr:`JobCgroup.procs_files` before it runs
anything untrusted (:func:`autograder.sandbox.isolate.join_cgroups`), so every process the job
starts is in the cgroup. Without a usable hierarchy :func:`job_cgroup` returns None and the
sandbox falls back to per-process limits (:func:`cgroup_support` says which).
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

GROUP_FOLDER = "autograder"
_counter = itertools.count()


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy: where the grader makes its cgroups in it."""

    version: int
    base: Path
    """``<mount point>/<the grader's own cgroup>/autograder``."""
    controllers: frozenset[str]


def _own_paths() -> dict[str, str]:
    """``{controller or "" (v2): path of this process's cgroup}`` from /proc/self/cgroup."""
    paths = {}
    with open("/proc/self/cgroup") as handle:
        for line in handle:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(",") if names else [""]:
                paths[name.removeprefix("name=")] = path
    return paths


def _mounts() -> list[tuple[str, str, set[str]]]:
    """``(fstype, mount point, super options)`` of every cgroup mount."""
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            left, right = line.rstrip("\n").split(" - ", 1)
            fstype, _, options = right.split(" ", 2)
            if fstype in ("cgroup", "cgroup2"):
                point = left.split(" ")[4].encode().decode("unicode_escape")
                found.append((fstype, point, set(options.split(","))))
    return found


def hierarchies() -> list[Hierarchy]:
    """Candidate places for the grader's cgroups, best first.

    Each v1 hierarchy with the memory, pids or freezer controller gives one (below the grader's
    own cgroup there); a v2 hierarchy gives two: below the grader's own cgroup, and at its root
    (where v2's rule that only leaves hold processes cannot get in the way).
    """
    own = _own_paths()
    found = []
    for fstype, point, options in _mounts():
        if fstype == "cgroup2":
            listed = Path(point) / "cgroup.controllers"
            controllers = frozenset(listed.read_text().split()) | {"kill"}
            places = [own.get("", "/"), "/"]
            version = 2
        else:
            controllers = frozenset(options & {"memory", "pids", "freezer"})
            if not controllers:
                continue
            places = [own.get(sorted(controllers)[0], "/")]
            version = 1
        for place in dict.fromkeys(places):
            base = Path(point) / place.lstrip("/") / GROUP_FOLDER
            if os.access(base.parent, os.W_OK):
                found.append(Hierarchy(version, base, controllers))
    return found


@dataclass
class CgroupPlan:
    """Which hierarchy provides the memory limit, the process limit and the kill."""

    memory: Hierarchy | None = None
    pids: Hierarchy | None = None
    kill: Hierarchy | None = None

    def used(self) -> list[Hierarchy]:
        return list(dict.fromkeys(h for h in (self.memory, self.pids, self.kill) if h))

    def describe(self) -> str:
        """E.g. "memory limit (cgroup v1), process limit (cgroup v1), kill (cgroup v2)"."""
        return ", ".join(
            f"{what} (cgroup v{h.version})" if h else f"no {what}"
            for what, h in (
                ("memory limit", self.memory),
                ("process limit", self.pids),
                ("kill", self.kill),
            )
        )


def _enable(hierarchy: Hierarchy, controllers: set[str]) -> bool:
    """v2: make ``hierarchy.base`` and enable ``controllers`` for its children; True if done."""
    wanted = sorted(controllers - {"kill"})
    try:
        hierarchy.base.mkdir(exist_ok=True)
        for folder in (hierarchy.base.parent, hierarchy.base):
            control = folder / "cgroup.subtree_control"
            missing = [c for c in wanted if c not in control.read_text().split()]
            if missing:
                control.write_text(" ".join(f"+{c}" for c in missing))
    except OSError:
        return False
    return True


def plan(candidates: list[Hierarchy] | None = None) -> CgroupPlan:
    """Choose, for each of memory, pids and kill, the first candidate that can provide it.

    v2 comes first (one folder does everything); on v1 the freezer provides the kill.
    """
    candidates = hierarchies() if candidates is None else candidates
    chosen = CgroupPlan()
    for hierarchy in sorted(candidates, key=lambda h: -h.version):
        for what in ("memory", "pids", "kill"):
            provides = what in hierarchy.controllers or (
                what == "kill" and "freezer" in hierarchy.controllers
            )
            if getattr(chosen, what) is None and provides:
                if hierarchy.version == 1 or _enable(hierarchy, {what}):
                    setattr(chosen, what, hierarchy)
    return chosen


@dataclass
class JobCgroup:
    """The cgroup folders of one job (see the module docstring), one per hierarchy used."""

    plan: CgroupPlan
    folders: dict[Hierarchy, Path] = field(default_factory=dict)

    @property
    def procs_files(self) -> list[str]:
        """The files the job's launcher writes its process id into."""
        return [str(folder / "cgroup.procs") for folder in self.folders.values()]

    def processes(self) -> set[int]:
        """Process ids in the job's cgroups."""
        pids: set[int] = set()
        for folder in self.folders.values():
            try:
                pids |= {int(p) for p in (folder / "cgroup.procs").read_text().split()}
            except OSError:
                continue
        return pids

    def kill_all(self, timeout_s: float = 10.0) -> int:
        """Kill every process of the job and wait until none is left; returns how many there
        were. Raises ``RuntimeError`` if a process survives ``timeout_s``."""
        seen = self.processes()
        deadline = time.monotonic() + timeout_s
        while seen:
            killer = self.folders.get(self.plan.kill)
            if killer is not None and self.plan.kill.version == 2:
                (killer / "cgroup.kill").write_text("1")
            elif killer is not None:
                _freezer_kill(killer)
            else:
                for pid in self.processes():
                    _kill(pid)
            time.sleep(0.005)
            left = self.processes()
            if not left:
                break
            seen |= left
            if time.monotonic() > deadline:
                raise RuntimeError(f"Processes {sorted(left)} of a sandboxed job survived a kill.")
        return len(seen)

    def over_memory(self) -> bool:
        """Whether the kernel's OOM killer stopped a process of the job."""
        folder = self.folders.get(self.plan.memory)
        if folder is None:
            return False
        events = "memory.events" if self.plan.memory.version == 2 else "memory.oom_control"
        return _counter_in(folder / events, "oom_kill") > 0

    def over_processes(self) -> bool:
        """Whether the job tried to start more processes (or threads) than it may."""
        folder = self.folders.get(self.plan.pids)
        return folder is not None and _counter_in(folder / "pids.events", "max") > 0

    def remove(self) -> None:
        """Kill what is left and delete the folders."""
        self.kill_all()
        for folder in self.folders.values():
            for _ in range(200):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)


def _counter_in(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _freezer_kill(folder: Path) -> None:
    """Freeze the job (no process can fork), SIGKILL each of its processes, thaw (they die)."""
    state = folder / "freezer.state"
    state.write_text("FROZEN")
    for _ in range(200):
        if state.read_text().strip() == "FROZEN":
            break
        time.sleep(0.005)
    for pid in (int(p) for p in (folder / "cgroup.procs").read_text().split()):
        _kill(pid)
    state.write_text("THAWED")


def job_cgroup(
    memory_bytes: int | None, max_processes: int | None, chosen: CgroupPlan
) -> JobCgroup | None:
    """A new cgroup for one job with these limits, or None when no hierarchy is usable."""
    if not chosen.used():
        return None
    name = f"{os.getpid()}-{next(_counter)}"
    job = JobCgroup(chosen)
    try:
        for hierarchy in chosen.used():
            hierarchy.base.mkdir(exist_ok=True)
            (hierarchy.base / name).mkdir()
            job.folders[hierarchy] = hierarchy.base / name
        memory = job.folders.get(chosen.memory)
        if memory is not None and memory_bytes:
            if chosen.memory.version == 2:
                (memory / "memory.max").write_text(str(memory_bytes))
                _write_if_present(memory / "memory.swap.max", "0")
            else:
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                _write_if_present(memory / "memory.memsw.limit_in_bytes", str(memory_bytes))
        pids = job.folders.get(chosen.pids)
        if pids is not None and max_processes:
            (pids / "pids.max").write_text(str(max_processes))
    except OSError:
        job.remove()
        raise
    return job


def _write_if_present(path: Path, text: str) -> None:
    if path.exists():
        path.write_text(text)


def remove_stale(chosen: CgroupPlan, alive: Callable[[int], bool]) -> None:
    """Remove the cgroups of grader processes that are gone (killed runs), killing what is left
    in them; ``alive(pid)`` says whether a grader process still runs."""
    for hierarchy in chosen.used():
        if not hierarchy.base.is_dir():
            continue
        for folder in hierarchy.base.iterdir():
            owner = folder.name.split("-")[0]
            if folder.is_dir() and owner.isdigit() and not alive(int(owner)):
                stale = JobCgroup(CgroupPlan(kill=hierarchy if hierarchy == chosen.kill else None))
                stale.folders[hierarchy] = folder
                try:
                    stale.remove()
                except (OSError, RuntimeError):
                    continue
