"""Shared by the submission service's tests: the stand-in exercise released as a course, its
zips and tokens, a real service on it (tests/servers.py ``uvicorn_server``), an HTTP client.

``ServiceCourse`` holds the course folder, the stand-in's repository root (what the service
process sets ``course.REPO_ROOT`` to), zips of corpus kinds and one token per student.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import corpus_behaviour as cb
import httpx
import pytest

from autograder import course, release
from autograder.store import Store
from autograder.store.accounts import Accounts

ASSIGNMENT = "exercise_08"
STUDENTS = ("alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank")
SERVICE_ENV = {"AUTOGRADER_PROBE_TIMEOUT_S": "30", "AUTOGRADER_TIMEOUT_S": "120"}
FINAL = {"graded", "rejected", "error"}
CONTRACT_FIELDS = {
    "id", "assignment", "status", "position", "tests_score", "tests_max", "public_accuracy",
    "hidden_score", "hidden_max", "total", "total_max", "message", "parts", "counts", "created",
    "finished",
}  # fmt: skip


@dataclass
class ServiceCourse:
    course_dir: Path
    repo_root: Path
    data_dir: Path
    zips: dict[str, Path]
    tokens: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        import os

        return {**os.environ, **SERVICE_ENV, "AUTOGRADER_DATA_DIR": str(self.data_dir)}

    def store(self) -> Store:
        return Store.for_course(self.course_dir)


def make_service_course(
    root: Path, models: dict, data_dir: Path, kinds: list[str]
) -> ServiceCourse:
    """The stand-in exercise released into ``root/course``, zips of ``kinds``, tokens for
    :data:`STUDENTS` and the instructor ``prof`` (``course.REPO_ROOT`` is patched only while
    releasing)."""
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    root.parent.chmod(0o755)
    repo = root / "repo"
    cb.make_exercise(repo)
    course_dir = root / "course"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(course, "REPO_ROOT", repo)
        release.release(course_dir, [ASSIGNMENT], dist_dir=root / "dist")
    zips_dir = root / "zips"
    zips_dir.mkdir()
    context = {"models": models, "course_dir": course_dir, "data_dir": data_dir}
    release_dir = course_dir / "release" / ASSIGNMENT
    zips = {
        kind: cb.write_zip(files, zips_dir / f"{kind}.zip")
        for kind, files in cb.corpus(release_dir, context, kinds).items()
    }
    made = ServiceCourse(course_dir, repo, data_dir, zips)
    made.models_good = models["good"]
    accounts = Accounts(Store.for_course(course_dir))
    for student in STUDENTS:
        made.tokens[student] = accounts.issue(ASSIGNMENT, student, "student")
    made.tokens["prof"] = accounts.issue(ASSIGNMENT, "prof", "instructor")
    return made


def client(url: str, token: str | None = None, **kwargs) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60, **kwargs)


def upload(http: httpx.Client, path: Path, name: str | None = None) -> httpx.Response:
    with open(path, "rb") as handle:
        return http.post(
            "/api/submissions",
            data={"assignment": ASSIGNMENT},
            files={"file": (name or path.name, handle, "application/zip")},
        )


def wait_final(http: httpx.Client, upload_id: str, timeout: float = 300) -> dict:
    """Poll ``GET /api/submissions/{id}`` until its status is final; its JSON."""
    deadline = time.monotonic() + timeout
    while True:
        answer = http.get(f"/api/submissions/{upload_id}")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if body["status"] in FINAL:
            return body
        assert time.monotonic() < deadline, f"upload {upload_id} still {body['status']}"
        time.sleep(0.5)


@contextlib.contextmanager
def running_service(made: ServiceCourse, tmp_dir: Path, *args: str, name: str = "service"):
    from servers import uvicorn_server

    with uvicorn_server(
        made.course_dir,
        repo_root=made.repo_root,
        args=list(args),
        env=made.env(),
        tmp_dir=tmp_dir,
        name=name,
    ) as server:
        yield server
