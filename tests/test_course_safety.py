"""No command and no line of the README deletes a course folder: a real course holds the
collected submissions, the gradebook and the results. Only the demo's course and dist/ are
disposable."""

from __future__ import annotations

import re

from autograder.course import REPO_ROOT

DISPOSABLE = ("course/demo", "dist")


def test_no_make_target_deletes_a_course_folder():
    makefile = (REPO_ROOT / "Makefile").read_text()
    for line in makefile.splitlines():
        if re.search(r"\brm\b", line):
            targets = [word for word in line.split() if not word.startswith("-") and word != "rm"]
            for target in targets:
                if "course" in target:
                    assert target.rstrip("/") in DISPOSABLE, line


def test_the_readme_calls_no_course_folder_disposable():
    for line in (REPO_ROOT / "README.md").read_text().splitlines():
        if re.search(r"delete (it )?(at )?any ?time|can be deleted|rm -rf", line):
            assert "`course/`" not in line and "rm -rf course " not in line + " ", line


def test_student_uploads_and_course_data_are_never_committed_by_accident():
    import subprocess

    paths = [
        "uploads/alice.zip",
        "submissions/bob.zip",
        "course/submitted/alice/exercise_08/autoencoder.ipynb",
        "roster.csv",
        "grades/exercise_08.csv",
    ]
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )
    assert sorted(done.stdout.split()) == sorted(paths)
