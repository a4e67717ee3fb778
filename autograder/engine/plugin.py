"""Per-worker state through Dask's own hook: :class:`GradingPlugin`.

``setup`` reserves one sandbox user id on the worker's host (the lock files of
:mod:`autograder.sandbox.slots`: two workers or two graders on one machine never share one);
workspaces (:class:`~autograder.grading.Workspace`: the warm parent, the model images, ...) are
prepared as the worker starts for the specs the plugin was made with (in a thread: the worker
takes tasks meanwhile, and the first waits for its workspace), else by the first task of each
spec, and kept; ``teardown`` closes them and frees the slot. Where the grading process shares
its warm parents (an embedded cluster, :func:`~.cluster.grading_client`), ``warm_addresses``
says where each spec's is, and the worker's payloads fork from it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

from distributed.diagnostics.plugin import WorkerPlugin

from ..grading import GradingSpec, Workspace
from ..sandbox import reserved_uids

logger = logging.getLogger(__name__)

PLUGIN_NAME = "autograder-grading"
KEEP_WORKSPACES = 2
"""Workspaces kept per worker (a grader serving two assignments keeps both warm)."""


class GradingPlugin(WorkerPlugin):
    """One sandbox slot and the prepared workspaces of one Dask worker."""

    name = PLUGIN_NAME
    idempotent = True

    def __init__(
        self, prepare: Iterable[GradingSpec] = (), warm_addresses: dict | None = None
    ) -> None:
        self.prepare = tuple(prepare)[:KEEP_WORKSPACES]
        self.warm_addresses: dict[GradingSpec, str] = dict(warm_addresses or {})

    def setup(self, worker) -> None:
        self._stack = ExitStack()
        self.uid = self._stack.enter_context(reserved_uids(1))[0]
        self._workspaces: dict[GradingSpec, Workspace] = {}
        self._preparing: dict[GradingSpec, Future] = {}
        if self.prepare:
            executor = ThreadPoolExecutor(1, thread_name_prefix="prepare-workspace")
            self._preparing = {
                s: executor.submit(Workspace.prepare, s, self.warm_addresses.get(s))
                for s in self.prepare
            }
            executor.shutdown(wait=False)
        logger.info("grading worker %s holds sandbox uid %s", worker.address, self.uid)

    def teardown(self, worker) -> None:
        for spec in list(self._preparing):
            self._take_prepared(spec)
        for workspace in self._workspaces.values():
            workspace.close()
        self._workspaces.clear()
        self._stack.close()

    def _take_prepared(self, spec: GradingSpec) -> None:
        """The workspace being prepared for ``spec`` (if any) into the kept ones; raises what
        preparing it raised."""
        future = self._preparing.pop(spec, None)
        if future is not None:
            self._workspaces[spec] = future.result()

    def workspace(self, spec: GradingSpec) -> Workspace:
        """The workspace of ``spec``, prepared on first use (or waited for)."""
        self._take_prepared(spec)
        if spec not in self._workspaces:
            while len(self._workspaces) >= KEEP_WORKSPACES:
                oldest = next(iter(self._workspaces))
                self._workspaces.pop(oldest).close()
            self._workspaces[spec] = Workspace.prepare(spec, self.warm_addresses.get(spec))
        return self._workspaces[spec]
