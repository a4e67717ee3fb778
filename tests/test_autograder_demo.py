"""The demo end to end on the real exercise_08: release, the reference/untouched/broken samples,
collect, grade, report; then what nbgrader's own tools see of the grades.

The run executes the reference notebook (about a minute of training) unless ``make demo`` already
cached its zip for the current source (in ``course/demo/cache``, shared with these tests).
"""

from __future__ import annotations

import csv
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import course
from autograder.demo import ASSIGNMENT, demo
from autograder.grading.feedback_cells import skippable_cells
from autograder.release import scan_release

REAL_ROOT = Path(__file__).resolve().parents[1]
SHARED_CACHE = REAL_ROOT / "course" / "demo" / "cache"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, prepared_data_dir) -> tuple[Path, dict]:
    """The demo's course and rows."""
    root = tmp_path_factory.mktemp("demo")
    rows = demo(root, cache_dir=SHARED_CACHE)
    return root / "demo" / "course", {row["student_id"]: row for row in rows}


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


def test_untouched_student_version_gets_nothing_and_is_told_what_to_implement_first(demo_run):
    _, rows = demo_run
    untouched = rows["untouched"]
    assert untouched["tests_score"] == 0 and untouched["hidden_score"] == 0
    assert untouched["message"].startswith("Encoder(8, (64, 32)) raised NotImplementedError")
    hidden = [d for d in untouched["details"] if d["item"].endswith("hidden_accuracy")]
    assert "No models/classifier.pt2" in hidden[0]["reason"]


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


def test_reference_feedback_runs_what_the_graded_cells_need_and_says_what_it_skipped(demo_run):
    """The feedback run skips the cells no graded cell needs (plots, training for the lesson):
    every graded cell of the reference still ran and passed, every skipped cell says why."""
    course_dir, _ = demo_run
    notebook = json.loads(
        (
            course.autograded_dir(course_dir, ASSIGNMENT, "reference") / "autoencoder.ipynb"
        ).read_text()
    )
    source = json.loads((course.exercise_dir(ASSIGNMENT) / "autoencoder.ipynb").read_text())
    skipped = skippable_cells(source)
    assert {"show_data", "plot_final"} <= skipped and "load_data" not in skipped
    graded, seen_skipped = 0, 0
    for cell in notebook["cells"]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell["cell_type"] != "code" or not meta.get("grade_id"):
            continue
        if meta["grade_id"] in skipped:
            seen_skipped += 1
            assert cell["execution_count"] is None
            assert "Not run for this feedback" in cell["outputs"][0]["text"]
        elif meta.get("grade"):
            graded += 1
            assert cell["execution_count"] is not None, meta["grade_id"]
            assert not [o for o in cell["outputs"] if o["output_type"] == "error"], meta["grade_id"]
    assert graded == 9 and seen_skipped == len(skipped)


def test_release_contains_no_solution_and_no_trusted_check(demo_run):
    course_dir, _ = demo_run
    source = course.source_dir(course_dir, ASSIGNMENT)
    folder = course.release_dir(course_dir, ASSIGNMENT)
    zip_path = course_dir.parent / "dist" / f"{ASSIGNMENT}.zip"
    checks = course.exercise_dir(ASSIGNMENT) / "grading"
    assert scan_release(source, folder, zip_path, trusted_checks=checks) == []
    assert not (folder / "grading").exists()


def test_nbgrader_export_and_formgrader_see_the_whole_grade(demo_run, caplog):
    course_dir, rows = demo_run
    export = course_dir.parent / "export.csv"
    done = subprocess.run(
        [sys.executable, "-m", "nbgrader", "export", "--to", str(export)],
        cwd=course_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "exchange" not in done.stderr.lower()
    with open(export, newline="") as handle:
        exported = {r["student_id"]: float(r["score"]) for r in csv.DictReader(handle)}
    graded = {s: r["total"] for s, r in rows.items() if r["status"] != "rejected"}
    assert exported == {s: r["total"] for s, r in rows.items()}, "rejected students at 0"
    with caplog.at_level(logging.WARNING):
        api = course.nbgrader_api(course_dir)
        submissions = {s["student"]: s for s in api.get_submissions(ASSIGNMENT)}
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert {s: submissions[s]["score"] for s in graded} == graded
    assert submissions["reference"]["max_score"] == 100


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
