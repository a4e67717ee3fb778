"""Where the service keeps its files, under ``COURSE_DIR/service/``: :class:`ServicePaths`.

- ``uploads/<sha256>.zip``: every accepted zip, named by its hash (written atomically);
- ``gradings/<row id>/submission`` and ``feedback``: the unpacked upload of a grading row and
  the feedback notebooks the engine writes (named by the grader's row id, never a student id),
  with the feedback page rendered from them (``.page-*.html``);
- ``incoming/`` and ``staging/``: uploads being received and unpacked (emptied at start);
- ``secret_key``: signs the session and CSRF cookies (made once, mode 0600).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path


class ServicePaths:
    def __init__(self, course_dir: Path) -> None:
        self.root = Path(course_dir).resolve() / "service"
        self.incoming = self.root / "incoming"
        self.staging = self.root / "staging"

    def prepare(self) -> None:
        for folder in (self.incoming, self.staging):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        (self.root / "uploads").mkdir(exist_ok=True)
        (self.root / "gradings").mkdir(exist_ok=True)

    def upload_zip(self, sha256: str) -> Path:
        return self.root / "uploads" / f"{sha256}.zip"

    def submission(self, row_id: int) -> Path:
        return self.root / "gradings" / str(int(row_id)) / "submission"

    def feedback(self, row_id: int) -> Path:
        return self.root / "gradings" / str(int(row_id)) / "feedback"

    def feedback_page(self, row_id: int, before_deadline: bool) -> Path:
        """The rendered feedback page (:mod:`.feedback`), before or after the deadline."""
        variant = "before-deadline" if before_deadline else "final"
        return self.feedback(row_id) / f".page-{variant}.html"

    def has_feedback(self, row_id: int) -> bool:
        return any(self.feedback(row_id).glob("*.ipynb"))

    def staging_folder(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="unpack-", dir=self.staging))

    def secret_key(self) -> str:
        path = self.root / "secret_key"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            try:
                handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_text().strip()
            with os.fdopen(handle, "w") as stream:
                stream.write(secrets.token_urlsafe(48))
        return path.read_text().strip()
