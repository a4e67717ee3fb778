"""The warm parent: imports torch once, then forks one isolated child per payload.

Importing torch takes about 3 s on a small machine, longer than a whole trusted check should.
This process (started by :class:`autograder.sandbox.warm_parent.WarmParent` as
``python -I zygote.py``; trusted, it never opens a student's file itself) reads one line of
JSON (what to preload, see :func:`autograder.sandbox.worker.preload`), imports that, answers
``ready``, and then for each request line forks a child that

1. detaches from the parent's pipes (stdin from /dev/null, stdout and stderr to the request's
   log file, every other descriptor closed), so nothing it runs can talk to the grader;
2. isolates itself with :func:`autograder.sandbox.isolate.isolate`, exactly like the launcher;
3. runs the payload (:data:`autograder.sandbox.worker.PAYLOADS`) and exits with its status.

Protocol (one JSON object per line). Requests: ``{"id": N, "spec": {...}, "payload": NAME,
"args": {...}, "log": PATH}`` starts a child; ``{"kill": N}`` kills child N if it still runs.
Answers: ``{"id": N, "pid": PID}`` when child N started, ``{"id": N, "exit": CODE}`` when it
ended (it is reaped only then, so its pid cannot be reused before). End of input: every child
is killed and the process exits.
"""

import gc
import json
import os
import selectors
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # ``python -I`` leaves it out

import isolate  # noqa: E402
import worker  # noqa: E402

MAX_FD = 65536


def _send(message: dict) -> None:
    os.write(1, (json.dumps(message) + "\n").encode())


def _child(request: dict) -> None:
    """Detach, isolate and run the payload of ``request``; never returns."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for number in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGINT, signal.SIGTERM):
            signal.signal(number, signal.SIG_DFL)
        os.setsid()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        log = os.open(request["log"], flags, 0o600)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.closerange(3, MAX_FD)
        os.environ.update(request.get("env", {}))
        tempfile.tempdir = None  # chosen again from the job's TMPDIR, not the parent's
        try:
            isolate.isolate(request["spec"])
        except BaseException:
            code = isolate.ISOLATION_FAILED
            raise
        code = worker.PAYLOADS[request["payload"]](request["args"])
    except BaseException as error:
        isolate.report(error)
    finally:
        os._exit(code)


def serve() -> None:
    worker.preload(json.loads(sys.stdin.readline()))
    # What is imported now is shared with every child until written to; a collection in a
    # child would write to all of it (CPython keeps its GC state in each object): frozen
    # objects are never collected, so children copy only what they change.
    gc.collect()
    gc.freeze()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, int] = {}
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    _send({"ready": True})
    pending = b""
    while True:
        for key, _ in selector.select():
            if key.fd == wake_read:
                os.read(wake_read, 4096)
                _reap(children)
                continue
            data = os.read(0, 1 << 16)
            if not data:
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                os._exit(0)  # at once: finalizing an interpreter with torch loaded takes seconds
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                _handle(json.loads(line), children)


def _handle(request: dict, children: dict[int, int]) -> None:
    if "kill" in request:
        for pid, number in children.items():
            if number == request["kill"]:
                os.kill(pid, signal.SIGKILL)
        return
    pid = os.fork()
    if pid == 0:
        _child(request)
    children[pid] = request["id"]
    _send({"id": request["id"], "pid": pid})


def _reap(children: dict[int, int]) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        number = children.pop(pid, None)
        if number is not None:
            _send({"id": number, "exit": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve()
