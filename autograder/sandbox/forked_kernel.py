"""A Jupyter kernel forked from the sandboxed notebook run instead of started as a new Python.

A kernel started the usual way is a new interpreter that imports ipykernel, and the notebook's
first cell then imports torch and matplotlib: about 4 s of CPU per submission before anything of
the student's runs. The notebook run for the feedback (the ``notebook`` payload of
:mod:`.worker`) is itself forked from the warm parent, which imported all of that once; its
kernel is forked from it in turn (:class:`ForkedKernelManager`, the kernel manager class of
nbgrader's ``Execute`` in that process), so it starts with those imports done. It is inside
the same sandbox (namespaces, user id, cgroup, limits) as the process that forks it: nothing
here widens what the student's code can reach.

jupyter_client documents :meth:`~jupyter_client.manager.AsyncKernelManager._async_launch_kernel`
as the place to launch kernels differently; the provisioner's ``process`` is a
:class:`ForkedProcess`, which answers the ``Popen`` calls the provisioner makes.
"""

import asyncio
import os
import signal
import sys
import time

import isolate  # the sandbox folder is on the path here, as in the zygote
from jupyter_client.manager import AsyncKernelManager


class ForkedProcess:
    """The ``subprocess.Popen`` calls jupyter_client's provisioner makes, for a forked child."""

    stdin = stdout = stderr = None

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode = None

    def poll(self):
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.returncode = -signal.SIGKILL
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"kernel {self.pid} still runs")
            time.sleep(0.02)
        return self.returncode

    def send_signal(self, number: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, number)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkedKernelManager(AsyncKernelManager):
    """Starts the kernel by forking this (pre-imported, sandboxed) process."""

    async def _async_launch_kernel(self, kernel_cmd, **kw):
        provisioner = self.provisioner
        pid = os.fork()
        if pid == 0:
            _run_kernel(kernel_cmd, kw.get("env") or dict(os.environ), kw.get("cwd"))
        try:
            os.setpgid(pid, pid)  # its own group: the provisioner's kill must not reach us
        except OSError:  # the child did it first
            pass
        provisioner.process = ForkedProcess(pid)
        provisioner.pid, provisioner.pgid = pid, pid
        provisioner.cwd = kw.get("cwd") or os.getcwd()
        self._reconcile_connection_info(provisioner.connection_info)


def _run_kernel(kernel_cmd, env: dict, cwd) -> None:
    """In the forked child: become an IPython kernel with the arguments of ``kernel_cmd``
    (``python -m ipykernel_launcher -f CONNECTION_FILE``); never returns."""
    code = 1
    try:
        os.setpgid(0, 0)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        # The descriptors of the process it was forked from stay open (closing them could make
        # that process's objects close the kernel's sockets later); they are that same
        # sandbox's, nothing more.
        os.environ.clear()
        os.environ.update(env)
        if cwd:
            os.chdir(cwd)
        # As in a kernel started by ``python -m ipykernel_launcher``: the notebook's folder
        # first on the path, nothing of the grader's.
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path[:] = ["", *(p for p in sys.path if os.path.abspath(p or ".") != here)]
        sys.argv = ["ipykernel_launcher", *kernel_cmd[kernel_cmd.index("-f") :]]
        asyncio.events._set_running_loop(None)
        asyncio.set_event_loop(asyncio.new_event_loop())
        from traitlets.config import Application

        if Application.initialized():
            type(Application.instance()).clear_instance()
        from ipykernel.kernelapp import IPKernelApp

        _autoreload_skips(frozenset(sys.modules))
        app = IPKernelApp.instance()
        app.initialize(sys.argv[1:])
        app.start()
        code = 0
    except BaseException as error:
        isolate.report(error, "kernel: ")
    finally:
        os._exit(code)


def _autoreload_skips(preloaded: frozenset[str]) -> None:
    """Leave the modules this kernel was forked with out of autoreload's checks.

    The notebooks run ``%autoreload 2``, which stats the file of every imported module before
    each cell: some 4,000 here (torch, nbgrader, matplotlib), about 0.1 s of CPU per cell and
    more than a second per notebook. Those are the grader's libraries, which cannot change
    while a notebook runs, so a reload of them never happens; the modules the notebook imports
    itself (the student's) are checked as in any kernel.
    """
    from IPython.extensions import autoreload

    checked = autoreload.ModuleReloader.filename_and_mtime

    def filename_and_mtime(self, module):
        if getattr(module, "__name__", None) in preloaded:
            return None, None
        return checked(self, module)

    autoreload.ModuleReloader.filename_and_mtime = filename_and_mtime
