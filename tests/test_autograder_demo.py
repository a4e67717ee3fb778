"""The demo end to end: release, reference/untouched/broken samples, collect, grade, report.

Runs twice: on a demo-sized stand-in exercise (real given files, a notebook that 'trains' in a
second) and on the real exercise_08. The real run executes the reference notebook (about a
minute of training) unless ``make demo`` already cached its zip for the current source (in
``course/demo/cache``, shared with these tests). Every submission is autograded by real nbgrader.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import autograder_standin as standin
import pytest

from autograder import course
from autograder.demo import ASSIGNMENT, NOTEBOOK, demo
from autograder.release import scan_release, solution_lines

REAL_ROOT = Path(__file__).resolve().parents[1]
REAL_NOTEBOOK = REAL_ROOT / ASSIGNMENT / NOTEBOOK
SHARED_CACHE = REAL_ROOT / "course" / "demo" / "cache"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=["demo-sized stand-in", "real exercise_08"])
def demo_run(request, tmp_path_factory, prepared_data_dir) -> tuple[Path, dict]:
    """The demo's course and rows, on a one-second stand-in exercise and on the real one."""
    root = tmp_path_factory.mktemp("demo")
    if request.param == "real exercise_08":
        assert REAL_NOTEBOOK.exists()
        rows = demo(root, cache_dir=SHARED_CACHE)
        yield root / "demo" / "course", {row["student_id"]: row for row in rows}
        return
    with pytest.MonkeyPatch.context() as patch:
        repo = root / "repo"
        standin.make_demo_exercise(repo, REAL_ROOT / ASSIGNMENT)
        (repo / "data").symlink_to(prepared_data_dir)
        patch.setattr(course, "REPO_ROOT", repo)
        patch.setenv("AUTOGRADER_DATA_DIR", str(prepared_data_dir))
        rows = demo(root)
        yield root / "demo" / "course", {row["student_id"]: row for row in rows}


def _csv(course_dir: Path) -> dict[str, dict]:
    with open(course.grades_csv(course_dir, ASSIGNMENT), newline="") as handle:
        return {row["student_id"]: row for row in csv.DictReader(handle)}


def test_reference_solution_gets_full_marks(demo_run):
    course_dir, rows = demo_run
    reference = rows["reference"]
    assert reference["status"] == "graded", reference["message"]
    assert reference["tests_score"] == reference["tests_max"] == 50
    assert reference["hidden_accuracy"] >= course.HIDDEN_PASS_ACCURACY
    assert reference["total"] == reference["total_max"] == 100
    assert _csv(course_dir)["reference"]["total"] == "100"


def test_untouched_student_version_gets_no_test_points_and_is_told_the_model_is_missing(demo_run):
    _, rows = demo_run
    untouched = rows["untouched"]
    assert untouched["tests_score"] == 0 and untouched["hidden_score"] == 0
    assert "classifier.pt2" in untouched["message"]


def test_broken_zip_gets_a_row_with_a_clear_message(demo_run):
    course_dir, rows = demo_run
    broken = _csv(course_dir)["broken"]
    assert broken["status"] == "rejected"
    assert (
        "damaged or incomplete" in broken["message"] and "create_submission()" in broken["message"]
    )
    assert (course.feedback_dir(course_dir, ASSIGNMENT, "broken") / "summary.html").is_file()


def test_feedback_explains_the_untouched_version_lost_points(demo_run):
    course_dir, _ = demo_run
    folder = course.feedback_dir(course_dir, ASSIGNMENT, "untouched")
    summary = (folder / "summary.html").read_text()
    assert "Where points were lost" in summary and "NotImplementedError" in summary
    assert (folder / "autoencoder.html").is_file()


def test_release_contains_no_solution(demo_run):
    course_dir, _ = demo_run
    source = course.source_dir(course_dir, ASSIGNMENT)
    folder = course.release_dir(course_dir, ASSIGNMENT)
    zip_path = course_dir.parent / "dist" / f"{ASSIGNMENT}.zip"
    assert scan_release(source, folder, zip_path) == []
    secret, _ = solution_lines(source)
    assert secret, "the source must have solution code for this check to mean anything"
    released = "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())
    assert not [line for line in secret if line in released]


def test_grading_again_changes_nothing(demo_run):
    course_dir, _ = demo_run
    records = sorted((course_dir / "results" / ASSIGNMENT).glob("*.json"))
    before = {p.name: p.read_bytes() for p in records}
    csv_before = course.grades_csv(course_dir, ASSIGNMENT).read_bytes()

    for command in (["grade", ASSIGNMENT], ["report", ASSIGNMENT]):
        done = subprocess.run(
            [sys.executable, "-m", "autograder", "--course-dir", str(course_dir), *command],
            cwd=REAL_ROOT,
            capture_output=True,
            text=True,
            timeout=1800,
        )
        assert done.returncode == 0, done.stderr

    assert {p.name: p.read_bytes() for p in records} == before
    assert course.grades_csv(course_dir, ASSIGNMENT).read_bytes() == csv_before
