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
Answers: ``{"ready": true, "pid": PID}`` once the imports are done, ``{"id": N, "pid": PID}``
when child N started, ``{"id": N, "exit": CODE}`` when it ended (it is reaped only then, so its
pid cannot be reused before).

Channels: the owner talks over stdin and stdout; end of stdin kills every child and ends the
process. With ``"listen": PATH`` in the first line, the other grading workers of the machine
connect to the Unix socket PATH (in the owner's private folder; a peer of another user id is
turned away) and talk the same protocol, ids counted per connection; when a connection ends,
its children are killed and the others go on.
"""

import gc
import json
import os
import selectors
import signal
import socket
import struct
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # ``python -I`` leaves it out

import isolate  # noqa: E402
import worker  # noqa: E402

MAX_FD = 65536


class _Channel:
    """One client: where its requests come from and its answers go, its unread bytes."""

    def __init__(self, read_fd: int, write_fd: int, connection: socket.socket | None = None):
        self.read_fd, self.write_fd, self.connection = read_fd, write_fd, connection
        self.pending = b""
        self.open = True

    def send(self, message: dict) -> None:
        if not self.open:
            return
        try:
            os.write(self.write_fd, (json.dumps(message) + "\n").encode())
        except OSError:  # the client is gone: its end of file follows
            self.open = False


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
    config = json.loads(sys.stdin.readline())
    listener = None
    if config.get("listen"):  # at once: a client's connection waits until the imports are done
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(config["listen"])
        os.chmod(config["listen"], 0o600)
        listener.listen(64)
    worker.preload(config)
    # What is imported now is shared with every child until written to; a collection in a
    # child would write to all of it (CPython keeps its GC state in each object): frozen
    # objects are never collected, so children copy only what they change.
    gc.collect()
    gc.freeze()
    _into_huge_pages()
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, tuple[_Channel, int]] = {}
    selector = selectors.DefaultSelector()
    owner = _Channel(0, 1)
    selector.register(0, selectors.EVENT_READ, owner)
    selector.register(wake_read, selectors.EVENT_READ, "wake")
    if listener is not None:
        selector.register(listener, selectors.EVENT_READ, listener)
    owner.send({"ready": True, "pid": os.getpid()})
    while True:
        for key, _ in selector.select():
            if key.data == "wake":
                os.read(wake_read, 4096)
                _reap(children)
            elif isinstance(key.data, socket.socket):
                _accept(key.data, selector)
            else:
                _receive(key.data, owner, children, selector)


MADV_COLLAPSE = 25
HUGE_PAGE = 2 << 20


def _into_huge_pages() -> None:
    """Move this process's private memory (about 400 MB after the imports) into 2 MB pages, as
    far as the kernel can (``MADV_COLLAPSE``, Linux 6.1; best effort, else nothing changes):
    each fork then copies and each exit drops one entry per 2 MB instead of 512, about 23 ms
    less per process; a child writing into one still copies only the 4 KB it writes."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    with open("/proc/self/maps") as maps:
        regions = [line.split() for line in maps]
    for fields in regions:
        start, end = (int(x, 16) for x in fields[0].split("-"))
        named = fields[5] if len(fields) > 5 else ""
        if fields[1][:2] != "rw" or fields[1][3] != "p" or named not in ("", "[heap]"):
            continue
        first, last = -(-start // HUGE_PAGE) * HUGE_PAGE, end // HUGE_PAGE * HUGE_PAGE
        if last > first:
            libc.madvise(first, last - first, MADV_COLLAPSE)


def _accept(listener: socket.socket, selector: selectors.BaseSelector) -> None:
    connection, _ = listener.accept()
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _, uid, _ = struct.unpack("3i", credentials)
    if uid != os.geteuid():  # only the grader's own processes fork from here
        connection.close()
        return
    channel = _Channel(connection.fileno(), connection.fileno(), connection)
    selector.register(connection, selectors.EVENT_READ, channel)
    channel.send({"ready": True, "pid": os.getpid()})


def _receive(channel: _Channel, owner: _Channel, children: dict, selector) -> None:
    try:
        data = os.read(channel.read_fd, 1 << 16)
    except OSError:
        data = b""
    if not data:
        everyone = channel is owner
        mine = [pid for pid, (holder, _) in children.items() if everyone or holder is channel]
        for pid in mine:
            os.kill(pid, signal.SIGKILL)
        if channel is owner:
            os._exit(0)  # at once: finalizing an interpreter with torch loaded takes seconds
        channel.open = False
        selector.unregister(channel.connection)
        channel.connection.close()
        return
    channel.pending += data
    while b"\n" in channel.pending:
        line, channel.pending = channel.pending.split(b"\n", 1)
        _handle(json.loads(line), channel, children)


def _handle(request: dict, channel: _Channel, children: dict) -> None:
    if "kill" in request:
        for pid, (holder, number) in children.items():
            if holder is channel and number == request["kill"]:
                os.kill(pid, signal.SIGKILL)
        return
    pid = os.fork()
    if pid == 0:
        _child(request)
    children[pid] = (channel, request["id"])
    channel.send({"id": request["id"], "pid": pid})


def _reap(children: dict) -> None:
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            return
        holder = children.pop(pid, None)
        if holder is not None:
            channel, number = holder
            channel.send({"id": number, "exit": os.waitstatus_to_exitcode(status)})


if __name__ == "__main__":
    serve()
