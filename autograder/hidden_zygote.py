"""A warm parent for hidden-check workers: imports torch once, forks one sandboxed child per model.

Importing torch and ``torch.export``'s loader takes about 3 s on a small machine, longer than
the whole check should. This process (started by :mod:`autograder.hidden_check` as
``python -I hidden_zygote.py``, trusted, never touching student files itself) imports them once
and then, for each request line on stdin, forks a child that isolates itself exactly like
:mod:`autograder.sandbox_exec` (limits, new network and mount namespaces, hidden paths covered,
the sandbox user id, ``no_new_privs``, a parent-death signal) before it opens the student's
model, and runs :func:`hidden_worker.run`. The zygote answers each request with the child's
process id (``{"pid": N}``); the child is its own process group, and children are reaped
automatically (``SIGCHLD`` ignored).

Request (one JSON line)::

    {"spec": <sandbox spec as for sandbox_exec>, "args": [rules, model, images, logits, result],
     "log": "<file for the child's stdout and stderr>"}
"""

import json
import os
import signal
import sys

sys.path.append(os.path.dirname(os.path.abspath(__file__)))  # ``python -I`` leaves it out

import hidden_worker  # noqa: E402
import numpy  # noqa: E402, F401  (imported here so that children start warm)
import sandbox_exec  # noqa: E402
import torch  # noqa: E402
import torch.export.pt2_archive._package  # noqa: E402, F401

ADDRESS_SPACE_HEADROOM = 2**30
"""A child's address-space limit is at least its inherited size plus this."""


def _address_space() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def child(request: dict) -> None:
    """Isolate this forked process, run the check and exit (never returns)."""
    os.setsid()
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    spec = request["spec"]
    memory = max(spec["memory_bytes"], _address_space() + ADDRESS_SPACE_HEADROOM)
    sandbox_exec.set_limits({**spec, "memory_bytes": memory})
    if sandbox_exec.enter_namespaces(os.geteuid() == 0):
        sandbox_exec.private_scratch(spec["keep_paths"])
        sandbox_exec.hide_paths(spec["hidden_paths"])
        if spec["uid"] is not None:
            sandbox_exec.reveal_paths(spec["reveal_paths"])
    if spec["uid"] is not None:
        sandbox_exec.drop_privileges(spec["uid"])
    libc = sandbox_exec.libc
    sandbox_exec._check(libc.prctl(sandbox_exec.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl")
    sandbox_exec._check(libc.prctl(sandbox_exec.PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    os.chdir(spec["cwd"])
    rules, model, images, logits, result_path = request["args"]
    result = hidden_worker.run(rules, model, images, logits)
    with open(result_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def serve() -> None:
    torch.set_num_threads(1)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    print("ready", flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child(request)
                code = 0
            except BaseException as error:
                print(f"{type(error).__name__}: {error}", file=sys.stderr, flush=True)
            finally:
                os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)


if __name__ == "__main__":
    serve()
