"""The trust boundary of the grader: everything a student wrote runs behind it.

- :mod:`.isolate`: the one isolation routine (namespaces, a read-only world, limits, the sandbox
  user id), used by the launcher and by the warm parent's children alike;
- :mod:`.run`: :class:`Sandbox` settings, :func:`run_sandboxed` for a command, the job's cgroup
  and kill, :func:`isolation_warning` for what this machine cannot isolate;
- :mod:`.cgroups`: per-job memory and process limits and the kill (cgroup v1 and v2);
- :mod:`.watchdog`: the memory limit where no cgroup gives one (what the job's processes use);
- :mod:`.slots`: the sandbox user ids and the check that none of their processes is left;
- :mod:`.zygote`, :mod:`.warm_parent`, :mod:`.worker`: the warm parent that forks isolated
  payloads (a probe of the student's modules, or the handed-in model on images);
- :mod:`.untrusted`: reading what a sandbox wrote, as data only.
"""

from .run import (
    Outcome,
    Sandbox,
    SandboxError,
    isolation_warning,
    log_tail,
    over_disk_quota,
    run_sandboxed,
    scrubbed_env,
    support,
)
from .slots import MAX_SLOTS, SANDBOX_UID_BASE, clear_user, processes_of, reserved_uids
from .warm_parent import WarmParent, WarmParentError

__all__ = [
    "MAX_SLOTS",
    "SANDBOX_UID_BASE",
    "Outcome",
    "Sandbox",
    "SandboxError",
    "WarmParent",
    "WarmParentError",
    "clear_user",
    "isolation_warning",
    "log_tail",
    "over_disk_quota",
    "processes_of",
    "reserved_uids",
    "run_sandboxed",
    "scrubbed_env",
    "support",
]
