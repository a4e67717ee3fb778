"""Per-worker state through Dask's own hook: :class:`GradingPlugin`.

``setup`` reserves one sandbox user id on the worker's host (the lock files of
:mod:`autograder.sandbox.slots`: two workers or two graders on one machine never share one);
workspaces (:class:`~autograder.grading.Workspace`: the warm parent, the model images, ...) are
prepared by the first task of each spec and kept; ``teardown`` closes them and frees the slot.
"""

from __future__ import annotations

import logging
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

    def setup(self, worker) -> None:
        self._stack = ExitStack()
        self.uid = self._stack.enter_context(reserved_uids(1))[0]
        self._workspaces: dict[GradingSpec, Workspace] = {}
        logger.info("grading worker %s holds sandbox uid %s", worker.address, self.uid)

    def teardown(self, worker) -> None:
        for workspace in self._workspaces.values():
            workspace.close()
        self._workspaces.clear()
        self._stack.close()

    def workspace(self, spec: GradingSpec) -> Workspace:
        """The workspace of ``spec``, prepared on first use."""
        if spec not in self._workspaces:
            while len(self._workspaces) >= KEEP_WORKSPACES:
                oldest = next(iter(self._workspaces))
                self._workspaces.pop(oldest).close()
            self._workspaces[spec] = Workspace.prepare(spec)
        return self._workspaces[spec]
