"""Handing uploads to the grading engine and reading what comes back: :class:`Dispatcher`.

One thread owns the Dask client (:func:`autograder.engine.grading_client`: an embedded
``LocalCluster`` or ``--scheduler``). Every half second, and at once when an upload is accepted,
it looks at the database: each grading row of an upload that is ``queued`` or ``running`` and
has no task of this process gets one (:func:`autograder.engine.submit`). That is also how a
restarted service takes up what a killed one left: nothing is kept in memory that the database
does not have, and the task itself claims its row, so a row is graded and written once. A row
left unfinished under another version of the grader (the service restarted after the exercise
or the grader changed) has its uploads moved to a row of the current version
(:meth:`~autograder.store.uploads.Uploads.regrade`), which is then graded.

Fairness is Dask's own task priority, computed from the database: a student's k-th unfinished
upload gets priority ``-k``, so a student's next upload waits behind every other student's
first. A task whose worker keeps dying ends as one ``error`` row (the engine's reconciling,
:func:`autograder.engine.batch.finished`); a grading still running after the job limit is
cancelled and ends ``error`` with a sentence; a scheduler that goes away is reconnected to, and
the rows it held are submitted again. An embedded cluster runs at a lower CPU priority than the
web process (:data:`GRADING_NICENESS`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..collect import Rejected, unpack_zip
from ..core.records import GradeRecord, PartResult, Status
from ..engine import grading_client, submit
from ..engine.batch import finished as finished_task
from ..store import GradingRow, Store
from ..store.uploads import Uploads, UploadView
from .paths import ServicePaths
from .views import ranks

logger = logging.getLogger(__name__)

TICK_S = 0.5
RECONNECT_S = 5.0
RETRYABLE_TRIES = 3
"""A failure of the grader itself is graded again until the row has this many tries."""
GRADING_NICENESS = 10
"""An embedded cluster (no ``--scheduler``) shares the machine with the web process: its
scheduler thread, worker processes and their sandboxes run this much nicer, so the pages and the
status route answer first and grading takes the CPU they leave."""


@dataclass
class _Task:
    future: object
    row: GradingRow
    assignment: str


class Dispatcher:
    """The service's link to the grading engine (one per service process)."""

    def __init__(self, config, store: Store, specs: dict, paths: ServicePaths) -> None:
        self.config, self.store, self.specs, self.paths = config, store, specs, paths
        self.uploads = Uploads(store)
        self.client = None
        self.error: str | None = None
        self.last_tick = 0.0
        self._tasks: dict[int, _Task] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="grading-dispatcher", daemon=True)

    # ----------------------------------------------------------------------------- life

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=60)

    def wake(self) -> None:
        """An upload was accepted: look at the database now."""
        self._wake.set()

    def healthy(self) -> bool:
        """The engine answers: a live client with at least one worker, the loop turning."""
        client = self.client
        if client is None or client.status != "running":
            return False
        if time.monotonic() - self.last_tick > 30:
            return False
        with contextlib.suppress(Exception):
            return bool(client.scheduler_info(n_workers=-1).get("workers"))
        return False

    def workers(self) -> list[dict]:
        """Name, address and the tasks each worker is running (for the instructor's page)."""
        client = self.client
        if client is None:
            return []
        try:
            info = client.scheduler_info(n_workers=-1)["workers"]
            processing = client.processing()
        except Exception:
            return []
        return [
            {
                "name": str(worker.get("name")),
                "address": address,
                "tasks": len(processing.get(address, ())),
            }
            for address, worker in sorted(info.items())
        ]

    def _run(self) -> None:
        if self.config.scheduler is None:
            _be_nicer(GRADING_NICENESS)
        while not self._stop.is_set():
            try:
                with grading_client(
                    self.config.scheduler,
                    self.config.jobs,
                    self.config.settings,
                    prepare=list(self.specs.values()),  # ready before the first upload
                ) as client:
                    self.client, self.error = client, None
                    self._tasks.clear()
                    logger.info("grading engine ready: %s", client.scheduler.address)
                    while not self._stop.is_set():
                        self.last_tick = time.monotonic()
                        self._tick(client)
                        self._wake.wait(TICK_S)
                        self._wake.clear()
                        if client.status != "running":
                            raise OSError("the Dask client stopped")
            except Exception as error:  # the scheduler went away, or could not be reached
                self.error = str(error) or type(error).__name__
                logger.error("grading engine lost: %s; trying again in %.0f s", self.error, 5)
            finally:
                self.client = None
            self._stop.wait(RECONNECT_S)

    # ----------------------------------------------------------------------------- work

    def _tick(self, client) -> None:
        self._reap()
        unfinished = self.uploads.unfinished()
        rank = ranks(view.queued for view in unfinished)
        for view in unfinished:
            row = view.grading
            if row.id in self._tasks:
                self._expire(view)
                continue
            spec = self.specs.get(view.assignment)
            if spec is None:
                continue  # an assignment this service does not grade
            if row.grader_version != spec.grader_version:
                # Queued (or left running) under an older grader: graded by this one, in a
                # row of this version (the next tick submits it).
                self.uploads.regrade(row.id, spec.grader_version)
                continue
            folder = self._submission_folder(view)
            if folder is None:
                continue
            future = submit(
                client,
                spec,
                self.store,
                row,
                priority=-rank[row.id],
                folder=folder,
                feedback=self.paths.feedback(row.id),
            )
            self._tasks[row.id] = _Task(future, row, view.assignment)

    def _reap(self) -> None:
        for row_id, task in list(self._tasks.items()):
            if not task.future.done():
                continue
            del self._tasks[row_id]
            spec = self.specs[task.assignment]
            try:
                finished = finished_task(task.future, spec, self.store, task.row)
            except Exception as error:  # cancelled or lost with the scheduler: submit again
                logger.warning("grading row %s came back without a result: %r", row_id, error)
                continue
            finally:
                task.future.release()
            record = finished.record or {}
            stored = self.store.get(row_id)
            if record.get("retryable") and stored is not None and stored.tries < RETRYABLE_TRIES:
                self.store.requeue(row_id)

    def _expire(self, view: UploadView) -> None:
        """Stop a grading that has run for longer than the job limit: an ``error`` row."""
        row = view.grading
        if row.state is not Status.RUNNING or row.held_since is None:
            return
        from ..store.store import now

        if (now() - row.held_since).total_seconds() < self.config.job_limit_s:
            return
        task = self._tasks.pop(row.id)
        with contextlib.suppress(Exception):
            task.future.cancel()
        spec = self.specs[view.assignment]
        minutes = self.config.job_limit_s / 60
        message = (
            f"Grading took longer than {minutes:.0f} minutes and was stopped; upload again, and "
            "if it happens again tell your instructor."
        )
        self.store.finish(row.id, failure_record(spec, view.student_id, message))

    def _submission_folder(self, view: UploadView) -> Path | None:
        """The unpacked upload of the row (unpacked again from its zip if a killed service
        did not get that far); None after writing a ``rejected`` row when it cannot be."""
        folder = self.paths.submission(view.grading.id)
        if folder.is_dir():
            return folder
        staging = self.paths.staging_folder()
        try:
            unpack_zip(self.paths.upload_zip(view.zip_sha256), staging / "s", name=view.file_name)
            with contextlib.suppress(FileExistsError, OSError):
                folder.parent.mkdir(parents=True, exist_ok=True)
                (staging / "s").rename(folder)
        except (Rejected, OSError) as error:
            spec = self.specs[view.assignment]
            message = str(error) if isinstance(error, Rejected) else "The upload was lost."
            self.store.finish(
                view.grading.id,
                failure_record(spec, view.student_id, message, Status.REJECTED),
            )
            return None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return folder if folder.is_dir() else None


def _be_nicer(increment: int) -> None:
    """Lower the priority of the calling thread (Linux keeps one per thread): the threads and
    processes it starts afterwards (Dask's loop, the nannies, the workers) inherit it; the web
    process's other threads keep theirs."""
    thread = threading.get_native_id()
    with contextlib.suppress(OSError, AttributeError):
        niceness = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(niceness + increment, 19))


def failure_record(spec, student_id: str, message: str, status: Status = Status.ERROR) -> dict:
    """A record of no points with one sentence (every graded part lost with it)."""
    parts = [PartResult(f"{nb}: {cell}", 0.0, points, message) for nb, cell, points in spec.cells]
    record = GradeRecord.from_parts(status, parts, spec.hidden_item, message)
    record.student_id = student_id
    return record.to_dict()
