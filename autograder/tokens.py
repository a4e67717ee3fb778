"""``tokens``: login tokens for the submission service, one per student and per instructor.

Each token is random (``<account id>.<43 characters>``) and written once, to a new file
``FILE`` (columns ``student_id,role,token``, mode 0600) for the instructor to send out; the
database keeps only its hash (:mod:`autograder.store.accounts`). Issuing tokens again gives
everyone on the roster a new one and revokes the old one (sessions made with it end too).
The roster is the CSV file that ``collect --from`` reads (:func:`autograder.lms.read_roster`).

Another login (JupyterHub's OAuth, an LMS's LTI launch) would plug in at one place: the
service's login (``autograder/service/auth.py``), which maps a verified identity to an
:class:`~autograder.store.accounts.AccountView`; the rest of the service only sees accounts.

Entry point: :func:`issue_tokens`.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .core.errors import AutograderError
from .core.text import clean_text, is_student_id
from .course import exercise_dir, require_course
from .lms import read_roster
from .store import Store
from .store.accounts import Accounts


def issue_tokens(
    course_dir: Path,
    assignment: str,
    roster: Path,
    out: Path,
    instructors: list[str] | None = None,
    database: str | None = None,
) -> int:
    """Issue a token to every student of ``roster`` and to each of ``instructors`` for
    ``assignment``; write them to the new file ``out`` (mode 0600); return how many."""
    course_dir = require_course(Path(course_dir))
    exercise_dir(assignment)
    out = Path(out)
    if out.exists():
        raise AutograderError(
            f"{clean_text(out, 200)} exists already; tokens are written once, to a new file: "
            "give another --out (the tokens in the old file stop working when new ones are issued)."
        )
    people: list[tuple[str, str]] = []
    for entry in read_roster(Path(roster)).values():
        if is_student_id(entry.student_id):
            people.append((entry.student_id, "student"))
        else:
            print(f"skipped {clean_text(entry.student_id, 80)!r}: not a usable student id.")
    for name in instructors or []:
        if not is_student_id(name):
            raise AutograderError(
                f"--instructor {clean_text(name, 80)!r} is not a usable name: use letters, digits, "
                "'.', '_' or '-'."
            )
        people.append((name, "instructor"))
    people = list(dict.fromkeys(people))
    accounts = Accounts(Store.for_course(course_dir, database))
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["student_id", "role", "token"])
    for student_id, role in people:
        writer.writerow([student_id, role, accounts.issue(assignment, student_id, role)])
    out.parent.mkdir(parents=True, exist_ok=True)
    handle = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text.getvalue())
    print(
        f"Wrote {len(people)} tokens for {assignment} to {out} (mode 0600): send each person "
        "their own line; the database keeps only hashes."
    )
    return len(people)
