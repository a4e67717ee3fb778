"""Submitting the store's rows to the cluster and reconciling what comes back: :func:`run_batch`.

One task per row, with an explicit key (row, submission, a fresh token: a re-upload or a rerun
is never merged into an older task), ``resources={"grader": 1}`` (one grading task per worker)
and Dask's ``retries`` for failures of the grader itself. What a task cannot write itself is
written here, once: a submission that took its worker down more often than
``distributed.scheduler.allowed-failures`` allows (``KilledWorker``) ends as an ``error`` row;
a grader failure that outlived its retries as a retryable ``error`` row.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from distributed import Client, as_completed
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from ..grading import GradingSpec, internal_error_record
from ..grading.submission import worker_lost_record
from ..store import GradingRow, Store
from .cluster import RESOURCE
from .tasks import grade_task

logger = logging.getLogger(__name__)


class BatchLost(Exception):
    """The scheduler went away in the middle of a batch (what was graded is in the store)."""


@dataclass(frozen=True)
class Finished:
    """A row that ended in this batch: its stored record, how long it took, who graded it."""

    row: GradingRow
    record: dict
    seconds: float
    holder: str
    leftovers: int = 0
    """Processes of the sandbox user id that were still running before this job (killed)."""


def submit(
    client: Client,
    spec: GradingSpec,
    store: Store,
    row: GradingRow,
    priority: int = 0,
    folder: Path | None = None,
    feedback: Path | None = None,
):
    """One grading task for ``row`` (higher ``priority`` runs first); ``folder`` and
    ``feedback`` as for :func:`~.tasks.grade_task` (default: the course's collected one)."""
    key = f"grade-{row.id}-{row.submission_sha256[:12]}-{uuid.uuid4().hex[:8]}"
    return client.submit(
        grade_task,
        spec,
        row.id,
        row.student_id,
        row.submission_sha256,
        store.url,
        str(folder) if folder else None,
        str(feedback) if feedback else None,
        key=key,
        resources={RESOURCE: 1},
        retries=spec.settings.tries - 1,
        priority=priority,
        pure=False,
    )


def run_batch(
    client: Client,
    spec: GradingSpec,
    store: Store,
    rows: Iterable[GradingRow],
    on_finished: Callable[[Finished], None],
    priority: Callable[[GradingRow], int] = lambda row: 0,
) -> None:
    """Grade ``rows`` on ``client``'s cluster; ``on_finished`` is called as each one ends.

    Raises :class:`BatchLost` when the scheduler goes away before the batch is done.
    """
    futures = {submit(client, spec, store, row, priority(row)): row for row in rows}
    if not futures:
        return
    try:
        for future in as_completed(futures):
            row = futures.pop(future)
            on_finished(finished(future, spec, store, row))
    except (OSError, TimeoutError, FutureCancelledError) as error:
        raise BatchLost(str(error) or type(error).__name__) from error
    finally:
        for future in futures:
            future.release()


def finished(future, spec: GradingSpec, store: Store, row: GradingRow) -> Finished:
    """What a task that ended (its future) leaves: the stored record, written here once when the
    task could not write it itself (its worker kept dying, or the grader failed)."""
    status = future.status
    if status == "finished":
        result = future.result()
        record = result["record"] or (store.get(row.id).record or {})
        return Finished(row, record, result["seconds"], result["holder"], result["leftovers"])
    if status == "cancelled":
        raise FutureCancelledError(future.key, "the scheduler cancelled it")
    error = future.exception()
    if isinstance(error, KilledWorker):
        record = worker_lost_record(spec, row.student_id, spec.settings.tries).to_dict()
        logger.warning("%s took its worker down %s times", row.student_id, spec.settings.tries)
    else:
        record = internal_error_record(spec, row.student_id, error).to_dict()
        logger.error("grading %s failed in the grader: %r", row.student_id, error)
    if not store.finish(row.id, record):
        record = store.get(row.id).record or record
    return Finished(row, record, 0.0, "")
