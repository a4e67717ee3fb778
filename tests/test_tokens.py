"""``python -m autograder tokens``: one random token per student and instructor, written once
to a new 0600 file; the database keeps only hashes; reissuing revokes the old token."""

from __future__ import annotations

import csv
import hmac
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import release
from autograder.core.errors import AutograderError
from autograder.store import Store
from autograder.store import accounts as accounts_module
from autograder.store.accounts import Accounts
from autograder.tokens import issue_tokens

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def course_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tokens")
    release.release(root / "course", ["exercise_08"], dist_dir=root / "dist")
    return root / "course"


def _roster(folder: Path) -> Path:
    path = folder / "roster.csv"
    path.write_text("lms_id,student_id,full_name\n1001,s1001,Jane Doe\n1002,s1002,Max Muster\n")
    return path


def _read(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_tokens_are_written_once_to_a_0600_file_and_the_database_keeps_only_hashes(
    course_dir, tmp_path
):
    out = tmp_path / "tokens.csv"
    done = subprocess.run(
        [sys.executable, "-m", "autograder", "tokens", "exercise_08", "--course-dir",
         str(course_dir), "--roster", str(_roster(tmp_path)), "--out", str(out),
         "--instructor", "prof"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    rows = _read(out)
    assert [(r["student_id"], r["role"]) for r in rows] == [
        ("s1001", "student"), ("s1002", "student"), ("prof", "instructor")
    ]  # fmt: skip
    assert len({r["token"] for r in rows}) == 3 and all(len(r["token"]) > 40 for r in rows)
    database = (course_dir / "grading.sqlite").read_bytes()
    for row in rows:
        secret = row["token"].split(".", 1)[1]
        assert secret.encode() not in database and row["token"] not in done.stdout
    accounts = Accounts(Store.for_course(course_dir))
    assert accounts.verify(rows[0]["token"]).student_id == "s1001"
    assert accounts.verify(rows[2]["token"]).instructor
    again = subprocess.run(
        [sys.executable, "-m", "autograder", "tokens", "exercise_08", "--course-dir",
         str(course_dir), "--roster", str(_roster(tmp_path)), "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert again.returncode == 1 and "exists already" in again.stderr


def test_reissuing_a_token_revokes_the_old_one(course_dir, tmp_path):
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    issue_tokens(course_dir, "exercise_08", _roster(tmp_path), first)
    issue_tokens(course_dir, "exercise_08", _roster(tmp_path), second)
    accounts = Accounts(Store.for_course(course_dir))
    old, new = _read(first)[0]["token"], _read(second)[0]["token"]
    assert accounts.verify(old) is None
    assert accounts.verify(new).student_id == "s1001"
    assert accounts.verify(new).generation == accounts.verify(new).generation
    for forged in ("", "x", "1.", ".abc", "999999.abc", new + "x", new.split(".")[0] + ".x"):
        assert accounts.verify(forged) is None


def test_tokens_are_compared_in_constant_time(course_dir, tmp_path, monkeypatch):
    """The stored hash is compared with hmac.compare_digest, never with ==."""
    out = tmp_path / "t.csv"
    issue_tokens(course_dir, "exercise_08", _roster(tmp_path), out)
    token = _read(out)[0]["token"]
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(accounts_module.hmac, "compare_digest", spy)
    accounts = Accounts(Store.for_course(course_dir))
    assert accounts.verify(token) is not None
    assert accounts.verify(token[:-2] + "zz") is None
    assert len(calls) == 2


def test_an_unusable_instructor_name_is_one_sentence(course_dir, tmp_path):
    with pytest.raises(AutograderError, match="not a usable name"):
        issue_tokens(
            course_dir, "exercise_08", _roster(tmp_path), tmp_path / "x.csv", ["Prof Smith"]
        )
