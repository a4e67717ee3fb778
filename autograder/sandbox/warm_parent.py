"""The grader's side of the warm parent (:mod:`autograder.sandbox.zygote`): start it, ask it to
fork isolated payloads, wait for them with the same limits and kill as every sandboxed job.

One :class:`WarmParent` serves all threads of a grading process; it starts on first use (or
early, with :meth:`WarmParent.start`, so that torch is imported while the first notebook runs)
and stops with :meth:`WarmParent.close`. Started with ``shared=True`` it also listens on
:attr:`WarmParent.address`, and the other grading processes of the machine use it through
:meth:`WarmParent.attach` instead of importing torch and the rest once more each.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .run import (
    ISOLATION_FAILED,
    Outcome,
    Sandbox,
    SandboxError,
    Watch,
    end_job,
    isolation_spec,
    memory_watchdog,
    scrubbed_env,
    start_job,
)

ZYGOTE = Path(__file__).with_name("zygote.py")
HOME_PREFIX = "autograder-zygote-"
SOCKET_NAME = "zygote.sock"
START_TIMEOUT_S = 120
ATTACH_TIMEOUT_S = 10


class WarmParentError(RuntimeError):
    """The warm parent could not start or stopped; the grader's fault, never the student's."""


class WarmParent:
    """Client of one zygote process (see the module docstring).

    ``preload`` is what the zygote imports before forking: ``{"modules": {name: path},
    "imports": [module names]}`` (see :func:`autograder.sandbox.worker.preload`).
    """

    def __init__(self, preload: dict, shared: bool = False) -> None:
        self.preload = preload
        self.shared = shared
        self.process: subprocess.Popen | None = None
        self.connection: socket.socket | None = None
        """Set instead of :attr:`process` when attached to another process's warm parent."""
        self.pid: int | None = None
        """The zygote's process id (its ``ready`` answer says it)."""
        self.home: str | None = None
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.answers: dict[int, queue.Queue] = {}
        self.ids = itertools.count(1)
        self.failure = ""

    def start(self) -> None:
        """Start the zygote (it imports torch in the background); idempotent, and nothing to
        start when attached to a shared one."""
        with self.lock:
            if self.process is not None or self.connection is not None:
                return
            # Named after this process, so that a later run can tell it is left over
            # (autograder.grading.workspace.remove_stale_runs) if this one is killed.
            self.home = tempfile.mkdtemp(prefix=f"{HOME_PREFIX}{os.getpid()}-")
            Path(self.home, "tmp").mkdir()
            self.process = subprocess.Popen(
                [sys.executable, "-I", str(ZYGOTE)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=scrubbed_env(Path(self.home)),
                cwd=self.home,
                start_new_session=True,
            )
            config = dict(self.preload)
            if self.shared:
                config["listen"] = self.address
            self.process.stdin.write((json.dumps(config) + "\n").encode())
            self.process.stdin.flush()
            threading.Thread(target=self._read, args=(self.process.stdout,), daemon=True).start()

    @property
    def address(self) -> str | None:
        """The socket other grading processes attach to (``shared=True`` only)."""
        return str(Path(self.home, SOCKET_NAME)) if self.shared and self.home else None

    @classmethod
    def attach(cls, address: str) -> WarmParent:
        """A client of the shared warm parent listening on ``address`` (:attr:`address`);
        raises ``WarmParentError`` when it cannot be reached. Closing it ends only this
        connection (and kills the children it started)."""
        warm = cls({})
        deadline = time.monotonic() + ATTACH_TIMEOUT_S
        while True:  # its owner may have started it a moment ago: the socket comes first
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.connect(address)
                break
            except OSError as error:
                connection.close()
                if time.monotonic() > deadline:
                    raise WarmParentError(
                        f"The shared warm parent at {address} is not there ({error})."
                    ) from None
                time.sleep(0.05)
        warm.connection = connection
        reader = connection.makefile("rb")
        threading.Thread(target=warm._read, args=(reader,), daemon=True).start()
        return warm

    def _read(self, stream) -> None:
        for line in stream:
            message = json.loads(line)
            if message.get("ready"):
                self.pid = message.get("pid")
                self.ready.set()
            elif message.get("id") in self.answers:
                self.answers[message["id"]].put(message)
        self.failure = "the warm parent stopped"
        self.ready.set()
        for answers in list(self.answers.values()):
            answers.put({"exit": None})

    def _send(self, message: dict) -> None:
        line = (json.dumps(message) + "\n").encode()
        with self.lock:
            if self.connection is not None:
                try:
                    self.connection.sendall(line)
                except OSError:
                    raise WarmParentError("The shared warm parent is not running.") from None
                return
            if self.process is None or self.process.poll() is not None:
                raise WarmParentError("The warm parent is not running.")
            self.process.stdin.write(line)
            self.process.stdin.flush()

    def run(
        self, payload: str, args: dict, sandbox: Sandbox, cwd: Path, log: Path, env: dict
    ) -> Outcome:
        """Fork ``payload(args)`` isolated by ``sandbox`` in ``cwd``; wait for it and return
        what happened. The job is killed (its cgroup, or its process group) when it ends, runs
        out of time, over its disk quota or (without a memory cgroup) over its memory; the
        warm parent's own memory, which the child shares when it starts, is not charged."""
        self.start()
        if not self.ready.wait(START_TIMEOUT_S) or self.failure:
            raise WarmParentError(f"The warm parent did not start ({self.failure or 'timeout'}).")
        number = next(self.ids)
        answers: queue.Queue = queue.Queue()
        self.answers[number] = answers
        job = start_job(sandbox)
        start = time.monotonic()
        watch = Watch(sandbox, start)
        code = None
        try:
            spec = isolation_spec(sandbox, cwd, job)
            self._send(
                {
                    "id": number,
                    "spec": spec,
                    "payload": payload,
                    "args": args,
                    "log": str(log),
                    "env": env,
                }
            )
            while True:
                try:
                    message = answers.get(timeout=min(0.5, watch.wait_s()))
                except queue.Empty:
                    if watch.stop():
                        break
                    continue
                if "pid" in message and watch.watchdog is None:
                    watch.watchdog = memory_watchdog(sandbox, message["pid"], self.pid)
                if "exit" in message:
                    code = message["exit"]
                    break
        finally:
            over_memory, over_processes = end_job(job, lambda: self._kill(number))
            if code is None and not self.failure:
                code = self._wait_exit(answers)
            self.answers.pop(number, None)
        if code is None:
            raise WarmParentError(f"The warm parent stopped while it ran a {payload}.")
        if code == ISOLATION_FAILED:
            raise SandboxError(f"The sandbox of a {payload} could not start (see {log}).")
        return Outcome(
            code,
            watch.timed_out,
            time.monotonic() - start,
            "",
            watch.over_quota,
            over_memory or watch.over_memory,
            over_processes,
        )

    def _kill(self, number: int) -> None:
        try:
            self._send({"kill": number})
        except WarmParentError:
            pass

    def _wait_exit(self, answers: queue.Queue) -> int | None:
        try:
            while True:
                message = answers.get(timeout=30)
                if "exit" in message:
                    return message["exit"]
        except queue.Empty:
            return None

    def close(self) -> None:
        """Stop the zygote (its children are killed with it), or end this connection to a
        shared one (the children it started are killed)."""
        with self.lock:
            if self.connection is not None:
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)
                self.connection.close()
                self.connection = None
                self.failure = "closed"
                return
            process, self.process = self.process, None
            if process is not None:
                process.stdin.close()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if self.home:
                shutil.rmtree(self.home, ignore_errors=True)
                self.home = None
            self.ready.clear()
            self.failure = ""
