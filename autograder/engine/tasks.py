"""What runs on a worker: :func:`grade_task`, one submission.

The task claims its row (``running``, its holder and time), grades with the worker's workspace
and sandbox slot, and writes the record once (:meth:`Store.finish`). A failure of the grader
itself raises, so that Dask's ``retries`` take it up; whatever the submission causes is part
of its record.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from distributed import get_worker

from ..grading import GradingSpec, grade_submission
from ..sandbox import clear_user
from ..store import Store
from .plugin import PLUGIN_NAME


def grade_task(
    spec: GradingSpec,
    row_id: int,
    student: str,
    submission: str,
    url: str,
    folder: str | None = None,
    feedback: str | None = None,
) -> dict:
    """Grade one submission on this worker; returns ``{"record", "seconds", "holder",
    "leftovers"}`` (processes of the slot's user id found before the job). ``folder`` and
    ``feedback``: where the unpacked submission is and where its feedback goes (default: the
    course's collected submission of ``student`` and its ``autograded/`` folder)
    (``record`` is the stored one when the row was final already)."""
    worker = get_worker()
    plugin = worker.plugins[PLUGIN_NAME]
    store = Store(url)
    holder = f"{socket.gethostname()} pid {os.getpid()} ({worker.address})"
    began = time.monotonic()
    row = store.claim(row_id, holder)
    if row is None:
        stored = store.get(row_id)
        record = stored.record if stored else None
        return {"record": record, "seconds": 0.0, "holder": holder, "leftovers": 0}
    # Processes of the slot's user id left by an earlier job (there should be none: each job's
    # are killed when it ends); counted here so that the batch can name them.
    leftovers = clear_user(plugin.uid) if plugin.uid is not None else 0
    record = grade_submission(
        plugin.workspace(spec),
        student,
        submission,
        plugin.uid,
        Path(folder) if folder else None,
        Path(feedback) if feedback else None,
    ).to_dict()
    if not store.finish(row_id, record):  # graded meanwhile by another try: that one counts
        record = store.get(row_id).record
    return {
        "record": record,
        "seconds": time.monotonic() - began,
        "holder": holder,
        "leftovers": leftovers,
    }
