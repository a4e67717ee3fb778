"""The grading engine on dask.distributed: one task is one submission.

- :mod:`.cluster`: :func:`grading_client`, an embedded ``LocalCluster`` (N worker processes,
  one thread and one ``grader`` resource each, forked from one server that imported torch and
  the grading code; for ``grade`` they share one warm parent, owned by its process) or an
  existing scheduler, with Dask's own limits on retries
  (``distributed.scheduler.allowed-failures``);
- :mod:`.plugin`: :class:`GradingPlugin`, the per-worker state through Dask's ``WorkerPlugin``
  (a sandbox slot reserved on the worker's host, a prepared workspace with its warm parent);
- :mod:`.tasks`: :func:`grade_task`, what runs on a worker: claim the row, grade, store the
  record once;
- :mod:`.specs`: :func:`grading_spec`, what every task of an assignment carries;
- :mod:`.batch`: :func:`submit` (one row) and :func:`run_batch` (rows of the store), and
  reconciling what comes back (a submission that keeps killing its worker ends as one ``error``
  row).

The engine keeps no state: the store (:mod:`autograder.store`) is the source of truth.
"""

from .batch import BatchLost, Finished, run_batch, submit
from .cluster import grading_client
from .specs import grading_spec

__all__ = ["BatchLost", "Finished", "grading_client", "grading_spec", "run_batch", "submit"]
